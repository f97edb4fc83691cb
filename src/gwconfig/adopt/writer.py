"""The manifest writer of ``gwconfig dump`` and ``gwconfig import``: canonical data -> YAML files.

:func:`render_manifests` turns a canonical configuration (:mod:`gwconfig.canonical`) and the
plaintexts of its secrets into the files a person would have written: one ``kind: Provider``
file per provider, named after it, ``gateway.yaml`` when there are routes and ``consumers.yaml``
when there are consumers (:mod:`gwconfig.adopt.consumers_out`); block YAML in
the order of the kinds' field specs (:mod:`gwconfig.entities.fields`), their defaults left out,
strings quoted only where YAML needs it (:mod:`gwconfig.adopt.yamlout`). Secrets are written
sealed to the repository's public key (stable sealing: the same value gives the same blob, see
:func:`gwconfig.secrets.sealing.seal`) or as ``{env: NAME}`` references with predictable
names. :func:`write_tree` puts the files in place, rewriting only those whose bytes changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gwconfig.adopt.yamlout as yamlout
from gwconfig.adopt.consumers_out import CONSUMERS_FILE, consumers_file
from gwconfig.adopt.tree import WriteReport, write_tree
from gwconfig.canonical import DEFAULT_DEADLINE_SECONDS, DEFAULT_MAX_RESPONSE_BYTES
from gwconfig.entities import API_KEY, MODEL, PROVIDER, ROUTE, SecretScope
from gwconfig.entities.fields import EMPTY, REQUIRED
from gwconfig.errors import ConfigurationError, SealingError, SecretError
from gwconfig.secrets.names import param_header
from gwconfig.secrets.sealing import PublicKey, describe_scope, load_public_key, seal

__all__ = [
    "GATEWAY_FILE",
    "Rendered",
    "SecretOutput",
    "WriteReport",
    "file_names",
    "render_manifests",
    "secret_output",
    "write_tree",
]

PROVIDER_SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/provider.schema.json"
GATEWAY_SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/gateway.schema.json"
GATEWAY_FILE = "gateway.yaml"
PUBLIC_KEY_FILE = "sealing.pub"
#: a public key file is one short line (and maybe a comment): anything larger is not one
MAX_PUBLIC_KEY_BYTES = 64 * 1024
#: a provider id that is safe as a file name stem on every system
_SAFE_STEM = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,118}[a-z0-9])?\Z")
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))]
)


@dataclass(frozen=True)
class SecretOutput:
    """How secrets are written: ``sealed`` to ``public_key``, or ``env`` references."""

    mode: Literal["sealed", "env"]
    public_key: PublicKey | None = None


def secret_output(seal_to: str | None, secrets_env: bool, out_dir: Path) -> SecretOutput:
    """The CLI rule: ``--seal-to FILE``, or ``--secrets env``, or ``OUT/sealing.pub`` if present."""
    if seal_to is not None and secrets_env:
        raise ConfigurationError("--seal-to and --secrets env exclude each other; pass one")
    if secrets_env:
        return SecretOutput("env")
    if seal_to is not None:
        return SecretOutput("sealed", _public_key(Path(seal_to)))
    default = Path(out_dir) / PUBLIC_KEY_FILE
    if default.is_file():
        return SecretOutput("sealed", _public_key(default))
    raise ConfigurationError(
        f"no sealing public key: {default} does not exist, and neither --seal-to nor "
        "--secrets env was given; nothing was written",
        hint="pass --seal-to PUBKEY (from 'gwconfig seal-keygen') to write secrets sealed, or "
        "--secrets env to write {env: NAME} references and set those variables yourself",
    )


def _public_key(path: Path) -> PublicKey:
    """A public key file, refused before reading when it is far larger than any key file."""
    try:
        too_big = path.is_file() and path.stat().st_size > MAX_PUBLIC_KEY_BYTES
    except OSError:
        too_big = False  # load_public_key reports it
    if too_big:
        raise SealingError(
            f"{path}: not a gwconfig sealing public key (larger than {MAX_PUBLIC_KEY_BYTES} bytes)"
        )
    return load_public_key(path)


@dataclass(frozen=True)
class Rendered:
    """The files to write (relative path -> bytes) and, for ``--secrets env``, the names used."""

    files: dict[str, bytes]
    env_names: list[tuple[str, str]]


# -- file names and env names ---------------------------------------------------------------------


def _stem(provider_id: str) -> str:
    reserved = provider_id.split(".", 1)[0] in _WINDOWS_RESERVED  # con.x is CON on Windows
    if _SAFE_STEM.match(provider_id) and not reserved:
        return provider_id
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", provider_id.lower()).strip("-._")[:80] or "provider"
    return f"{cleaned}-{hashlib.sha256(provider_id.encode()).hexdigest()[:8]}"


def file_names(provider_ids: list[str]) -> dict[str, str]:
    """provider_id -> its file name: the id itself when safe, never ``gateway.yaml`` nor
    ``consumers.yaml``, unique."""
    used = {GATEWAY_FILE.removesuffix(".yaml"), CONSUMERS_FILE.removesuffix(".yaml")}
    names: dict[str, str] = {}
    for pid in sorted(provider_ids):
        stem = _stem(pid)
        if stem.lower() in used:
            stem += "-provider"
        if stem.lower() in used:
            stem += "-" + hashlib.sha256(pid.encode()).hexdigest()[:8]
        used.add(stem.lower())
        names[pid] = f"{stem}.yaml"
    return names


def _env_part(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_") or "X"


def env_name(scope: SecretScope) -> str:
    """``GW_<PROVIDER>_KEY_<NAME>`` or ``GW_<PROVIDER>_PARAM_<NAME>``, ``_<ENV>`` unless default."""
    parts = ["GW", _env_part(scope.provider_id), scope.kind.upper(), _env_part(scope.name)]
    if scope.environment != "default":
        parts.append(_env_part(scope.environment))
    return "_".join(parts)


class _Secrets:
    """Turns each secret into its reference, remembering the env names handed out."""

    def __init__(self, secrets: Mapping[SecretScope, str], output: SecretOutput) -> None:
        if output.mode == "sealed" and output.public_key is None:
            raise ConfigurationError("sealed output needs a public key")
        self.secrets = secrets
        self.output = output
        self.env_names: list[tuple[str, str]] = []
        self.taken: set[str] = set()

    def reference(self, scope: SecretScope) -> dict[str, str]:
        if self.output.public_key is not None and self.output.mode == "sealed":
            plaintext = self.secrets.get(scope)
            if not plaintext:
                raise SecretError(f"no value for the secret of {describe_scope(scope.sealed)}")
            return {"sealed": seal(plaintext, scope.sealed, self.output.public_key, stable=True)}
        # env references need no plaintext: the names are a function of the scope
        name = env_name(scope)
        if name in self.taken:  # two scopes that sanitise alike: the later one gets a suffix
            name += "_" + hashlib.sha256(scope.id.encode()).hexdigest()[:6].upper()
        self.taken.add(name)
        self.env_names.append((name, describe_scope(scope.sealed)))
        return {"env": name}


# -- documents ------------------------------------------------------------------------------------


#: RequestSettings' defaults, copied so that dump does not import pydantic (~0.1-0.25 s of a
#: short process); tests/test_adopt_writer.py keeps them equal to the model's
SETTINGS_DEFAULTS: dict[str, Any] = {
    "timeout_seconds": 60.0, "connect_timeout_seconds": 10.0, "max_retries": 2,
    "backoff_initial_seconds": 0.5, "backoff_max_seconds": 30.0, "backoff_multiplier": 2.0,
    "jitter": True, "retry_on_status": [408, 409, 429, 500, 502, 503, 504],
    "cooldown_failures": 3, "cooldown_seconds": 30.0, "rate_limit_rpm": None,
    "rate_limit_tpm": None, "max_concurrent_requests": None,
    "deadline_seconds": DEFAULT_DEADLINE_SECONDS, "max_response_bytes": DEFAULT_MAX_RESPONSE_BYTES,
}  # fmt: skip


#: request settings whose integral values are written as integers (``timeout_seconds: 60``)
_FLOAT_FIELDS = frozenset(
    [
        "timeout_seconds", "connect_timeout_seconds", "backoff_initial_seconds",
        "backoff_max_seconds", "backoff_multiplier", "cooldown_seconds", "deadline_seconds",
    ]
)  # fmt: skip


def _tidy(name: str, value: Any) -> Any:
    if name in _FLOAT_FIELDS and isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 2**53 else value
    return value


def _request_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, default in SETTINGS_DEFAULTS.items():
        if name in settings and settings[name] != default:
            out[name] = _tidy(name, settings[name])
    return out


def _pricing(pricing: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if pricing.get("currency", "USD") != "USD":
        out["currency"] = pricing["currency"]
    for name in ("input_per_1m", "output_per_1m", "cached_input_per_1m"):
        if pricing.get(name) is not None:
            out[name] = pricing[name]
    return out


_INDENT = "    "


def _text_line(out: list[str], name: str, value: Any) -> None:
    out.append(f"{_INDENT}{name}: {yamlout.string(value)}")


def _scalar_line(out: list[str], name: str, value: Any) -> None:
    out.append(f"{_INDENT}{name}: {yamlout.scalar(value)}")


def _list_lines(out: list[str], name: str, value: Any) -> None:
    yamlout.string_list(out, _INDENT, name, value)


def _value_lines(out: list[str], name: str, value: Any) -> None:
    yamlout.emit_value(out, _INDENT, name, value)


def _pricing_line(out: list[str], name: str, value: Any) -> None:
    # only the prices set (and a currency other than USD)
    out.append(f"{_INDENT}{name}: {yamlout.flow_map(_pricing(value))}")


#: how a model field is written, by its store (``pricing`` by its name)
_MODEL_FORMATS: dict[str, Callable[[list[str], str, Any], None]] = {
    "text": _text_line, "integer": _scalar_line, "flag": _scalar_line, "list": _list_lines,
}  # fmt: skip


def _model_writer() -> Callable[[list[str], Mapping[str, Any]], None]:
    """``write(out, model)``: the lines of one model list item, generated from the specs.

    Once per model (tens of thousands): each field is one test of its default and, when it is
    not, one call of its writer, with no loop or lookups in between (as ``dataclasses``
    generates ``__init__``).
    """
    first, *rest = MODEL.specs
    namespace: dict[str, Any] = {"string": yamlout.string}
    lines = [
        "def write(out, m):",
        f"    out.append('  - {first.name}: ' + string(m[{first.name!r}]))",
    ]
    for i, f in enumerate(rest):
        value = f"m[{f.name!r}]"
        if f.same_as is not None:
            kept = f"v != m[{f.same_as!r}]"
        elif f.default is EMPTY:
            kept = "v"
        elif f.default is REQUIRED:
            kept = "True"
        else:
            namespace[f"default{i}"] = f.default
            kept = f"v != default{i}"
        write = _pricing_line if f.name == "pricing" else _MODEL_FORMATS.get(f.store, _value_lines)
        namespace[f"write{i}"] = write
        lines += [f"    v = {value}", f"    if {kept}:", f"        write{i}(out, {f.name!r}, v)"]
    exec("\n".join(lines) + "\n", namespace)  # the source is made of field names only
    return namespace["write"]  # type: ignore[no-any-return]


_model_lines = _model_writer()


def _provider_document(p: Mapping[str, Any], refs: _Secrets) -> str:
    emit = yamlout.emit_value
    pid = p["provider_id"]
    out = [PROVIDER_SCHEMA_LINE, "apiVersion: gwconfig/v1", "kind: Provider"]
    for f in PROVIDER.specs:
        if f.json and f.store == "object":  # sections of their own: connection, settings
            _PROVIDER_SECTIONS[f.name](out, p, refs)
        elif not f.omitted(p):
            emit(out, "", f.name, p[f.name])
    if p["api_keys"]:
        out.append("api_keys:")
    for k in p["api_keys"]:
        _api_key_lines(out, pid, k, refs)
    if p["models"]:
        out.append("models:")
        for m in p["models"]:
            _model_lines(out, m)
    return "\n".join(out) + "\n"


def _api_key_lines(out: list[str], pid: str, k: Mapping[str, Any], refs: _Secrets) -> None:
    first, *rest = API_KEY.specs
    out.append(f"  - {first.name}: {yamlout.string(k[first.name])}")
    for f in rest:
        if f.secret:
            ref = refs.reference(SecretScope(pid, "key", k["name"], k["environment"]))
            out.append(f"    {f.name}: {yamlout.flow_map(ref)}")
        elif not f.omitted(k):
            yamlout.emit_value(out, "    ", f.name, k[f.name])


def _connection_section(out: list[str], p: Mapping[str, Any], refs: _Secrets) -> None:
    emit = yamlout.emit_value
    pid = p["provider_id"]
    connection = p.get("connection") or {}
    conn: dict[str, Any] = {}
    for name in ("api_base", "api_version"):
        if connection.get(name) is not None:
            conn[name] = connection[name]
    headers: dict[str, Any] = dict(connection.get("headers") or {})
    params = []
    for c in p.get("connection_parameters") or []:
        header = param_header(c["name"])
        if header is None:
            params.append(c)
        else:  # a secret header: its reference goes back under headers
            scope = SecretScope(pid, "param", c["name"], c["environment"])
            headers[header] = refs.reference(scope)
    if headers:
        conn["headers"] = dict(sorted(headers.items()))
    if conn or params:
        out.append("connection:")
        yamlout.emit_mapping(out, "  ", conn)
    if params:
        out.append("  parameters:")
        for c in params:
            out.append(f"    - name: {yamlout.string(c['name'])}")
            if c["sensitive"]:
                ref = refs.reference(SecretScope(pid, "param", c["name"], c["environment"]))
                out.append(f"      value: {yamlout.flow_map(ref)}")
                out.append("      sensitive: true")
            else:
                emit(out, "      ", "value", c["value"])
            if c["environment"] != "default":
                emit(out, "      ", "environment", c["environment"])


def _settings_section(out: list[str], p: Mapping[str, Any], refs: _Secrets) -> None:
    settings = _request_settings(p.get("request_settings") or {})
    if settings:
        out.append("request_settings:")
        yamlout.emit_mapping(out, "  ", settings)


#: the provider's object fields, each written as a section of its own
_PROVIDER_SECTIONS: dict[str, Callable[[list[str], Mapping[str, Any], _Secrets], None]] = {
    "connection": _connection_section,
    "request_settings": _settings_section,
}


def _target_lines(out: list[str], name: str, targets: list[Mapping[str, Any]]) -> None:
    out.append(f"    {name}:")
    for t in targets:
        out.append(f"      - model: {yamlout.string(t['provider_id'] + '/' + t['model_id'])}")
        if t.get("weight", 1) != 1:
            yamlout.emit_value(out, "        ", "weight", t["weight"])


def _gateway_document(gateway: Mapping[str, Any]) -> str:
    emit = yamlout.emit_value
    out = [GATEWAY_SCHEMA_LINE, "apiVersion: gwconfig/v1", "kind: Gateway"]
    if gateway.get("default_route") is not None:
        emit(out, "", "default_route", gateway["default_route"])
    routes = gateway.get("routes") or []
    if routes:
        out.append("routes:")
    first, *rest = ROUTE.specs
    for r in routes:
        out.append(f"  - {first.name}: {yamlout.string(r[first.name])}")
        for f in rest:
            if f.store == "records":  # the targets, as ``provider/model`` references
                _target_lines(out, f.name, r[f.name])
            elif not f.omitted(r):
                emit(out, "    ", f.name, r[f.name])
    if gateway.get("egress") is not None:
        out.append("egress:")
        emit(out, "  ", "allow", list(gateway["egress"]["allow"]))
    return "\n".join(out) + "\n"


def render_manifests(
    data: Mapping[str, Any], secrets: Mapping[SecretScope, str], output: SecretOutput
) -> Rendered:
    """The manifest files of canonical ``data``, secrets from ``secrets`` written per ``output``.

    The ``value`` of each API key and sensitive parameter in ``data`` is ignored: when sealing,
    the plaintext comes from ``secrets`` (a missing or empty one is a :class:`SecretError`);
    ``{env: NAME}`` references need no plaintext.
    """
    refs = _Secrets(secrets, output)
    providers = sorted(data.get("providers") or [], key=lambda p: p["provider_id"])
    names = file_names([p["provider_id"] for p in providers])
    files: dict[str, bytes] = {}
    for p in providers:
        files[names[p["provider_id"]]] = _provider_document(p, refs).encode("utf-8")
    gateway = data.get("gateway") or {}
    if gateway.get("routes") or gateway.get("default_route") is not None or "egress" in gateway:
        files[GATEWAY_FILE] = _gateway_document(gateway).encode("utf-8")
    if data.get("consumers"):
        files[CONSUMERS_FILE] = consumers_file(data["consumers"])
    return Rendered(files=files, env_names=refs.env_names)
