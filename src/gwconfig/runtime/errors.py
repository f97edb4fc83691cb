"""Typed errors raised by the runtime while loading a configuration or routing a request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gwconfig.errors import RuntimeGatewayError


class NoRouteError(RuntimeGatewayError):
    """No enabled provider/model, route or alias answers to the requested model identifier."""


class UnknownModelError(NoRouteError):
    """No route, alias or model has the name ``identifier`` (the hint suggests close names)."""

    def __init__(self, identifier: str, message: str, *, hint: str | None = None) -> None:
        self.identifier = identifier
        super().__init__(message, hint=hint)


class AmbiguousModelError(RuntimeGatewayError):
    """A bare model id is served by several providers; the message lists the candidates."""

    def __init__(self, model_id: str, candidates: Sequence[str]) -> None:
        self.model_id = model_id
        self.candidates = tuple(candidates)
        super().__init__(
            f"model '{model_id}' is served by several providers: {', '.join(self.candidates)}",
            hint="write provider_id/model_id, set LLMConfig.provider_id, or define a route",
        )


class ConfigLoadError(RuntimeGatewayError):
    """The configuration source cannot be read or is not a valid compiled configuration."""


class ProviderError(RuntimeGatewayError):
    """One call to one provider failed; ``retryable`` says whether trying again may help."""

    retryable: bool = False
    #: a machine-readable reason the OpenAI endpoint answers with (None: by the error's class)
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable


class ProviderTimeoutError(ProviderError):
    """The provider did not answer within the configured timeout."""

    retryable = True


class DeadlineExceededError(ProviderTimeoutError):
    """The request's ``deadline_seconds`` passed: no further attempt or fallback is started.

    Raised by :meth:`LLMGatewayClient.generate` (and streams) once the deadline is reached;
    providers raise it for a call the deadline cut short.
    """

    retryable = False


class ProviderUnavailableError(ProviderError):
    """The provider is overloaded, rate limited, unreachable or failed (429/5xx/network)."""

    retryable = True


class ProviderResponseError(ProviderError):
    """The provider answered with something that is not a valid response (e.g. broken JSON)."""


class AuthenticationError(ProviderError):
    """The provider refused the credentials (401/403) or no usable API key is configured."""


class KeyOriginMismatchError(AuthenticationError):
    """A secret of the provider is bound to another origin than its current ``api_base``'s: it
    is not sent, and the provider is not called (see :mod:`gwconfig.secrets.origin`)."""

    code = "key_origin_mismatch"


class BadRequestError(ProviderError):
    """The provider rejected the request itself (400/413/422); never retried or re-routed."""


class UnsupportedParameterError(BadRequestError):
    """The request asks for something the provider's API cannot carry (say ``n: 2`` or
    ``logprobs`` to Anthropic): refused before the call rather than silently dropped."""

    code = "unsupported_parameter"


@dataclass(frozen=True, slots=True)
class TargetFailure:
    """Why one target of a route failed (after its retries)."""

    target: str
    reason: str
    attempts: int
    #: the HTTP status of the last failure, when there was one (429: rate limited)
    status: int | None = None
    #: the failure's :attr:`ProviderError.code`, when it has one
    code: str | None = None
    #: seconds until this target takes a request again, when it said (or its limit knows)
    retry_after: float | None = None


class AllTargetsFailedError(RuntimeGatewayError):
    """Every target tried for a request failed; ``failures`` holds each one's reason."""

    def __init__(self, identifier: str, failures: Sequence[TargetFailure]) -> None:
        self.identifier = identifier
        self.failures = tuple(failures)
        # one line per target: a reason may hold a list of its own
        lines = "".join(
            f"\n  {f.target}, {count_attempts(f.attempts)}: {f.reason}" for f in failures
        )
        super().__init__(f"all targets failed for '{identifier}':{lines}")


def count_attempts(n: int) -> str:
    """``1 attempt``, ``3 attempts``, ``not called``."""
    if n == 0:
        return "not called"
    return f"{n} attempt" + ("s" if n != 1 else "")
