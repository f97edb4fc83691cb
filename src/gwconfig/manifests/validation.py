"""YAML documents -> validated manifests (pydantic), with located diagnostics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from gwconfig.errors import Diagnostic
from gwconfig.manifests.consumer import ConsumerManifest
from gwconfig.manifests.diagnostics import did_you_mean, pydantic_diagnostics, quoted
from gwconfig.manifests.documents import RawDocument
from gwconfig.manifests.kinds import KINDS
from gwconfig.manifests.model import API_VERSION, GatewayManifest, ProviderManifest


@dataclass
class Validated:
    """Manifests that passed the schema, each with the document it came from."""

    providers: list[tuple[ProviderManifest, RawDocument]] = field(default_factory=list)
    gateways: list[tuple[GatewayManifest, RawDocument]] = field(default_factory=list)
    consumers: list[tuple[ConsumerManifest, RawDocument]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: provider ids of Provider documents that failed validation (to avoid follow-on errors)
    invalid_provider_ids: set[str] = field(default_factory=set)


_KIND_HINT = "kind is Provider, Gateway or Consumer"


def _kind_problem(doc: RawDocument) -> Diagnostic | None:
    data = doc.data
    line, col = doc.template_line(doc.line), doc.col
    if data is None:
        return Diagnostic(doc.path, line, col, "document is empty", hint="remove the empty '---'")
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"the value {quoted(data)}"
        return Diagnostic(
            doc.path,
            line,
            col,
            f"a manifest document must be a mapping with 'apiVersion' and 'kind', got {got}",
        )
    if "apiVersion" not in data:
        return Diagnostic(
            doc.path,
            line,
            col,
            "missing required field 'apiVersion'",
            hint=f"add 'apiVersion: {API_VERSION}'",
        )
    if data["apiVersion"] != API_VERSION:
        line, col = doc.locate(["apiVersion"])
        return Diagnostic(
            doc.path,
            line,
            col,
            f"unsupported apiVersion {quoted(data['apiVersion'])}",
            hint=f"this gwconfig reads 'apiVersion: {API_VERSION}'",
        )
    if "kind" not in data:
        return Diagnostic(doc.path, line, col, "missing required field 'kind'", hint=_KIND_HINT)
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        line, col = doc.locate(["kind"])
        return Diagnostic(
            doc.path,
            line,
            col,
            f"unknown kind {quoted(kind)}",
            hint=did_you_mean(str(kind), KINDS) or _KIND_HINT,
        )
    return None


def nul_characters(doc: RawDocument) -> list[Diagnostic]:
    """A diagnostic for each string (key or value) holding a NUL character.

    PostgreSQL stores no NUL in any text or JSON column, so none may reach the database. One
    serialisation finds out whether there is any at all; only then is the document walked.
    """
    try:
        if b"\\u0000" not in orjson.dumps(doc.data, option=orjson.OPT_NON_STR_KEYS):
            return []
    except (TypeError, orjson.JSONEncodeError):
        pass  # a value orjson cannot write: walk it
    out: list[Diagnostic] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(key, str) and "\x00" in key:
                line, col = doc.key_line(node, key)
                out.append(Diagnostic(doc.path, line, col, _NUL_MESSAGE, hint=_NUL_HINT))
            if isinstance(value, str) and "\x00" in value:
                line, col = doc.value_line(node, key)
                out.append(Diagnostic(doc.path, line, col, _NUL_MESSAGE, hint=_NUL_HINT))
            elif isinstance(value, dict | list):
                walk(value)

    if isinstance(doc.data, dict | list):
        walk(doc.data)
    return out


_NUL_MESSAGE = "a string holds a NUL character (\\0), which the database cannot store"
_NUL_HINT = "remove the \\0 (or \\x00) escape from the string"


def validate_documents(
    docs: list[RawDocument], yaml_diags: list[Diagnostic] | None = None
) -> Validated:
    """Validate every document against its kind's model; collect all problems."""
    out = Validated()
    taken = {(d.path, d.line, d.col) for d in yaml_diags or ()}
    for doc in docs:
        problem = _kind_problem(doc)
        if problem is not None:
            out.diagnostics.append(problem)
            continue
        nul = nul_characters(doc)
        out.diagnostics.extend(nul)
        model = KINDS[doc.data["kind"]]
        try:
            manifest = model.model_validate(doc.data)
        except ValidationError as exc:
            if isinstance(doc.data.get("provider_id"), str):
                out.invalid_provider_ids.add(doc.data["provider_id"])
            for d in pydantic_diagnostics(doc, model, exc):
                # The YAML layer already explained this value (e.g. `model_id: no`).
                if (d.path, d.line, d.col) not in taken:
                    out.diagnostics.append(d)
            continue
        if nul:  # valid otherwise, but not storable: no follow-on errors from it either
            if isinstance(manifest, ProviderManifest):
                out.invalid_provider_ids.add(manifest.provider_id)
            continue
        if isinstance(manifest, ProviderManifest):
            out.providers.append((manifest, doc))
        elif isinstance(manifest, ConsumerManifest):
            out.consumers.append((manifest, doc))
        else:
            out.gateways.append((manifest, doc))
    return out
