"""The front end's orchestration: per-file work, then checks across documents.

Per-file work (read, render, parse, schema, the checks of one provider) is independent from file
to file. For large inputs ``validate`` shares it between this process and one forked child
(on machines with two or more CPUs); only small summaries and diagnostics come back, so the
cross-document checks see exactly what a single process would have seen.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from gwconfig.errors import Diagnostic
from gwconfig.manifests.checks import (
    ProviderInfo,
    SourceLines,
    cross_checks,
    provider_checks,
    provider_source_lines,
)
from gwconfig.manifests.compile import canonical_provider
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.files import plan_files, read_file
from gwconfig.manifests.limits import DEFAULT_MAX_FILE_SIZE
from gwconfig.manifests.model import GatewayManifest, ProviderManifest
from gwconfig.manifests.validation import validate_documents
from gwconfig.manifests.yamlparse.fast import ParseCache
from gwconfig.perf.forking import Forked, can_fork, fork_call
from gwconfig.perf.gcpause import gc_paused

#: Inputs smaller than this are not worth a second process.
PARALLEL_MIN_BYTES = 400_000

_Doc = TypeVar("_Doc", GatewayManifest, ConsumerManifest)

#: A provider compiled by per-file work: (file order, document index, path, canonical
#: provider, where its entities were declared).
Compiled = tuple[int, int, str, dict[str, Any], SourceLines]


@dataclass
class Partial:
    """The result of per-file work on some files; the first fields travel between processes."""

    files: int = 0
    documents: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)
    infos: list[ProviderInfo] = field(default_factory=list)
    gateway_refs: list[tuple[int, str, int]] = field(default_factory=list)
    consumer_refs: list[tuple[int, str, int]] = field(default_factory=list)
    invalid_provider_ids: set[str] = field(default_factory=set)
    has_sealed: bool = False
    #: When compiling: (file order, document index, path, canonical provider, source lines).
    compiled: list[Compiled] = field(default_factory=list)
    #: Shown paths of files not read whole (documents of them may be missing).
    incomplete: list[str] = field(default_factory=list)
    # Only in the process that did the work:
    providers: list[tuple[ProviderManifest, RawDocument]] = field(default_factory=list)
    gateways: list[tuple[GatewayManifest, RawDocument]] = field(default_factory=list)
    consumers: list[tuple[ConsumerManifest, RawDocument]] = field(default_factory=list)
    docs: dict[str, list[RawDocument]] = field(default_factory=dict)

    def portable(self) -> Partial:
        """A copy without manifests and documents (what a child process sends back)."""
        return Partial(
            self.files,
            self.documents,
            self.diagnostics,
            self.infos,
            self.gateway_refs,
            self.consumer_refs,
            self.invalid_provider_ids,
            self.has_sealed,
            self.compiled,
            self.incomplete,
        )


@dataclass
class FrontResult:
    """Everything the front end found; manifests only when ``keep`` was asked for."""

    files: int
    documents: int
    diagnostics: list[Diagnostic]
    infos: list[ProviderInfo]
    providers: list[tuple[ProviderManifest, RawDocument]]
    gateways: list[tuple[GatewayManifest, RawDocument]]
    has_sealed: bool
    #: every valid Consumer document, in file and document order
    consumers: list[tuple[ConsumerManifest, RawDocument]] = field(default_factory=list)
    #: When compiling: every valid provider in canonical form, in file and document order.
    compiled: list[Compiled] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when nothing is an error."""
        return not any(d.severity == "error" for d in self.diagnostics)


def _sealed(p: ProviderManifest) -> bool:
    return any(k.value.sealed is not None for k in p.api_keys) or any(
        getattr(c.value, "sealed", None) is not None for c in p.connection.parameters
    )


