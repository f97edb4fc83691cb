"""A provider's models, API keys and connection parameters under ``/providers/{id}/...``.

Model ids may contain ``/``, ``:``, ``.`` and ``@`` (``meta/llama-3:8b@v1.2``): the model path
takes the rest of the URL. API keys and parameters are identified by name, with the
``environment`` query parameter (default ``default``). An API key's value is write-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from gwconfig.db import columns as col
from gwconfig.db import reads
from gwconfig.manifests.model import SLUG_PATTERN
from gwconfig.seed.service import ProviderService
from gwconfig.server.rest.access import (
    IfMatch,
    ProviderId,
    Read,
    Reading,
    Write,
    Writing,
    keys_of,
    models_of,
    params_of,
    provider_path,
    shortened,
)
from gwconfig.server.rest.errors import (
    READ_RESPONSES,
    WRITE_RESPONSES,
    DepthLimitedRoute,
    not_found,
    translated,
)
from gwconfig.server.rest.etags import json_response, not_modified
from gwconfig.server.rest.schemas import (
    ApiKeyIn,
    ApiKeyOut,
    Deleted,
    ModelFields,
    ModelIn,
    ModelOut,
    ParameterIn,
    ParameterOut,
)

T = TypeVar("T")
router = APIRouter(tags=["models, API keys, connection parameters"], route_class=DepthLimitedRoute)

#: no control characters, no blank at either end (the manifest's rule, stated for OpenAPI)
MODEL_ID_PATTERN = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
ModelId = Path(
    min_length=1, max_length=col.MODEL_ID, pattern=MODEL_ID_PATTERN, description="May hold '/'."
)
Name = Path(min_length=1, max_length=col.IDENT, pattern=r"^[A-Za-z0-9_.-]+$")
Environment = Query("default", min_length=1, max_length=col.IDENT, pattern=SLUG_PATTERN)


def _provider(session: Session, pid: str) -> None:
    if translated(lambda: reads.find_provider(session, pid)) is None:
        raise not_found(f"provider {pid!r}")


def _find(items: list[dict[str, Any]], match: dict[str, str]) -> dict[str, Any] | None:
    return next((i for i in items if all(i[k] == v for k, v in match.items())), None)


def _created(
    w: Writing, pid: str, body: BaseModel, create: Callable[[ProviderService, dict[str, Any]], T]
) -> T:
    """``create(service, data)`` for an existing provider ``pid`` (404 otherwise), errors
    translated; ``data`` is the body's fields given, with the provider's id."""
    named = getattr(body, "provider_id", None)  # a model may name it (the service checks)
    data = {**body.model_dump(exclude_unset=True), "provider_id": pid if named is None else named}
    _provider(w.session, pid)
    return w.run(lambda service: create(service, data))


def _post(segment: str, schema: type[BaseModel]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``router.post`` of a new child under ``/providers/{id}/segment`` (201)."""
    return router.post(
        f"/providers/{{provider_id}}/{segment}",
        status_code=201,
        response_model=schema,
        responses=WRITE_RESPONSES,
    )


# -- what the three kinds share: listing, reading and deleting one -------------------------------


@dataclass(frozen=True)
class Located:
    """One child named by a request: the fields that identify it, and how messages name it."""

    match: dict[str, str]
    label: str
    #: the 404 of a GET says which provider (keys and parameters) or not (models)
    read_names_provider: bool = True

    def what(self, pid: str, *, read: bool = False) -> str:
        """``label`` (``of 'pid'`` added, except on a model's GET)."""
        return self.label if read and not self.read_names_provider else f"{self.label} of {pid!r}"


def locate_model(model_id: str = ModelId) -> Located:
    """A model, by the rest of the path."""
    return Located({"model_id": model_id}, f"model {model_id!r}", read_names_provider=False)


def locate_key(name: str = Name, environment: str = Environment) -> Located:
    """An API key, by name and ``?environment``."""
    return Located({"name": name, "environment": environment}, f"API key {name!r}@{environment!r}")


def locate_parameter(name: str = Name, environment: str = Environment) -> Located:
    """A connection parameter, by name and ``?environment``."""
    label = f"connection parameter {name!r}@{environment!r}"
    return Located({"param_name": name, "environment": environment}, label)


@dataclass(frozen=True)
class Kind:
    """A kind of child: its URL segment, schema, reader, locator and delete."""

    segment: str
    item: str
    schema: type[BaseModel]
    read: Callable[[Session, str], list[dict[str, Any]]]
    locate: Callable[..., Located]
    delete: Callable[[ProviderService, str, Located], Any]
    #: the answer of a DELETE, from the provider id and the child's fields
    deleted: Callable[[str, Located], dict[str, Any]]
    #: (endpoint name, docstring) of the list, get and delete endpoints
    docs: tuple[tuple[str, str], tuple[str, str], tuple[str, str]]


