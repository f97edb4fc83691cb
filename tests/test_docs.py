"""The guide (README.md and docs/*.md) shows only commands that exist, and its examples run.

* Every ``gwconfig ...`` line in a fenced block names a real command with real options.
* Every ``console`` block is run: its ``$ ...`` lines in a bash script, in order, page by page, in a
  scratch copy of the repository (example manifests, values files, schemas, docs/examples), on the
  embedded SQLite default with keys made at run time and dummy provider secrets. The output must
  match the block: a line ``...`` stands for any number of lines, ``...`` inside a line for any
  text. A command that fails must be followed by ``echo $?`` showing its exit code.
* ``<!-- docs-test: COMMAND -->`` right before a console block runs COMMAND first (a file edit the
  text describes in words); it is invisible on the rendered page.
* Every relative link points to an existing file and heading.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from docs_words import invocations, unknown_options

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# blocks of another language hold no shell commands (python, yaml, json, toml, jinja)
_SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "text"}
_FENCE = re.compile(r"^([ \t]*)(```+)([\w-]*)[^\n]*$")
_SETUP = re.compile(r"^<!-- docs-test: (.*) -->$")
_MARK = "@@docs-test@@"
_DUMMY_SECRETS = {
    "OPENAI_API_KEY": "sk-docs-test-openai",
    "OPENAI_PROJECT_ID": "proj-docs-test",
    "ANTHROPIC_API_KEY": "docs-test-anthropic",
    "AZURE_OPENAI_API_KEY": "docs-test-azure",
    "VLLM_API_KEY": "docs-test-vllm",
}


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    setup: list[str] = field(default_factory=list)


@dataclass
class Step:
    """One ``$ command`` of a console block and the output the page shows for it."""

    where: str
    command: str
    expected: list[str]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page (indented ones too), with their setup comments."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, language = m.groups()
        setup = []
        if i > 0 and (s := _SETUP.match(lines[i - 1].strip())):
            setup.append(s.group(1))
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        found.append(Block(page, i + 1, language, "\n".join(body), setup))
        i = j + 1
    return found


def steps(block: Block) -> list[Step]:
    """The ``$`` commands of a console block, each with the output lines after it."""
    result: list[Step] = []
    lines = block.text.splitlines()
    for n, line in enumerate(lines):
        if line.startswith("$ "):
            where = f"{block.page.name}:{block.line + 1 + n}"
            result.append(Step(where, line[2:], []))
        elif result and result[-1].command.endswith("\\"):
            result[-1].command += "\n" + line
        else:
            assert result, f"{block.page.name}:{block.line}: console output before any '$ ' line"
            result[-1].expected.append(line)
    return result


def shown_commands(block: Block) -> list[list[str]]:
    """The ``gwconfig`` invocations a block shows (only the ``$`` lines of a console block)."""
    if block.language not in _SHELL_LANGUAGES:
        return []
    if block.language == "console":
        return [words for step in steps(block) for words in invocations(step.command)]
    return invocations(block.text)


def matches(expected: list[str], actual: list[str]) -> bool:
    """``actual`` fits ``expected``, where ``...`` is any lines (alone) or any text (in a line)."""
    pattern = ""
    for line in expected:
        if line.strip() == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*?".join(re.escape(part) for part in line.rstrip().split("...")) + r"\n"
    text = "".join(line.rstrip() + "\n" for line in actual)
    return re.fullmatch(pattern, text) is not None


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def scratch_project(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the repository's examples and an environment with no real secret in it."""
    project = tmp / "project"
    project.mkdir()
    for name in ("providers.d", "environments", "schemas"):
        shutil.copytree(ROOT / name, project / name)
    shutil.copytree(ROOT / "docs" / "examples", project / "docs" / "examples")
    home = tmp / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GWCONFIG_", "GITHUB_")) and k not in _DUMMY_SECRETS
    }
    env.update(_DUMMY_SECRETS)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "HOME": str(home),
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",  # stdout and stderr interleave as written
            "GIT_CEILING_DIRECTORIES": str(tmp),  # the scratch copy is no git checkout
            "COLUMNS": "100",
        }
    )
    return project, env


