"""A provider's models, API keys and connection parameters under ``/providers/{id}/...``.

Model ids may contain ``/``, ``:``, ``.`` and ``@`` (``meta/llama-3:8b@v1.2``): the model path
takes the rest of the URL. API keys and parameters are identified by name, with the
``environment`` query parameter (default ``default``). An API key's value is write-only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from gwconfig.db import columns as col
from gwconfig.db.models import Provider
from gwconfig.manifests.model import SLUG_PATTERN
from gwconfig.server.auth import Caller
from gwconfig.server.rest_access import (
    IfMatch,
    ProviderId,
    keys_of,
    locked_write,
    models_of,
    params_of,
    provider_path,
    service_for,
)
from gwconfig.server.rest_schemas import (
    ApiKeyIn,
    ApiKeyOut,
    Deleted,
    ModelFields,
    ModelIn,
    ModelOut,
    ParameterIn,
    ParameterOut,
)
from gwconfig.server.rest_support import (
    READ_RESPONSES,
    WRITE_RESPONSES,
    db_session,
    json_response,
    not_found,
    not_modified,
    reader,
    shortened,
    translated,
    writer,
)

router = APIRouter(tags=["models, API keys, connection parameters"])

#: no control characters, no blank at either end (the manifest's rule, stated for OpenAPI)
MODEL_ID_PATTERN = r"^[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?$"
ModelId = Path(
    min_length=1, max_length=col.MODEL_ID, pattern=MODEL_ID_PATTERN, description="May hold '/'."
)
Name = Path(min_length=1, max_length=col.IDENT, pattern=r"^[A-Za-z0-9_.-]+$")
Environment = Query("default", min_length=1, max_length=col.IDENT, pattern=SLUG_PATTERN)


def _provider(session: Session, pid: str) -> None:
    if translated(lambda: session.get(Provider, pid)) is None:
        raise not_found(f"provider {pid!r}")


def _one(items: list[dict[str, Any]], what: str, **match: str) -> dict[str, Any]:
    for item in items:
        if all(item[k] == v for k, v in match.items()):
            return item
    raise not_found(what)


def _find(items: list[dict[str, Any]], **match: str) -> dict[str, Any] | None:
    return next((i for i in items if all(i[k] == v for k, v in match.items())), None)


def _listing(request: Request, session: Session, pid: str, items: list[dict[str, Any]]) -> Response:
    _provider(session, pid)
    return not_modified(request, items) or json_response(items)


# -- models ------------------------------------------------------------------------------------


@router.get(
    "/providers/{provider_id}/models", response_model=list[ModelOut], responses=READ_RESPONSES
)
def list_models(
    request: Request,
    provider_id: str = ProviderId,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """The provider's models, ordered by model_id."""
    return _listing(request, session, provider_id, models_of(session, provider_id))