def add_routes(kind: Kind) -> None:
    """The list, get and delete endpoints of ``kind`` on :data:`router`."""
    collection = f"/providers/{{provider_id}}/{kind.segment}"
    (list_name, list_doc), (get_name, get_doc), (delete_name, delete_doc) = kind.docs

    def listing(provider_id: str = ProviderId, r: Reading = Read) -> Response:
        items = kind.read(r.session, provider_id)
        _provider(r.session, provider_id)
        return not_modified(r.request, items) or json_response(items)

    def get(
        provider_id: str = ProviderId, located: Located = Depends(kind.locate), r: Reading = Read
    ) -> Response:
        _provider(r.session, provider_id)
        body = _find(kind.read(r.session, provider_id), located.match)
        if body is None:
            raise not_found(located.what(provider_id, read=True))
        return not_modified(r.request, body) or json_response(body)

    def delete(
        provider_id: str = ProviderId,
        located: Located = Depends(kind.locate),
        if_match: str | None = IfMatch,
        w: Writing = Write,
    ) -> Response:
        w.locked(
            provider_id, lambda: _find(kind.read(w.session, provider_id), located.match),
            if_match, located.what(provider_id),
            lambda service: kind.delete(service, provider_id, located),
        )  # fmt: skip
        return json_response(kind.deleted(provider_id, located), etag=False)

    item = collection + kind.item
    router.get(
        collection, response_model=cast(Any, list)[kind.schema], responses=READ_RESPONSES,
        name=list_name, description=list_doc,
    )(listing)  # fmt: skip
    router.get(
        item, response_model=kind.schema, responses=READ_RESPONSES, name=get_name,
        description=get_doc,
    )(get)  # fmt: skip
    router.delete(
        item, response_model=Deleted, responses=WRITE_RESPONSES, name=delete_name,
        description=delete_doc,
    )(delete)  # fmt: skip


MODELS = Kind(
    "models", "/{model_id:path}", ModelOut, models_of, locate_model,
    lambda service, pid, at: service.delete_model(pid, at.match["model_id"]),
    lambda pid, at: {"deleted": True, "provider_id": pid, **at.match},
    (("list_models", "The provider's models, ordered by model_id."),
     ("get_model", "One model."), ("delete_model", "Delete a model.")),
)  # fmt: skip
API_KEYS = Kind(
    "api-keys", "/{name}", ApiKeyOut, keys_of, locate_key,
    lambda service, pid, at: service.delete_api_key(pid, *at.match.values()),
    lambda pid, at: {"deleted": True, "provider_id": pid, **at.match},
    (("list_api_keys",
      "The provider's API keys: name, environment, expiry, short fingerprint; never a value."),
     ("get_api_key", "One API key (masked)."), ("delete_api_key", "Delete an API key.")),
)  # fmt: skip
PARAMETERS = Kind(
    "connection-parameters", "/{name}", ParameterOut, params_of, locate_parameter,
    lambda service, pid, at: service.delete_connection_parameter(pid, *at.match.values()),
    lambda pid, at: {"deleted": True, "provider_id": pid, "param_name": at.match["param_name"]},
    (("list_parameters", "The provider's connection parameters; sensitive values masked."),
     ("get_parameter", "One connection parameter (masked when sensitive)."),
     ("delete_parameter", "Delete a connection parameter.")),
)  # fmt: skip


# -- models ---------------------------------------------------------------------------------------

add_routes(MODELS)


@_post("models", ModelOut)
def create_model(body: ModelIn, provider_id: str = ProviderId, w: Writing = Write) -> Response:
    """Add a model to the provider."""
    created = _created(w, provider_id, body, ProviderService.create_model)
    model_path = quote(created["model_id"], safe="/:@")
    where = f"{provider_path(w.request, provider_id)}/models/{model_path}"
    return json_response(created, status=201, headers={"Location": where})


@router.put(
    "/providers/{provider_id}/models/{model_id:path}",
    response_model=ModelOut,
    responses=WRITE_RESPONSES,
)
def update_model(
    body: ModelFields,
    provider_id: str = ProviderId,
    located: Located = Depends(locate_model),
    if_match: str | None = IfMatch,
    w: Writing = Write,
) -> Response:
    """Change a model's fields (those given)."""
    data = body.model_dump(exclude_unset=True)
    model_id = located.match["model_id"]
    updated = w.locked(
        provider_id, lambda: _find(models_of(w.session, provider_id), located.match), if_match,
        located.what(provider_id),
        lambda service: service.update_model(provider_id, model_id, data),
    )  # fmt: skip
    return json_response(updated)


# -- API keys -------------------------------------------------------------------------------------

add_routes(API_KEYS)


@_post("api-keys", ApiKeyOut)
def create_api_key(body: ApiKeyIn, provider_id: str = ProviderId, w: Writing = Write) -> Response:
    """Store an API key (encrypted); the answer never contains its value."""
    created = shortened(_created(w, provider_id, body, ProviderService.create_api_key))
    where = f"{provider_path(w.request, provider_id)}/api-keys/{quote(created['name'], safe='')}"
    if created["environment"] != "default":
        where += f"?environment={quote(created['environment'], safe='')}"
    return json_response(created, status=201, headers={"Location": where})


# -- connection parameters ------------------------------------------------------------------------

add_routes(PARAMETERS)


@router.post(
    "/providers/{provider_id}/connection-parameters",
    response_model=ParameterOut,
    responses={**WRITE_RESPONSES, 201: {"model": ParameterOut, "description": "Created"}},
)
def set_parameter(body: ParameterIn, provider_id: str = ProviderId, w: Writing = Write) -> Response:
    """Create (201) or replace (200) a connection parameter."""
    env = body.environment or "default"
    match = {"param_name": body.param_name, "environment": env}
    existed = _find(params_of(w.session, provider_id), match)
    stored = shortened(_created(w, provider_id, body, ProviderService.set_connection_parameter))
    return json_response(stored, status=200 if existed else 201)
