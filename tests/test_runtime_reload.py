"""Hot reload: in-flight requests finish on the old config, bad configs never replace good ones."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gwconfig.runtime import (
    BaseProvider,
    ConfigLoader,
    LLMConfig,
    LLMGatewayClient,
    LLMRequest,
    ProviderFactory,
    Usage,
)
from gwconfig.runtime.messages import ProviderResult
from runtime_servers import provider_doc, write_compiled


class Gate:
    """Explicit triggers for the ``gated`` provider: who has started, and when calls may end."""

    def __init__(self) -> None:
        self.started = 0
        self.changed = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def wait_started(self, n: int) -> None:
        """Return once ``n`` calls have started."""
        while self.started < n:
            self.changed.clear()
            await self.changed.wait()


def gated_factory(gate: Gate) -> ProviderFactory:
    """A factory whose ``gated`` provider answers the model's ``reply`` once the gate is open."""

    class Gated(BaseProvider):
        requires_api_key = False

        async def complete(self, call: Any) -> ProviderResult:
            gate.started += 1
            gate.changed.set()
            await gate.release.wait()
            return ProviderResult(str(call.model.parameters["reply"]), Usage(1, 1), "stop")

        async def stream(self, call: Any) -> Any:  # type: ignore[override]
            raise NotImplementedError
            yield

    factory = ProviderFactory()
    factory.register("gated", Gated)
    return factory


def write_gated(path: Path, reply: str) -> None:
    model = {"model_id": "chat", "parameters": {"reply": reply}}
    write_compiled(path, [provider_doc("p", "gated", [model])], **_routes())


def write(path: Path, reply: str, latency_ms: int = 0, **kw: Any) -> None:
    model = {"model_id": "chat", "parameters": {"reply": reply, "latency_ms": latency_ms}}
    write_compiled(path, [provider_doc("p", "mock", [model], **kw)], **_routes())


def _routes() -> dict[str, Any]:
    return {"routes": [{"name": "r", "targets": [{"model": "p/chat"}]}]}


def gated_client(path: Path, gate: Gate) -> LLMGatewayClient:
    """A client on the config at ``path`` through ``gate``'s provider, reloading from ``path``."""
    loader = ConfigLoader(path)
    return LLMGatewayClient(loader.load_config_as_object(), gated_factory(gate), loader=loader)


REQ = LLMRequest("hi", LLMConfig(model_identifier="r"))


def test_in_flight_requests_finish_on_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_gated(path, "one")
    gate = Gate()

    async def main() -> tuple[str, str, bool]:
        async with gated_client(path, gate) as client:
            gate.release.clear()
            slow = asyncio.create_task(client.generate(REQ))
            await gate.wait_started(1)  # the slow request is now in flight
            write_gated(path, "two!")
            swapped = await client.reload()
            gate.release.set()
            fresh = await client.generate(REQ)
            old = await slow
            return old.generated_content, fresh.generated_content, swapped

    assert asyncio.run(main()) == ("one", "two!", True)


def test_reload_under_concurrent_requests(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write_gated(path, "v0")
    gate = Gate()

    async def main() -> tuple[list[str], str]:
        async with gated_client(path, gate) as client:
            gate.release.clear()
            tasks = []
            for i in range(6):  # a wave of 50 requests in flight, then a reload, six times
                tasks += [asyncio.create_task(client.generate(REQ)) for _ in range(50)]
                await gate.wait_started(50 * (i + 1))
                if i < 5:
                    write_gated(path, f"v{i + 1}" + "!" * (i + 1))
                    assert await client.reload()
            gate.release.set()
            results = await asyncio.gather(*tasks)
            last = await client.generate(REQ)
            return [r.generated_content for r in results], last.generated_content

    texts, last = asyncio.run(main())
    assert len(texts) == 300
    # every wave finished on the configuration it started with, whatever came after
    waves = [texts[i * 50 : (i + 1) * 50] for i in range(6)]
    assert waves == [[f"v{i}" + "!" * i] * 50 for i in range(6)]
    assert last == "v5!!!!!"


def test_invalid_new_config_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write(path, "good")
    loader = ConfigLoader(path, verify_hash=True)

    async def main() -> list[Any]:
        out: list[Any] = []
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:
            path.write_text("{ not json")
            out.append(await client.reload())
            out.append(client.last_reload_error)
            # valid JSON, edited by hand after compilation: the content hash no longer matches
            write(path, "tampered")
            path.write_text(path.read_text().replace("tampered", "evil"))
            out.append(await client.reload())
            out.append(client.last_reload_error)
            # compiles, but a route points at a model that does not exist
            model = {"model_id": "chat", "parameters": {"reply": "dangling"}}
            routes = [{"name": "r", "targets": [{"model": "p/missing"}]}]
            write_compiled(path, [provider_doc("p", "mock", [model])], routes=routes)
            out.append(await client.reload())
            out.append(client.last_reload_error)
            out.append((await client.generate(REQ)).generated_content)
            write(path, "better")
            out.append(await client.reload())
            out.append((await client.generate(REQ)).generated_content)
        return out

    out = asyncio.run(main())
    assert out[0] is False and "not valid JSON" in out[1]
    assert out[2] is False and "content_hash does not match" in out[3]
    assert out[4] is False and "targets unknown model 'p/missing'" in out[5]
    assert out[6] == "good"
    assert out[7] is True and out[8] == "better"


def test_background_refresher_picks_up_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write(path, "first")
    loader = ConfigLoader(path)

    async def main() -> tuple[str, str]:
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:
            reloaded = asyncio.Event()
            reload = client.reload

            async def watched_reload(*, force: bool = False) -> bool:  # the refresher calls this
                swapped = await reload(force=force)
                if swapped:
                    reloaded.set()
                return swapped

            client.reload = watched_reload  # type: ignore[method-assign]
            before = (await client.generate(REQ)).generated_content
            write(path, "second!")
            client.start_auto_reload(0.01)
            await asyncio.wait_for(reloaded.wait(), 30)  # a safety net, not a timing
            after = (await client.generate(REQ)).generated_content
            return before, after

    assert asyncio.run(main()) == ("first", "second!")


def test_changed_connection_gets_a_new_provider_and_unchanged_keeps_its_pool(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.json"
    write(path, "a")
    loader = ConfigLoader(path)

    async def main() -> tuple[bool, bool]:
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:
            await client.generate(REQ)
            first = client._gen.providers["p"]
            write(path, "b")  # only a model parameter changed
            await client.reload()
            await client.generate(REQ)
            kept = client._gen.providers["p"] is first
            write(path, "b", request_settings={"timeout_seconds": 5})
            await client.reload()
            await client.generate(REQ)
            replaced = client._gen.providers["p"] is not first
            return kept, replaced

    assert asyncio.run(main()) == (True, True)
