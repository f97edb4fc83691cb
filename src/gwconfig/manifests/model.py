"""Manifest schema, apiVersion ``gwconfig/v1`` (pydantic v2, frozen, ``extra="forbid"``).

Three kinds of document live in ``providers.d/``:

* ``kind: Provider`` -- one LLM provider with its connection, request settings, API keys and models.
* ``kind: Gateway`` -- at most one: named routes with ordered fallback targets and a default route.
* ``kind: Consumer`` -- a team or service, its models, limits and budget
  (:mod:`gwconfig.manifests.consumer`); :mod:`gwconfig.manifests.kinds` maps each kind to its model.

Field descriptions feed the generated JSON Schemas in ``schemas/``. Secret values are only ever
references (:class:`SecretRef`): ``{env: NAME}``, ``{file: PATH}`` or ``{sealed: "gwseal:v1:..."}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

from gwconfig.canonical import DEFAULT_DEADLINE_SECONDS, DEFAULT_MAX_RESPONSE_BYTES
from gwconfig.db import columns as col
from gwconfig.manifests.egress import checked_entry
from gwconfig.manifests.shared_state import SharedStateSpec
from gwconfig.secrets.refs import env_reference_problem, file_reference_problem

API_VERSION = "gwconfig/v1"

SLUG_PATTERN = rf"^[a-z0-9](?:[a-z0-9_.-]{{0,{col.IDENT - 2}}}[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
CAPABILITY_PATTERN = r"^[a-z0-9][a-z0-9_]*$"

#: Provider types with a built-in runtime implementation. Others need a plugin (entry point).
KNOWN_PROVIDER_TYPES: tuple[str, ...] = ("openai", "azure_openai", "anthropic", "mock")

ModelType = Literal[
    "chat",
    "completion",
    "responses",
    "embedding",
    "image_generation",
    "image_edit",
    "audio_transcription",
    "audio_speech",
    "video_generation",
    "realtime",
    "rerank",
    "moderation",
    "ocr",
    "search",
    "other",
]

Slug = Annotated[
    StrictStr,
    Field(
        max_length=col.IDENT,
        pattern=SLUG_PATTERN,
        description="Lowercase identifier: letters, digits, '_', '-', '.'; at most "
        f"{col.IDENT} characters.",
    ),
]
EnvironmentName = Annotated[
    StrictStr,
    Field(
        max_length=col.IDENT,
        pattern=SLUG_PATTERN,
        description="Deployment environment this entry applies to; 'default' applies to all.",
    ),
]

SECRET_HINT = (
    "secrets are never written in plain text: write {env: VARIABLE_NAME}, {file: path/to/file} "
    "or a sealed value from 'gwconfig seal' ({sealed: \"gwseal:v1:...\"})"
)


def _fits_text_column(value: str) -> str:
    why = col.too_long_text(value)
    if why is not None:
        raise ValueError(why)
    return value


#: free text stored in a TEXT column (64 KiB on MySQL/MariaDB)
Text = Annotated[StrictStr, AfterValidator(_fits_text_column)]
#: a human name stored in a VARCHAR column
DisplayName = Annotated[StrictStr, Field(max_length=col.DISPLAY_NAME)]
#: a count stored in an INTEGER column
Count = Annotated[int, Field(ge=1, le=col.INTEGER_MAX)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class SecretRef(_Strict):
    """A reference to a secret value; exactly one of ``env``, ``file`` or ``sealed``."""

    env: StrictStr | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Name of an environment variable holding the secret (read at plan/apply time).",
    )
    file: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="Path of a file holding the secret (trailing newline stripped); relative "
        "paths are resolved against the working directory.",
    )
    sealed: StrictStr | None = Field(
        default=None,
        pattern=r"^gwseal:v1:[A-Za-z0-9_=-]+$",
        description="A value sealed with 'gwconfig seal' to the repository's public key.",
    )

    @field_validator("env")
    @classmethod
    def _not_own_variable(cls, name: str | None) -> str | None:
        problem = None if name is None else env_reference_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    @field_validator("file")
    @classmethod
    def _not_pseudo_file(cls, path: str | None) -> str | None:
        problem = None if path is None else file_reference_problem(path)
        if problem is not None:
            raise ValueError(problem)
        return path

    @model_validator(mode="before")
    @classmethod
    def _not_plain(cls, data: Any) -> Any:
        if isinstance(data, str | int | float | bool):
            raise ValueError(f"a plain value is not allowed here; {SECRET_HINT}")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "file", "sealed") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a secret reference needs exactly one of 'env', 'file' or 'sealed'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def to_json(self) -> dict[str, str]:
        """The canonical JSON form, e.g. ``{"env": "OPENAI_API_KEY"}``."""
        for k in ("env", "file", "sealed"):
            v = getattr(self, k)
            if v is not None:
                return {k: v}
        raise AssertionError("unreachable")  # pragma: no cover

    def describe(self) -> str:
        """A printable, non-secret description such as ``env:OPENAI_API_KEY``."""
        kind, value = next(iter(self.to_json().items()))
        return f"sealed:{value[:18]}..." if kind == "sealed" else f"{kind}:{value}"


ParamValue = StrictStr | int | float | StrictBool | SecretRef


class ConnectionParameterSpec(_Strict):
    """A named connection parameter (e.g. ``organization``); sensitive ones are secret refs."""

    name: StrictStr = Field(
        max_length=col.PARAM_NAME,
        pattern=rf"^[A-Za-z_][A-Za-z0-9_.-]{{0,{col.PARAM_NAME - 1}}}$",
        description="Parameter name.",
    )
    value: ParamValue = Field(
        description="The value; a secret reference ({env: ...}, {file: ...}, {sealed: ...}) "
        "for sensitive values."
    )
    sensitive: StrictBool = Field(
        default=False,
        description="Marks the value as a secret: it must then be a secret reference and is "
        "stored encrypted.",
    )
    environment: EnvironmentName = "default"

    @field_validator("value")
    @classmethod
    def _fits_its_column(cls, v: Any) -> Any:
        # a plain value is stored as JSON text in a TEXT column
        if isinstance(v, str):
            why = col.too_long_text(json.dumps(v, ensure_ascii=False))
            if why is not None:
                raise ValueError(f"{why} (stored as JSON)")
        return v

    @model_validator(mode="after")
    def _sensitive_is_reference(self) -> ConnectionParameterSpec:
        if self.sensitive and not isinstance(self.value, SecretRef):
            raise ValueError(f"parameter '{self.name}' is sensitive; {SECRET_HINT}")
        return self

    @property
    def is_sensitive(self) -> bool:
        """True when the value is a secret (declared sensitive or given as a reference)."""
        return self.sensitive or isinstance(self.value, SecretRef)


class Connection(_Strict):
    """How to reach the provider's API."""

    api_base: StrictStr | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="Base URL of the API, e.g. https://api.openai.com/v1 or http://vllm:8000/v1.",
    )
    api_version: StrictStr | None = Field(
        default=None, description="API version (Azure OpenAI, Anthropic), e.g. 2024-10-21."
    )
    headers: dict[StrictStr, StrictStr | SecretRef] = Field(
        default_factory=dict,
        description="Extra HTTP headers sent with every request. A header named like a "
        "credential (Authorization, api-key, X-Api-Key, ...: 'auth', 'key', 'token', 'secret', "
        "'cookie', 'signature' or 'passw' in its name) is a secret: its value must be a secret "
        "reference ({env: ...}, {file: ...}, {sealed: ...}), stored encrypted like a key.",
    )
    parameters: tuple[ConnectionParameterSpec, ...] = Field(
        default=(),
        description="Named connection parameters; identity is (name, environment).",
    )