@router.post(
    "/providers/{provider_id}/models",
    status_code=201,
    response_model=ModelOut,
    responses=WRITE_RESPONSES,
)
def create_model(
    request: Request,
    body: ModelIn,
    provider_id: str = ProviderId,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Add a model to the provider."""
    data = {**body.model_dump(exclude_unset=True), "provider_id": provider_id}
    if body.provider_id not in (None, provider_id):
        data["provider_id"] = body.provider_id  # the service says it does not match
    _provider(session, provider_id)
    service = translated(lambda: service_for(request, session, caller))
    created = translated(lambda: service.create_model(data))
    model_path = quote(created["model_id"], safe="/:@")
    where = f"{provider_path(request, provider_id)}/models/{model_path}"
    return json_response(created, status=201, headers={"Location": where})


@router.get(
    "/providers/{provider_id}/models/{model_id:path}",
    response_model=ModelOut,
    responses=READ_RESPONSES,
)
def get_model(
    request: Request,
    provider_id: str = ProviderId,
    model_id: str = ModelId,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """One model."""
    _provider(session, provider_id)
    body = _one(models_of(session, provider_id), f"model {model_id!r}", model_id=model_id)
    return not_modified(request, body) or json_response(body)


def _current_model(session: Session, pid: str, model_id: str) -> dict[str, Any] | None:
    return _find(models_of(session, pid), model_id=model_id)


@router.put(
    "/providers/{provider_id}/models/{model_id:path}",
    response_model=ModelOut,
    responses=WRITE_RESPONSES,
)
def update_model(
    request: Request,
    body: ModelFields,
    provider_id: str = ProviderId,
    model_id: str = ModelId,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Change a model's fields (those given)."""
    data = body.model_dump(exclude_unset=True)
    updated = locked_write(
        request, session, caller, provider_id,
        lambda: _current_model(session, provider_id, model_id), if_match,
        f"model {model_id!r} of {provider_id!r}",
        lambda service: service.update_model(provider_id, model_id, data),
    )  # fmt: skip
    return json_response(updated)


@router.delete(
    "/providers/{provider_id}/models/{model_id:path}",
    response_model=Deleted,
    responses=WRITE_RESPONSES,
)
def delete_model(
    request: Request,
    provider_id: str = ProviderId,
    model_id: str = ModelId,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a model."""
    locked_write(
        request, session, caller, provider_id,
        lambda: _current_model(session, provider_id, model_id), if_match,
        f"model {model_id!r} of {provider_id!r}",
        lambda service: service.delete_model(provider_id, model_id),
    )  # fmt: skip
    body = {"deleted": True, "provider_id": provider_id, "model_id": model_id}
    return json_response(body, etag=False)


# -- API keys ----------------------------------------------------------------------------------


@router.get(
    "/providers/{provider_id}/api-keys", response_model=list[ApiKeyOut], responses=READ_RESPONSES
)
def list_api_keys(
    request: Request,
    provider_id: str = ProviderId,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """The provider's API keys: name, environment, expiry, short fingerprint; never a value."""
    return _listing(request, session, provider_id, keys_of(session, provider_id))


@router.post(
    "/providers/{provider_id}/api-keys",
    status_code=201,
    response_model=ApiKeyOut,
    responses=WRITE_RESPONSES,
)
def create_api_key(
    request: Request,
    body: ApiKeyIn,
    provider_id: str = ProviderId,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Store an API key (encrypted); the answer never contains its value."""
    data = {**body.model_dump(exclude_unset=True), "provider_id": provider_id}
    _provider(session, provider_id)
    service = translated(lambda: service_for(request, session, caller))
    created = shortened(translated(lambda: service.create_api_key(data)))
    where = f"{provider_path(request, provider_id)}/api-keys/{quote(created['name'], safe='')}"
    if created["environment"] != "default":
        where += f"?environment={quote(created['environment'], safe='')}"
    return json_response(created, status=201, headers={"Location": where})


@router.get(
    "/providers/{provider_id}/api-keys/{name}",
    response_model=ApiKeyOut,
    responses=READ_RESPONSES,
)
def get_api_key(
    request: Request,
    provider_id: str = ProviderId,
    name: str = Name,
    environment: str = Environment,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """One API key (masked)."""
    _provider(session, provider_id)
    what = f"API key {name!r}@{environment!r} of {provider_id!r}"
    body = _one(keys_of(session, provider_id), what, name=name, environment=environment)
    return not_modified(request, body) or json_response(body)


@router.delete(
    "/providers/{provider_id}/api-keys/{name}", response_model=Deleted, responses=WRITE_RESPONSES
)
def delete_api_key(
    request: Request,
    provider_id: str = ProviderId,
    name: str = Name,
    environment: str = Environment,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Delete an API key."""
    locked_write(
        request, session, caller, provider_id,
        lambda: _find(keys_of(session, provider_id), name=name, environment=environment),
        if_match, f"API key {name!r}@{environment!r} of {provider_id!r}",
        lambda service: service.delete_api_key(provider_id, name, environment),
    )  # fmt: skip
    body = {"deleted": True, "provider_id": provider_id, "name": name, "environment": environment}
    return json_response(body, etag=False)


# -- connection parameters ---------------------------------------------------------------------


@router.get(
    "/providers/{provider_id}/connection-parameters",
    response_model=list[ParameterOut],
    responses=READ_RESPONSES,
)
def list_parameters(
    request: Request,
    provider_id: str = ProviderId,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """The provider's connection parameters; sensitive values masked."""
    return _listing(request, session, provider_id, params_of(session, provider_id))


@router.post(
    "/providers/{provider_id}/connection-parameters",
    response_model=ParameterOut,
    responses={**WRITE_RESPONSES, 201: {"model": ParameterOut, "description": "Created"}},
)
def set_parameter(
    request: Request,
    body: ParameterIn,
    provider_id: str = ProviderId,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Create (201) or replace (200) a connection parameter."""
    data = {**body.model_dump(exclude_unset=True), "provider_id": provider_id}
    _provider(session, provider_id)
    env = body.environment or "default"
    existed = _find(params_of(session, provider_id), param_name=body.param_name, environment=env)
    service = translated(lambda: service_for(request, session, caller))
    stored = shortened(translated(lambda: service.set_connection_parameter(data)))
    return json_response(stored, status=200 if existed else 201)


@router.get(
    "/providers/{provider_id}/connection-parameters/{name}",
    response_model=ParameterOut,
    responses=READ_RESPONSES,
)
def get_parameter(
    request: Request,
    provider_id: str = ProviderId,
    name: str = Name,
    environment: str = Environment,
    _caller: Caller = Depends(reader),
    session: Session = Depends(db_session),
) -> Response:
    """One connection parameter (masked when sensitive)."""
    _provider(session, provider_id)
    what = f"connection parameter {name!r}@{environment!r} of {provider_id!r}"
    body = _one(params_of(session, provider_id), what, param_name=name, environment=environment)
    return not_modified(request, body) or json_response(body)


@router.delete(
    "/providers/{provider_id}/connection-parameters/{name}",
    response_model=Deleted,
    responses=WRITE_RESPONSES,
)
def delete_parameter(
    request: Request,
    provider_id: str = ProviderId,
    name: str = Name,
    environment: str = Environment,
    if_match: str | None = IfMatch,
    caller: Caller = Depends(writer),
    session: Session = Depends(db_session),
) -> Response:
    """Delete a connection parameter."""
    locked_write(
        request, session, caller, provider_id,
        lambda: _find(params_of(session, provider_id), param_name=name, environment=environment),
        if_match, f"connection parameter {name!r}@{environment!r} of {provider_id!r}",
        lambda service: service.delete_connection_parameter(provider_id, name, environment),
    )  # fmt: skip
    body = {"deleted": True, "provider_id": provider_id, "param_name": name}
    return json_response(body, etag=False)
