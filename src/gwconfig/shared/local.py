"""The per-process backend: the same windows and reservations as the Redis scripts, in this
process's memory (``serve`` without Redis, and the fallback of request and token limits while
Redis is unreachable)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from gwconfig.shared.backend import ConsumerKeys, Hold, HoldResult, WindowResult

WINDOW_MS = 60_000
#: the most distinct keys one process keeps (cleared when full: limits restart, never block)
MAX_KEYS = 10_000


class LocalBackend:
    """Counters in this process (each worker has its own)."""

    name = "per-process"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[str, deque[tuple[int, str]]] = {}
        self._buckets: dict[str, dict[int, int]] = {}
        self._spend: dict[str, int] = {}
        self._holds: dict[str, dict[str, tuple[int, int]]] = {}  # key -> id -> (expiry, micro)

    def _now(self, now_ms: int | None) -> int:
        return int(self._clock() * 1000) if now_ms is None else now_ms

    async def hit(self, key: str, limit: int, member: str, now_ms: int | None) -> WindowResult:
        """See :meth:`gwconfig.shared.backend.Backend.hit`."""
        now = self._now(now_ms)
        log = self._windows.get(key)
        if log is None:
            if len(self._windows) >= MAX_KEYS:
                self._windows.clear()
            log = self._windows[key] = deque()
        while log and log[0][0] <= now - WINDOW_MS:  # admitted in time order: oldest first
            log.popleft()
        count = len(log)
        reset = log[0][0] + WINDOW_MS - now if log else WINDOW_MS
        if count < limit:
            log.append((max(now, log[-1][0]) if log else now, member))
            return WindowResult(True, limit - count - 1, reset)
        return WindowResult(False, 0, reset)

    async def unhit(self, key: str, member: str) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.unhit`."""
        log = self._windows.get(key)
        if log is None:
            return
        for entry in log:
            if entry[1] == member:
                log.remove(entry)
                return

    async def hold(self, keys: ConsumerKeys, hold: Hold, now_ms: int | None) -> HoldResult:
        """See :meth:`gwconfig.shared.backend.Backend.hold`."""
        now = self._now(now_ms)
        sec = now // 1000
        holds = self._holds.setdefault(keys.reservations, {})
        if hold.budget_micro is not None:
            spent = self._spend.get(keys.spend)
            if spent is None:
                return HoldResult(False, missing=True)
            for rid in [r for r, (expiry, _) in holds.items() if expiry <= now]:
                del holds[rid]
            room = hold.budget_micro - spent - sum(micro for _, micro in holds.values())
            if hold.cost_micro > room:
                return HoldResult(False, limit="budget", room=room)
        if hold.tpm is not None:
            buckets = self._buckets.setdefault(keys.tpm, {})
            for s in [s for s in buckets if s <= sec - 61]:
                del buckets[s]
            used = sum(buckets.values())
            if used + hold.tokens > hold.tpm:
                left, wait = used, WINDOW_MS
                for s in sorted(buckets):
                    left -= buckets[s]
                    if left + hold.tokens <= hold.tpm:
                        wait = (s + 61) * 1000 - now
                        break
                return HoldResult(False, limit="tpm", room=hold.tpm - used, wait_ms=wait)
            buckets[sec] = buckets.get(sec, 0) + hold.tokens
        if hold.budget_micro is not None:
            holds[hold.id] = (now + hold.expiry_ms, hold.cost_micro)
        return HoldResult(True, bucket=sec)

    async def finish(
        self, keys: ConsumerKeys, hold: Hold, bucket: int | None, cost_micro: int, tokens: int
    ) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.finish`."""
        self._holds.get(keys.reservations, {}).pop(hold.id, None)
        if cost_micro > 0 and keys.spend in self._spend:
            self._spend[keys.spend] += cost_micro
        buckets = self._buckets.get(keys.tpm)
        if bucket is not None and buckets is not None and bucket in buckets:
            buckets[bucket] += tokens

    async def seed_spend(self, key: str, micro: int, ttl_seconds: int) -> None:
        """See :meth:`gwconfig.shared.backend.Backend.seed_spend` (a new period's key replaces
        the counters of older periods)."""
        if key not in self._spend:
            prefix = key.rpartition(":")[0]
            for old in [k for k in self._spend if k.rpartition(":")[0] == prefix]:
                del self._spend[old]
            self._spend[key] = micro

    async def aclose(self) -> None:
        """Nothing to close."""