def process(
    items: Iterable[tuple[int, Path, str]],
    *,
    env: str | None,
    values: dict[str, Any] | None,
    positions: bool,
    max_size: int = DEFAULT_MAX_FILE_SIZE,
    build: bool = False,
) -> Partial:
    """Per-file work for ``items`` (order, path, shown path).

    ``build`` also turns every valid provider into its canonical form, with the lines its
    entities were declared on (positions of entities are recorded while parsing).
    """
    part = Partial()
    now = datetime.now(UTC)
    plugins: list[set[str]] = []
    cache = ParseCache()
    for order, path, shown in items:
        loaded = read_file(
            path,
            shown,
            env=env,
            values=values,
            positions=positions,
            cache=cache,
            entities=build,
            max_size=max_size,
        )
        docs, diags = loaded.docs, loaded.diagnostics
        if not loaded.complete:
            part.incomplete.append(shown)
        part.files += 1
        part.documents += len(docs)
        part.diagnostics.extend(diags)
        part.docs[shown] = docs
        validated = validate_documents(docs, diags)
        part.diagnostics.extend(validated.diagnostics)
        part.invalid_provider_ids |= validated.invalid_provider_ids
        for p, doc in validated.providers:
            part.diagnostics.extend(provider_checks(p, doc, now, plugins))
            part.infos.append(ProviderInfo.of(p, doc, order))
            part.providers.append((p, doc))
            part.has_sealed = part.has_sealed or _sealed(p)
            if build:
                lines = provider_source_lines(p, doc)
                part.compiled.append((order, doc.index, doc.path, canonical_provider(p), lines))
        for g, doc in validated.gateways:
            part.gateway_refs.append((order, shown, doc.index))
            part.gateways.append((g, doc))
        for c, doc in validated.consumers:
            part.consumer_refs.append((order, shown, doc.index))
            part.consumers.append((c, doc))
    return part


class _SharedQueue:
    """Per-file work shared by two processes through a pipe: each takes the next batch it can.

    The batch numbers are written to a pipe before the fork and the writing end is closed; both
    processes then read 4-byte records from the same reading end. Every record is read whole by
    exactly one process (a pipe read takes what is there, up to the size asked, under the
    pipe's lock, and only whole records are ever there), so no file is done twice, and a process
    busy with something else (see ``alongside`` in :func:`run_front`) simply takes fewer.
    """

    #: at most this many records: 4 KB, written at once into any pipe before anyone reads
    MAX_BATCHES = 1024

    def __init__(self, items: list[tuple[int, Path, str]], sizes: list[int]) -> None:
        by_size = [item for item, _ in sorted(zip(items, sizes, strict=True), key=lambda x: -x[1])]
        n = min(len(by_size), self.MAX_BATCHES)
        self.batches = [by_size[i::n] for i in range(n)]  # the biggest files are taken first
        self.fd, write_fd = os.pipe()
        try:
            os.write(write_fd, b"".join(i.to_bytes(4, "little") for i in range(n)))
        finally:
            os.close(write_fd)

    def take(self) -> Iterator[tuple[int, Path, str]]:
        """The items of the batches this process takes, until none is left."""
        while record := os.read(self.fd, 4):
            yield from self.batches[int.from_bytes(record, "little")]

    def close(self) -> None:
        """Close this process's reading end."""
        os.close(self.fd)


def _can_fork() -> bool:
    return can_fork()


class _Pending:
    """A forked child computing a :class:`Partial`."""

    def __init__(self, child: Forked) -> None:
        self.child = child

    def result(self) -> Partial | None:
        """The child's result, or None if it failed (the caller then does the work itself)."""
        payload = self.child.result()
        if payload is None:
            return None
        result: Partial = pickle.loads(payload)
        return result


def _in_child(work: Callable[[], Partial]) -> _Pending:
    """Start ``work()`` in a forked child."""
    return _Pending(
        fork_call(lambda: pickle.dumps(work().portable(), protocol=pickle.HIGHEST_PROTOCOL))
    )


def run_front(
    root: Path,
    *,
    env: str | None,
    positions: bool,
    keep: bool,
    parallel: bool,
    build: bool = False,
    alongside: Callable[[], None] | None = None,
) -> FrontResult:
    """Plan, per-file work (maybe on two processes), cross-checks; collect every problem.

    ``keep`` keeps every manifest in this process (no second process then); ``build`` brings
    every valid provider back in canonical form (see :func:`process`). ``alongside`` is other
    work of the caller's, run in this process while a forked child starts on the files (the
    child then takes a larger share); it must not raise.
    """
    with gc_paused():
        return _run_front(
            root,
            env=env,
            positions=positions,
            keep=keep,
            parallel=parallel,
            build=build,
            alongside=alongside,
        )


