"""The state reader: gateway database -> :class:`ActualState` (read only).

One ``SELECT`` per table (:mod:`gwconfig.reconcile.selects`, derived from the field specs),
indexed in dicts, assembled into the canonical shape of :mod:`gwconfig.canonical` so
``diff(desired, actual)`` compares like with like. Stored secrets appear only as
``{"fingerprint": "hmac-sha256:..."}``; their ciphertext is in :attr:`ActualState.secrets`
for the few callers (rotation, runtime) that must decrypt.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import orjson

from gwconfig import settings
from gwconfig.canonical import FORMAT_VERSION, content_hash
from gwconfig.db.direct import open_direct
from gwconfig.db.snapshots import decompress_snapshot
from gwconfig.entities import SecretScope
from gwconfig.entities.records import ApiKeyBody, ParameterBody
from gwconfig.errors import DatabaseError
from gwconfig.manifests.limits import DEPTH_MESSAGE
from gwconfig.perf.gcpause import gc_paused
from gwconfig.reconcile.selects import (
    CONSUMERS,
    KEYS,
    MODELS,
    PARAMETERS,
    PROVIDERS,
    ROUTES,
    Select,
)

if TYPE_CHECKING:
    from gwconfig.secrets.keys import StoredKeys


@dataclass(frozen=True)
class ActualState:
    """What the gateway database holds, in canonical form, with its hash and last revision."""

    data: dict[str, Any]
    secrets: dict[SecretScope, str] = field(repr=False)
    state_hash: str
    last_revision: int | None
    #: stored fingerprint of each secret, keyed like :attr:`secrets`
    fingerprints: dict[SecretScope, str | None] = field(default_factory=dict, repr=False)
    #: recorded id of the key each secret is under (None: not recorded yet), keyed likewise
    key_ids: dict[SecretScope, str | None] = field(default_factory=dict, repr=False)
    #: recorded origin each secret is bound to (None: the provider's current origin), likewise
    origins: dict[SecretScope, str | None] = field(default_factory=dict, repr=False)

    def provider(self, provider_id: str) -> dict[str, Any] | None:
        """The canonical provider ``provider_id``, or None."""
        for p in self.data["providers"]:
            if p["provider_id"] == provider_id:
                return p  # type: ignore[no-any-return]
        return None

    def stored_keys(self) -> StoredKeys:
        """Which keys the secrets read are under (see :meth:`EncryptionKeys.bind`)."""
        return stored_keys(self.secrets, self.key_ids)


def stored_keys(
    secrets: Mapping[SecretScope, str], key_ids: Mapping[SecretScope, str | None]
) -> StoredKeys:
    """The :class:`StoredKeys` of secrets read by :func:`read_tables` (ciphertext, key id)."""
    from gwconfig.secrets.keys import StoredKeys

    return StoredKeys.from_rows((key_ids.get(scope), token) for scope, token in secrets.items())


class StateTables(NamedTuple):
    """The gateway tables in canonical form, before hashing (see :func:`read_tables`)."""

    data: dict[str, Any]
    secrets: dict[SecretScope, str]
    fingerprints: dict[SecretScope, str | None]
    last_revision: int | None
    #: ``read_tables(..., model_rows=True)``: provider_id -> its ``provider_models`` rows sorted by
    #: model_id (see :func:`index_model_rows`); the providers in ``data`` then have no ``models``
    model_rows: dict[str, list[tuple[Any, ...]]] | None = None
    #: recorded key id of each secret (see :attr:`ActualState.key_ids`)
    key_ids: dict[SecretScope, str | None] | None = None
    #: recorded origin of each secret (see :attr:`ActualState.origins`)
    origins: dict[SecretScope, str | None] | None = None


class Reader(Protocol):
    """Runs one read-only SQL statement and returns every row as a plain DBAPI tuple.

    Implemented over a SQLAlchemy ``Connection``/``Session`` (:func:`reader`) and, without
    importing SQLAlchemy, over a DBAPI connection (:class:`gwconfig.db.direct.DirectConnection`).
    """

    #: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``
    dialect: str

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``sql`` (``params`` in the driver's paramstyle: see :func:`mark`)."""