class RequestSettings(_Strict):
    """Timeouts, retries, backoff, cooldown and rate limits for calls to this provider."""

    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Whole-request timeout."
    )
    connect_timeout_seconds: float = Field(
        default=10.0, gt=0, le=600, description="TCP connect timeout."
    )
    max_retries: int = Field(default=2, ge=0, le=20, description="Retries after the first attempt.")
    backoff_initial_seconds: float = Field(
        default=0.5, ge=0, le=600, description="First backoff delay."
    )
    backoff_max_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="Backoff delay cap."
    )
    backoff_multiplier: float = Field(
        default=2.0, ge=1, le=10, description="Backoff growth factor."
    )
    jitter: StrictBool = Field(default=True, description="Randomise backoff delays (full jitter).")
    retry_on_status: tuple[int, ...] = Field(
        default=(408, 409, 429, 500, 502, 503, 504),
        description="HTTP status codes that are retried (Retry-After is honoured).",
    )
    cooldown_failures: int = Field(
        default=3, ge=1, le=1000, description="Consecutive failures before a target cools down."
    )
    cooldown_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="How long a failing target is skipped."
    )
    rate_limit_rpm: int | None = Field(default=None, ge=1, description="Requests per minute cap.")
    rate_limit_tpm: int | None = Field(default=None, ge=1, description="Tokens per minute cap.")
    max_concurrent_requests: int | None = Field(
        default=None, ge=1, description="Concurrent in-flight requests cap."
    )
    deadline_seconds: float = Field(
        default=DEFAULT_DEADLINE_SECONDS,
        gt=0,
        le=86400,
        description="The longest a request may take, across retries and fallbacks (a route's "
        "request gets the smallest deadline of its targets' providers).",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="The largest reply read from the provider (a body, or a whole stream).",
    )

    @field_validator("retry_on_status")
    @classmethod
    def _statuses(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        for code in v:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code")
        return tuple(sorted(set(v)))


class ApiKeySpec(_Strict):
    """An API key for the provider; identity is (name, environment)."""

    name: Slug = Field(default="default", description="Key name, unique per environment.")
    environment: EnvironmentName = "default"
    value: SecretRef = Field(description="The key, as a secret reference. " + SECRET_HINT + ".")
    expires_at: datetime | None = Field(
        default=None, description="When the key expires (ISO 8601); expired keys are never used."
    )


class Pricing(_Strict):
    """Prices per one million tokens."""

    currency: StrictStr = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    input_per_1m: float | None = Field(default=None, ge=0, description="Input (prompt) tokens.")
    output_per_1m: float | None = Field(default=None, ge=0, description="Output tokens.")
    cached_input_per_1m: float | None = Field(
        default=None, ge=0, description="Cached input tokens."
    )


class ModelSpec(_Strict):
    """A model served by the provider; identity is (provider_id, model_id)."""

    model_id: StrictStr = Field(
        min_length=1,
        max_length=col.MODEL_ID,
        pattern=r"^\S(?:.*\S)?$",
        description="The provider's model name as sent in API calls, e.g. gpt-4o.",
    )
    display_name: DisplayName | None = Field(
        default=None, description="Human name; defaults to model_id."
    )
    model_type: ModelType = Field(default="chat", description="What the model does.")
    context_window: Count | None = Field(default=None, description="Max input tokens.")
    max_tokens: Count | None = Field(default=None, description="Max output tokens.")
    enabled: StrictBool = Field(default=True, description="Disabled models are never routed to.")
    capabilities: tuple[Annotated[StrictStr, Field(pattern=CAPABILITY_PATTERN)], ...] = Field(
        default=(), description="Capability flags, e.g. vision, function_calling, streaming."
    )
    parameters: dict[StrictStr, Any] = Field(
        default_factory=dict,
        description="Default request parameters or provider specifics (e.g. Azure deployment).",
    )
    pricing: Pricing | None = Field(default=None, description="Prices per million tokens.")
    aliases: tuple[StrictStr, ...] = Field(
        default=(), description="Other names this model answers to (must be unique gateway-wide)."
    )


class ProviderManifest(_Strict):
    """``kind: Provider``: one LLM provider (seed fields of ``create_provider``)."""

    apiVersion: Literal["gwconfig/v1"] = Field(description="Always gwconfig/v1.")
    kind: Literal["Provider"]
    provider_id: Slug = Field(description="Unique provider id, e.g. openai-prod.")
    provider_type: Slug = Field(
        description="Implementation: openai, azure_openai, anthropic, mock, or a plugin's type."
    )
    display_name: DisplayName | None = Field(default=None, description="Defaults to provider_id.")
    description: Text | None = Field(default=None, description="Free text (at most 64 KiB).")
    enabled: StrictBool = Field(default=True, description="Disabled providers are never used.")
    tags: tuple[Slug, ...] = Field(default=(), description="Labels for --select-tag and reports.")
    deletion_protection: StrictBool = Field(
        default=False,
        description="When true in the database, the provider cannot be deleted by apply --prune.",
    )
    connection: Connection = Field(default_factory=Connection)
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    api_keys: tuple[ApiKeySpec, ...] = Field(default=(), description="API keys.")
    models: tuple[ModelSpec, ...] = Field(default=(), description="Models served.")


class RouteTarget(_Strict):
    """One target of a route: ``provider_id/model_id`` with a load-balancing weight."""

    model: StrictStr = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]*/\S.*$",
        description="provider_id/model_id, e.g. openai/gpt-4o.",
    )
    weight: int = Field(
        default=1, ge=0, le=1000, description="Relative weight (strategy weighted)."
    )

    @property
    def provider_id(self) -> str:
        """The provider part of ``model``."""
        return self.model.split("/", 1)[0]

    @property
    def model_id(self) -> str:
        """The model part of ``model``."""
        return self.model.split("/", 1)[1]


