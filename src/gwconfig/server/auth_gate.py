"""Authentication before anything else: :class:`AuthenticateFirst`, an ASGI middleware.

FastAPI reads and validates a request body before the route's dependencies run when the body is
not JSON, so a ``Depends(require(...))`` alone would answer an unauthenticated caller's bad body
with 422, telling it about the API before it has shown a token. This middleware stands in front
of the router: a request to a path under :data:`PREFIX` (the REST API) or to the API
documentation (unless ``serve --public-docs``) without a valid token is answered 401 before it
is routed or its body read. The caller it found is left in ``request.state.caller``, where
:func:`~gwconfig.server.auth.require` takes it (the scope check, 403, stays with the route).

The OpenAI-compatible paths and ``/metrics`` authenticate in their own fast path
(:mod:`gwconfig.server.openai.app`), also before they read a body.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from gwconfig.errors import GwconfigError
from gwconfig.server.auth import TokenAuthenticator, authorization_header
from gwconfig.server.problems import from_gwconfig_error, problem_response

__all__ = ["PREFIX", "AuthenticateFirst"]

#: every path under it needs a token
PREFIX = "/api/"


class AuthenticateFirst:
    """ASGI middleware: 401 for a request without a valid token, before routing (see module)."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenAuthenticator,
        docs_paths: Iterable[str | None] = (),
        *,
        public_docs: bool = False,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.docs_paths = frozenset(p for p in docs_paths if p) if not public_docs else frozenset()

    def needs_token(self, path: str) -> bool:
        """True for the paths this middleware authenticates."""
        return path.startswith(PREFIX) or path in self.docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.needs_token(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = authorization_header(scope["headers"])
        try:
            caller = await self.tokens.authenticate_async(header)
        except GwconfigError as exc:  # 401; the token store unreachable: 503, not 500
            await problem_response(from_gwconfig_error(exc), scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)