class _ConnectionReader:
    """A :class:`Reader` on a SQLAlchemy connection (errors stay SQLAlchemy errors)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.dialect: str = conn.dialect.name

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        result = self.conn.exec_driver_sql(sql, tuple(params))
        try:
            return list(result.cursor.fetchall())
        finally:
            result.close()


def reader(source: Any) -> Reader:
    """A :class:`Reader` on a SQLAlchemy ``Connection`` or ``Session``, or ``source`` itself."""
    if hasattr(source, "rows") and hasattr(source, "dialect"):
        return source  # type: ignore[no-any-return]
    if not hasattr(source, "exec_driver_sql"):  # a Session: its connection
        source = source.connection()
    return _ConnectionReader(source)


def mark(dialect: str) -> str:
    """The positional parameter marker of gwconfig's driver for ``dialect``."""
    return "?" if dialect == "sqlite" else "%s"


def stored_setting(source: Any, name: str) -> Any:
    """The JSON value of ``gateway_settings`` row ``name`` (None when there is none)."""
    source = reader(source)
    rows = source.rows(
        f"SELECT value FROM gateway_settings WHERE name = {mark(source.dialect)}", (name,)
    )
    if not rows:
        return None
    value = rows[0][0]
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _fetch(source: Reader, select: Select) -> list[tuple[Any, ...]]:
    """All rows of one of the :mod:`~gwconfig.reconcile.selects` statements, as DBAPI tuples."""
    return source.rows(select.sql(source.dialect))


@contextmanager
def reading_database(database_url: str | None, doing: str) -> Iterator[tuple[Any, str]]:
    """A read-only connection and the resolved database URL, without the encryption keys.

    For readers that may not need to decrypt anything (``dump --secrets env``); see
    :meth:`gwconfig.reconcile.commands.Context.read_only`. Straight through the DBAPI driver when
    :func:`~gwconfig.db.direct.open_direct` can (no SQLAlchemy import), else through
    :func:`~gwconfig.db.session.open_database`.
    """

    url = settings.database_url(database_url)
    direct = open_direct(url)
    if direct is not None:
        with direct, direct.translate_errors(doing):
            yield direct, url
        return
    from gwconfig.db.session import connected

    with connected(database_url, doing) as conn:
        yield conn, url


def last_revision(source: Any) -> int | None:
    """The newest revision number (None before the first apply)."""
    rows = reader(source).rows("SELECT max(number) FROM config_revisions")
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def revision_snapshot(source: Any, number: int) -> tuple[str, Any] | None:
    """``(state_hash, snapshot)`` of revision ``number`` (None when there is none)."""

    source = reader(source)
    sql = f"SELECT state_hash, snapshot FROM config_revisions WHERE number = {mark(source.dialect)}"
    rows = source.rows(sql, (number,))
    if not rows:
        return None
    return rows[0][0], decompress_snapshot(rows[0][1])


def revision_state_hash(source: Any, number: int) -> str | None:
    """The state hash recorded by revision ``number`` (None when there is none)."""
    source = reader(source)
    sql = f"SELECT state_hash FROM config_revisions WHERE number = {mark(source.dialect)}"
    rows = source.rows(sql, (number,))
    return rows[0][0] if rows else None


def parse_json_cells(cells: Iterable[str | None]) -> list[Any]:
    """Parse many raw JSON texts (SQL NULL -> None) with one ``orjson`` call."""
    text = ",".join([cell if cell is not None else "null" for cell in cells])
    return _loads("[" + text + "]")