def _shared(
    items: list[tuple[int, Path, str]],
    sizes: list[int],
    alongside: Callable[[], None] | None,
    *,
    build: bool,
    **kwargs: Any,
) -> list[Partial]:
    """Per-file work shared with a forked child (see :class:`_SharedQueue`)."""
    queue = _SharedQueue(items, sizes)
    try:
        pending = _in_child(lambda: process(queue.take(), build=build, **kwargs))
        if alongside is not None:
            alongside()
        mine = process(queue.take(), build=build, **kwargs)
    finally:
        queue.close()
    other = pending.result()
    if other is not None:
        return [mine, other]
    rest = [item for item in items if item[2] not in mine.docs]  # the child failed: its share
    return [mine, process(rest, build=build, **kwargs)]


def _run_front(
    root: Path,
    *,
    env: str | None,
    positions: bool,
    keep: bool,
    parallel: bool,
    build: bool,
    alongside: Callable[[], None] | None,
) -> FrontResult:
    plan = plan_files(root, env=env)
    diags = list(plan.diagnostics)
    items = [(i, path, shown) for i, (path, shown) in enumerate(plan.files)]
    parts: list[Partial] = []
    kwargs: dict[str, Any] = {
        "env": env,
        "values": plan.values,
        "positions": positions,
        "max_size": plan.limits.max_file_size,
    }
    if parallel and not keep and len(items) > 1 and _can_fork():
        sizes = plan.sizes
        if alongside is not None or sum(sizes) >= PARALLEL_MIN_BYTES:
            parts = _shared(items, sizes, alongside, build=build, **kwargs)
            alongside = None
    if alongside is not None:
        alongside()
    if not parts:
        parts.append(process(items, build=build, **kwargs))
    local_docs: dict[str, list[RawDocument]] = {}
    shown_to_path = {shown: path for _, path, shown in items}
    for part in parts:
        local_docs.update(part.docs)

    def locate(shown: str, index: int) -> RawDocument:
        if shown not in local_docs:
            local_docs[shown] = read_file(shown_to_path[shown], shown, **kwargs).docs
        return next(d for d in local_docs[shown] if d.index == index)

    gateways = _found(parts, locate, GatewayManifest, "gateway")
    consumers = _found(parts, locate, ConsumerManifest, "consumer")
    infos = [info for part in parts for info in part.infos]
    invalid = set().union(*(part.invalid_provider_ids for part in parts))
    for part in parts:
        diags.extend(part.diagnostics)
    incomplete = sorted({*plan.unread, *(f for part in parts for f in part.incomplete)})
    if not incomplete:
        diags.extend(cross_checks(infos, gateways, invalid, locate, consumers))
    elif infos or gateways or consumers:
        # What a file that was not read declares is missing: checking across files now
        # would blame the others for it (a route to a provider of a file with a typo).
        diags.append(_skipped(incomplete))
    return FrontResult(
        files=sum(p.files for p in parts),
        documents=sum(p.documents for p in parts),
        diagnostics=sorted(set(diags)),
        infos=infos,
        providers=[x for part in parts for x in part.providers],
        gateways=gateways,
        has_sealed=any(p.has_sealed for p in parts),
        consumers=consumers,
        compiled=sorted((c for part in parts for c in part.compiled), key=lambda c: c[:2]),
    )


def _found(
    parts: list[Partial], locate: Callable[[str, int], RawDocument], model: type[_Doc], kind: str
) -> list[tuple[_Doc, RawDocument]]:
    """The Gateway or Consumer documents in file order (re-validated when a child found them)."""
    found: list[tuple[tuple[int, int], _Doc, RawDocument]] = []
    for part in parts:
        mine: list[Any] = part.gateways if kind == "gateway" else part.consumers
        refs = part.gateway_refs if kind == "gateway" else part.consumer_refs
        local = {(doc.path, doc.index): (m, doc) for m, doc in mine}
        for order, shown, index in refs:
            if (shown, index) in local:
                m, doc = local[(shown, index)]
            else:
                doc = locate(shown, index)
                m = model.model_validate(doc.data)
            found.append(((order, index), m, doc))
    found.sort(key=lambda x: x[0])
    return [(m, doc) for _, m, doc in found]


def _skipped(incomplete: list[str]) -> Diagnostic:
    """The note that checks across files did not run (they would report what is missing)."""
    n = len(incomplete)
    return Diagnostic(
        incomplete[0],
        1,
        1,
        "checks across files (duplicate ids and aliases, routes, consumers) were skipped: "
        + ("this file was not read whole" if n == 1 else f"{n} files were not read whole"),
        severity="note",
        hint="fix the errors above and run again",
    )
