"""Finding ``gwconfig`` command lines in scripts and docs, and resolving them in the click CLI.

Shared by the workflow tests (commands in ``.github/workflows``) and the docs tests (commands in
README.md and docs/).
"""

from __future__ import annotations

import re

import click

from gwconfig.cli import cli

# a command position: line start (after an optional prompt or .venv/bin/), or after && || ; | $(
_INVOCATION = re.compile(
    r"(?m)(?:^[ \t]*(?:\$[ \t]+)?|&&|\|\||;|\||\$\()[ \t]*(?:\S*/)?gwconfig((?:[ \t]+[^\s|;&>)]+)+)"
)


def invocations(script: str) -> list[list[str]]:
    """Every ``gwconfig ...`` command line in a shell script, as words (comments dropped)."""
    joined = script.replace("\\\n", " ")
    lines = [line.split(" #", 1)[0] for line in joined.splitlines()]
    return [m.group(1).split() for m in _INVOCATION.finditer("\n".join(lines))]


def resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command a word list names, and the option words passed to it."""
    ctx = click.Context(cli)
    command: click.Command = cli
    rest = list(words)
    while rest and rest[0].startswith("--") and rest[0] in {"--debug"}:
        rest = rest[1:]  # a group option before the command
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"gwconfig has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, [w.split("=", 1)[0] for w in rest if w.startswith("-") and w != "-"]


def unknown_options(words: list[str]) -> list[str]:
    """The options of a ``gwconfig`` word list that its command does not declare."""
    command, options = resolve(words)
    known = {opt for p in command.params for opt in [*p.opts, *p.secondary_opts]}
    known |= {"-h", "--help"}
    return [option for option in options if option not in known]