def _loads(text: str) -> list[Any]:
    """``orjson.loads``; JSON it cannot read (nested past its limit) is a clear error."""
    try:
        return orjson.loads(text)  # type: ignore[no-any-return]
    except orjson.JSONDecodeError as exc:
        raise DatabaseError(
            f"the gateway database holds JSON that cannot be read ({str(exc).splitlines()[0]})",
            hint=f"gwconfig writes no data {DEPTH_MESSAGE.removeprefix('data ')}: a row was "
            "written behind its back; fix it with SQL",
        ) from None


def read_state(source: Any) -> ActualState:
    """Read the gateway tables (one query each) into an :class:`ActualState`.

    ``source``: a SQLAlchemy ``Connection`` or ``Session``, or any :class:`Reader`.
    """
    with gc_paused():
        tables = _read_tables(reader(source))
        state_hash = content_hash(tables.data)
    return ActualState(
        data=tables.data,
        secrets=tables.secrets,
        state_hash=state_hash,
        last_revision=tables.last_revision,
        fingerprints=tables.fingerprints,
        key_ids=tables.key_ids or {},
        origins=tables.origins or {},
    )


def read_tables(source: Any, *, model_rows: bool = False) -> StateTables:
    """What :func:`read_state` reads, without the state hash (for the runtime loader).

    With ``model_rows`` the models stay raw rows (:attr:`StateTables.model_rows`), turned into
    canonical dicts only when needed (:func:`model_from_row`, :func:`canonical_models`).
    """
    with gc_paused():
        return _read_tables(reader(source), model_rows)


_by_first = itemgetter(0)
_MODEL_ID, _ENABLED = MODELS.index("model_id"), MODELS.index("enabled")
_DOCS = MODELS.first_document
_by_model_id = itemgetter(_MODEL_ID)
_by_name_environment = itemgetter(KEYS.index("name"), KEYS.index("environment"))
#: the model documents' text ends like this when the aliases (the last document) are empty
_NO_ALIASES = (",[]]", ",null]")
if MODELS.documents[-1].name != "aliases":
    raise TypeError("index_model_rows expects aliases to be the models' last JSON field")
#: ``(row, its parsed documents) -> canonical body`` (providers without their children)
_model_body, _provider_body, _route_body = MODELS.body(), PROVIDERS.body(), ROUTES.body()
_consumer_body = CONSUMERS.body()


