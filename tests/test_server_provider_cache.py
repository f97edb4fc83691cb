"""The cache of ``GET /api/v1/providers/{id}`` never serves a provider older than a write:
through the API (at once, read-your-writes) and through ``gwconfig apply`` in another thread
(as soon as the server's generation watcher has seen it), on three engines; the ETag changes
with each write. Ordering is explicit (a write returns, then the watcher is awaited); bounds are
safety nets, never speeds."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from builders import gateway_doc, provider_doc, write_manifests
from gateways import Setup
from gwconfig.db.notify import ConfigGeneration
from gwconfig.db.watch import GenerationWatcher
from gwconfig.reconcile import commands
from gwconfig.reconcile.plan import PlanOptions
from gwconfig.server.rest.cache import ProviderCache, Rendered

#: a safety net against a hung watcher, never an assumption about speed
BOUND = 60.0
PATH = "/api/v1/providers/openai"


class Served:
    """The served database of the ``setup`` fixture (gateways.py), read with an admin token."""

    def __init__(self, setup: Setup) -> None:
        self.url, self.root, self.server = setup.url, setup.root, setup.server
        self.token = setup.tokens["admin"]

    def request(self, method: str, **kw: Any) -> httpx.Response:
        with self.server.client(self.token) as client:
            return client.request(method, PATH, **kw)

    @property
    def cache(self) -> ProviderCache:
        return self.server.state.provider_cache


@pytest.fixture
def served(setup: Setup) -> Served:
    return Served(setup)


def cached_read(served: Served) -> str:
    """GET the provider twice: the second answer comes from the cache (304 on its ETag)."""
    first = served.request("GET")
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    again = served.request("GET", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag
    assert len(served.cache) == 1
    return etag


def test_a_write_through_the_api_is_read_at_once(served: Served) -> None:
    etag = cached_read(served)
    for n in range(3):
        put = served.request(
            "PUT", json={"display_name": f"Changed {n}"}, headers={"If-Match": etag}
        )
        assert put.status_code == 200, put.text
        # the very next read, before any watcher could have looked: the new state
        got = served.request("GET", headers={"If-None-Match": etag})
        assert got.status_code == 200, got.text
        assert got.json()["display_name"] == f"Changed {n}"
        assert got.headers["etag"] != etag and got.headers["etag"] == put.headers["etag"]
        etag = got.headers["etag"]
    # a route of the Gateway targets it: refused as validate refuses it, the cache unchanged
    assert served.request("DELETE", headers={"If-Match": etag}).status_code == 422
    assert served.request("GET", headers={"If-None-Match": etag}).status_code == 304


def wait_for_generation(watcher: GenerationWatcher, after: ConfigGeneration | None) -> None:
    """Return once ``watcher`` has seen a generation other than ``after`` (bounded)."""
    deadline = time.monotonic() + BOUND
    while watcher.current_generation == after:
        assert time.monotonic() < deadline, "the watcher never saw the write"
        time.sleep(0.005)


def test_an_apply_in_another_thread_is_served_once_the_watcher_sees_it(served: Served) -> None:
    etag = cached_read(served)
    watcher = served.cache.watcher
    assert watcher is not None
    for n in range(3):
        before = watcher.current_generation
        tags = ["cloud", f"edge-{n}"]
        write_manifests(served.root, provider_doc(tags=tags), gateway_doc())
        failures: list[BaseException] = []

        def apply(failures: list[BaseException] = failures) -> None:
            try:
                commands.apply(
                    str(served.root), served.url, PlanOptions(), review=lambda _plan: True
                )
            except BaseException as exc:  # reported by the test thread
                failures.append(exc)

        thread = threading.Thread(target=apply)
        thread.start()
        thread.join(BOUND)
        assert not thread.is_alive() and not failures, failures
        wait_for_generation(watcher, before)
        got = served.request("GET", headers={"If-None-Match": etag})
        assert got.status_code == 200, got.text
        assert got.json()["tags"] == tags
        assert got.headers["etag"] != etag
        etag = got.headers["etag"]


class Generations:
    """A stand-in for the watcher's one attribute the cache reads (its generation)."""

    def __init__(self) -> None:
        self.current_generation: ConfigGeneration | None = ConfigGeneration("e", 1)


def test_a_read_racing_a_write_is_never_stored_under_the_new_key() -> None:
    generations = Generations()
    now = [0.0]
    cache = ProviderCache(generations, max_entries=2, clock=lambda: now[0])  # type: ignore[arg-type]
    old = Rendered(b"{}", '"old"')
    key = cache.key()  # taken before the read...
    generations.current_generation = ConfigGeneration("e", 2)  # ...a write commits meanwhile
    cache.put("p", key, old)
    assert cache.get("p") is None
    key = cache.key()
    cache.wrote()  # a local write after the key was taken
    cache.put("p", key, old)
    assert cache.get("p") is None
    cache.put("p", cache.key(), old)
    assert cache.get("p") is old
    now[0] = 1000.0  # past the maximum age: read again
    assert cache.get("p") is None
    for pid in ("a", "b", "c"):  # bounded: the oldest goes first
        cache.put(pid, cache.key(), old)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("c") is old
    generations.current_generation = None  # unknown generation: nothing is stored or served
    assert cache.key() is None and cache.get("c") is None