def run_page(page: Path, tmp: Path) -> list[str]:
    """Run every console block of ``page`` in one scratch project; the mismatches found."""
    project, env = scratch_project(tmp)
    script = ["set +e", "__rc=0"]
    checks: list[Step] = []
    for block in blocks(page):
        if block.language != "console":
            continue
        for command in block.setup:
            checks.append(Step(f"{page.name}:{block.line - 1} (setup)", command, ["..."]))
        checks.extend(steps(block))
    for n, step in enumerate(checks):
        script.append(f"printf '\\n{_MARK} {n}\\n'")
        script.append("(exit $__rc)")  # so that `echo $?` shows the previous command's code
        script.append(f"{step.command}\n__rc=$?")
        script.append(f"printf '\\n{_MARK} rc %d\\n' $__rc")
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    outputs = re.split(rf"\n{_MARK} (\d+|rc \d+)\n", "\n" + proc.stdout)
    # ['', '0', out0, 'rc 0', '', '1', out1, 'rc 1', '', ...]
    problems: list[str] = []
    for n, step in enumerate(checks):
        out, rc = outputs[4 * n + 2], int(outputs[4 * n + 3].split()[1])
        actual = _trim(out.split("\n"))
        if not matches(_trim(step.expected), actual):
            problems.append(
                f"{step.where}: $ {step.command}\n--- the page shows:\n"
                + "\n".join(step.expected)
                + "\n--- the command printed:\n"
                + "\n".join(actual)
            )
        failed_ok = n + 1 < len(checks) and checks[n + 1].command.strip() == "echo $?"
        if rc != 0 and not failed_ok:
            problems.append(f"{step.where}: $ {step.command}\nexit code {rc}: {out[-2000:]}")
    return problems


# --- the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_shown_exists(page: Path) -> None:
    shown = [words for block in blocks(page) for words in shown_commands(block)]
    for words in shown:
        assert unknown_options(words) == [], f"{page.name}: gwconfig {' '.join(words)}"
    if page.name not in {"development.md", "performance.md"}:
        assert shown, f"{page.name} shows no gwconfig command"


RUNNABLE = [p for p in PAGES if any(b.language == "console" for b in blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.name)
def test_console_examples_run_as_shown(page: Path, tmp_path: Path) -> None:
    problems = run_page(page, tmp_path)
    assert not problems, "\n\n".join(problems)


def test_the_pages_have_runnable_examples() -> None:
    names = {p.name for p in RUNNABLE}
    assert {"README.md", "manifests.md", "plan-and-apply.md", "secrets.md"} <= names
    assert {"database.md", "runtime.md"} <= names


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (outside code blocks)."""
    found: set[str] = set()
    fenced = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"^#{1,6} (.*)$", line)):
            found.add(_slug(m.group(1)))
    return found


def _links(page: Path) -> list[str]:
    text = re.sub(r"(?ms)^[ \t]*```.*?^[ \t]*```", "", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return re.findall(r"\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files_and_headings(page: Path) -> None:
    for link in _links(page):
        if re.match(r"^[a-z]+:", link):
            continue  # https:, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists(), f"{page.name}: link to missing {link}"
        if anchor:
            assert target.suffix == ".md", f"{page.name}: anchor into a non-page {link}"
            assert anchor in anchors(target), f"{page.name}: no heading for {link}"


def test_readme_is_a_front_page_linking_every_guide_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    linked = {link.partition("#")[0] for link in _links(ROOT / "README.md")}
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in linked, f"README does not link {page.name}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_development_diary(page: Path) -> None:
    text = page.read_text()
    for phrase in ("before today", "today's", "UTC)", "runs of the day", "2026-11-27"):
        if phrase == "UTC)" and "APPLIED (UTC)" in text:
            text = text.replace("APPLIED (UTC)", "")
        assert phrase not in text, f"{page.name}: {phrase!r}"


# --- the checker itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        (["a", "b"], ["a", "b"], True),
        (["a", "..."], ["a", "b", "c"], True),
        (["a", "...", "z"], ["a", "z"], True),
        (["wrote x (sha256:...)"], ["wrote x (sha256:0f)"], True),
        (["a", "b"], ["a", "c"], False),
        (["a"], ["a", "b"], False),
        (["...", "z"], ["a", "b"], False),
    ],
)
def test_output_matching(expected: list[str], actual: list[str], ok: bool) -> None:
    assert matches(expected, actual) is ok


def test_a_wrong_example_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ gwconfig validate\nok: 1 file\n$ gwconfig validate nope\n```\n"
        "<!-- docs-test: true -->\n```console\n$ gwconfig plan --bogus\n$ echo $?\n2\n```\n"
    )
    problems = run_page(page, tmp_path)
    assert len(problems) == 4
    assert "page.md:2: $ gwconfig validate" in problems[0]
    assert "ok: 7 files" in problems[0]  # the real output is shown
    assert "no such file or directory: nope" in problems[1]  # output the page does not show
    assert "exit code 1" in problems[2]  # a failure not followed by `echo $?`
    assert "No such option '--bogus'" in problems[3]  # exit code 2 shown, output not
    (block,) = [b for b in blocks(page) if b.setup]
    assert block.setup == ["true"]
    assert unknown_options(["plan", "--bogus"]) == ["--bogus"]