def canonical_models(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Canonical model dicts from ``provider_models`` rows (one ``orjson`` call for all)."""
    docs = _loads("[" + ",".join([row[_DOCS] for row in rows]) + "]")
    body = _model_body
    return [body(row, doc) for row, doc in zip(rows, docs, strict=True)]


def model_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """The canonical dict of one ``provider_models`` row (as :func:`read_state` builds it)."""
    return canonical_models((row,))[0]


def index_model_rows(
    rows: Sequence[tuple[Any, ...]],
) -> tuple[dict[str, tuple[Any, ...]], set[str], list[str]]:
    """One provider's rows as ``(model_id -> row, disabled ids, ids that may declare aliases)``.

    An id is left out of the last list only when its aliases are certainly empty, so the caller
    checks the candidates' canonical dicts.
    """
    return (
        {row[_MODEL_ID]: row for row in rows},
        {row[_MODEL_ID] for row in rows if not row[_ENABLED]},
        [row[_MODEL_ID] for row in rows if not row[_DOCS].endswith(_NO_ALIASES)],
    )


def _read_models(conn: Reader, raw: bool) -> dict[str, list[Any]]:
    """provider_id -> its models sorted by model_id: canonical dicts, or the rows when ``raw``."""
    rows = _fetch(conn, MODELS)
    # code-point order whatever the database collation: by provider (usually already so), then
    # each provider's run by model_id; single-key sorts, no key tuples
    rows.sort(key=_by_first)
    counts = Counter(map(_by_first, rows))
    start = 0
    for count in counts.values():
        stop = start + count
        group = rows[start:stop]
        group.sort(key=_by_model_id)
        rows[start:stop] = group
        start = stop
    items: list[Any] = rows if raw else canonical_models(rows)
    grouped: dict[str, list[Any]] = {}
    start = 0
    for pid, count in counts.items():
        grouped[pid] = items[start : start + count]
        start += count
    return grouped


def _read_tables(conn: Reader, raw_models: bool = False) -> StateTables:
    secrets: dict[SecretScope, str] = {}
    fingerprints: dict[SecretScope, str | None] = {}
    key_ids: dict[SecretScope, str | None] = {}
    origins: dict[SecretScope, str | None] = {}
    models = _read_models(conn, raw_models)

    keys: dict[str, list[dict[str, Any]]] = defaultdict(list)
    key_rows = _fetch(conn, KEYS)
    key_rows.sort(key=_by_name_environment)
    for key_row in key_rows:
        pid, name, environment, token, expires_at, fingerprint, kid, origin = key_row
        value = {"fingerprint": fingerprint}
        key = ApiKeyBody(name=name, environment=environment, value=value, expires_at=expires_at)
        keys[pid].append(key.body())
        scope = SecretScope(pid, "key", name, environment)
        secrets[scope] = token
        fingerprints[scope] = fingerprint
        key_ids[scope] = kid
        origins[scope] = origin

    params: dict[str, list[dict[str, Any]]] = defaultdict(list)
    rows = _fetch(conn, PARAMETERS)
    rows.sort(key=_by_name_environment)
    for row, value in zip(rows, parse_json_cells([row[4] for row in rows]), strict=True):
        pid, name, environment, sensitive, _, fingerprint, kid, origin = row
        param = ParameterBody.stored(
            name=name,
            environment=environment,
            sensitive=sensitive,
            value=value,
            fingerprint=fingerprint,
        )
        params[pid].append(param.body())
        if sensitive:
            scope = SecretScope(pid, "param", name, environment)
            secrets[scope] = value
            fingerprints[scope] = fingerprint
            key_ids[scope] = kid
            origins[scope] = origin

    rows = _fetch(conn, PROVIDERS)
    rows.sort(key=_by_first)
    width, start = len(PROVIDERS.documents), PROVIDERS.first_document
    docs = parse_json_cells([cell for row in rows for cell in row[start:]])
    providers = []
    for i, row in enumerate(rows):
        p = _provider_body(row, docs[i * width : (i + 1) * width])
        p["connection_parameters"] = params.get(row[0]) or []
        p["api_keys"] = keys.get(row[0]) or []
        providers.append(p)

    if not raw_models:
        for provider in providers:
            provider["models"] = models.get(provider["provider_id"]) or []

    rows = _fetch(conn, ROUTES)
    default_route: str | None = None
    is_default = ROUTES.index("is_default")
    for row in rows:
        if row[is_default]:
            default_route = row[0]
    rows.sort(key=_by_first)
    width, start = len(ROUTES.documents), ROUTES.first_document
    docs = parse_json_cells([cell for row in rows for cell in row[start:]])
    routes = [_route_body(row, docs[i * width : (i + 1) * width]) for i, row in enumerate(rows)]

    last = last_revision(conn)
    data: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "providers": providers,
        "gateway": {"default_route": default_route, "routes": routes},
    }
    egress = stored_setting(conn, "egress")
    if egress is not None:  # only when set: states without a policy keep their hash
        data["gateway"]["egress"] = egress
    rows = _fetch(conn, CONSUMERS)
    if rows:  # only when there are any: states without consumers keep their hash
        rows.sort(key=_by_first)
        width, start = len(CONSUMERS.documents), CONSUMERS.first_document
        docs = parse_json_cells([cell for row in rows for cell in row[start:]])
        data["consumers"] = [
            _consumer_body(row, docs[i * width : (i + 1) * width]) for i, row in enumerate(rows)
        ]
    return StateTables(
        data, secrets, fingerprints, last, models if raw_models else None, key_ids, origins
    )
