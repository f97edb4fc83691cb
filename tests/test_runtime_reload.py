"""Hot reload: in-flight requests finish on the old config, bad configs never replace good ones."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gwconfig.runtime import ConfigLoader, LLMConfig, LLMGatewayClient, LLMRequest
from runtime_servers import provider_doc, write_compiled


def write(path: Path, reply: str, latency_ms: int = 0, **kw: Any) -> None:
    model = {"model_id": "chat", "parameters": {"reply": reply, "latency_ms": latency_ms}}
    write_compiled(path, [provider_doc("p", "mock", [model], **kw)], **_routes())


def _routes() -> dict[str, Any]:
    return {"routes": [{"name": "r", "targets": [{"model": "p/chat"}]}]}


REQ = LLMRequest("hi", LLMConfig(model_identifier="r"))


def test_in_flight_requests_finish_on_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write(path, "one", latency_ms=150)
    loader = ConfigLoader(path)

    async def main() -> tuple[str, str, bool]:
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:
            slow = asyncio.create_task(client.generate(REQ))
            await asyncio.sleep(0.03)  # the slow request is now in flight
            write(path, "two!", latency_ms=0)
            swapped = await client.reload()
            fresh = await client.generate(REQ)
            old = await slow
            return old.generated_content, fresh.generated_content, swapped

    assert asyncio.run(main()) == ("one", "two!", True)


def test_reload_under_concurrent_requests(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    write(path, "v0", latency_ms=2)
    loader = ConfigLoader(path)

    async def main() -> tuple[list[str], str]:
        async with LLMGatewayClient(loader.load_config_as_object(), loader=loader) as client:

            async def reloader() -> None:
                for i in range(1, 6):
                    await asyncio.sleep(0.01)
                    write(path, f"v{i}" + "!" * i, latency_ms=2)
                    assert await client.reload()

            results = await asyncio.gather(reloader(), *[client.generate(REQ) for _ in range(300)])
            last = await client.generate(REQ)
            return [r.generated_content for r in results[1:]], last.generated_content

    texts, last = asyncio.run(main())
    assert len(texts) == 300
    assert set(texts) <= {"v0"} | {f"v{i}" + "!" * i for i in range(1, 6)}
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
            client.start_auto_reload(0.02)
            before = (await client.generate(REQ)).generated_content
            write(path, "second!")
            for _ in range(200):
                await asyncio.sleep(0.02)
                if client.config.version == loader.current_version():
                    break
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
