"""One request from the command line: load the configuration, route, print, record usage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gwconfig.runtime.client import LLMGatewayClient
from gwconfig.runtime.config.sources import ConfigLoader
from gwconfig.runtime.errors import NoRouteError
from gwconfig.runtime.factory import ProviderFactory
from gwconfig.runtime.messages import LLMRequest, LLMResponse


def generate_once(
    source: Any,
    request: LLMRequest,
    *,
    stream: bool = False,
    on_chunk: Callable[[str], None] | None = None,
    environment: str | None = None,
    record_usage: bool = True,
) -> LLMResponse:
    """Load the configuration from ``source`` (database URL or compiled file), send one request.

    With ``stream``, each text chunk is passed to ``on_chunk`` as it arrives. Usage is recorded
    when the source is a database and ``record_usage`` is set.
    """
    loader = ConfigLoader(source, environment=environment)
    config = loader.load_config_as_object()
    if not config.providers:
        raise NoRouteError(
            f"the configuration in {loader.describe()} has no providers",
            hint="run 'gwconfig apply' first (e.g. 'gwconfig apply --auto-approve "
            "--select-tag local' for the local mock provider)",
        )
    db = loader.engine if loader.path is None and record_usage else None

    async def run() -> LLMResponse:
        async with LLMGatewayClient(config, ProviderFactory(), db, loader=loader) as client:
            if not stream:
                return await client.generate(request)
            chunks = client.generate_stream(request)
            async for text in chunks:
                if on_chunk is not None:
                    on_chunk(text)
            assert chunks.response is not None  # set when the stream ends normally
            return chunks.response

    return asyncio.run(run())