class Route(_Strict):
    """A named route (alias) with ordered fallback targets."""

    name: StrictStr = Field(
        max_length=col.ROUTE_NAME,
        pattern=rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{col.ROUTE_NAME - 1}}}$",
        description="Name clients use as model_identifier.",
    )
    description: Text | None = Field(default=None, description="Free text (at most 64 KiB).")
    strategy: Literal["fallback", "weighted"] = Field(
        default="fallback",
        description="fallback: try targets in order. weighted: pick the first by weight, then "
        "fall back through the rest in order.",
    )
    targets: tuple[RouteTarget, ...] = Field(min_length=1, description="Ordered targets.")
    fallbacks: tuple[StrictStr, ...] = Field(
        default=(),
        description="Other routes to try, in order, when every target of this one failed.",
    )


EgressEntry = Annotated[StrictStr, AfterValidator(checked_entry)]


class Egress(_Strict):
    """Where providers' ``api_base`` may point (see docs/secrets.md, "Threat model")."""

    allow: tuple[EgressEntry, ...] = Field(
        description="Hosts an api_base may name: host names, *.suffix wildcards, IP addresses "
        "and CIDR networks. Link-local and cloud metadata addresses need an explicit entry.",
    )


class GatewayManifest(_Strict):
    """``kind: Gateway``: routes, defaults and the egress policy (at most one document)."""

    apiVersion: Literal["gwconfig/v1"]
    kind: Literal["Gateway"]
    default_route: StrictStr | None = Field(
        default=None, description="Route used when a request names no model."
    )
    routes: tuple[Route, ...] = Field(default=(), description="Named routes.")
    egress: Egress | None = Field(
        default=None,
        description="Egress policy: when set, every provider's api_base must name an allowed host.",
    )
    shared_state: SharedStateSpec | None = Field(default=None, description=SharedStateSpec.__doc__)
