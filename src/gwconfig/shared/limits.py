"""The limit decisions of one request, API-neutral: request limits (token rpm, consumer rpm,
provider rpm), then one reservation of the worst case against the consumer's tpm and budget.

:meth:`SharedLimits.admit` returns an :class:`Admission` (settle it with the real usage, or
release it) or raises :class:`Refused` carrying a :class:`Decision`: each API maps it to its own
error shape (``/v1``: 429 ``rate_limit_exceeded`` / ``insufficient_quota``, 503 when the shared
state is unavailable and the policy says closed).

With Redis the counters are shared by every process naming it; without it, and for request and
token limits while Redis is unreachable (policy ``open``), each worker keeps its share
(``ceil(limit / workers)``) in :class:`~gwconfig.shared.local.LocalBackend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gwconfig.runtime.config.consumers import ConsumerPolicy
from gwconfig.runtime.config.shared_state import OPEN, SharedStatePolicy
from gwconfig.shared.backend import (
    Backend,
    BackendUnavailable,
    ConsumerKeys,
    Hold,
    HoldResult,
    WindowResult,
    window_key,
)
from gwconfig.shared.cost import micro
from gwconfig.shared.ledger import Ledger, period_seconds, period_start
from gwconfig.shared.local import LocalBackend

log = logging.getLogger("gwconfig.shared")
#: outcomes of :attr:`Decision.outcome` (the metric's label values)
ADMITTED, LIMITED, BUDGET, UNAVAILABLE, FALLBACK = (
    "admitted",
    "limited",
    "budget",
    "unavailable",
    "fallback",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the limits decided, for any API to answer in its own shape."""

    outcome: str
    #: ``requests``, ``tokens`` or ``budget`` (None when admitted)
    limit: str | None = None
    message: str = ""
    retry_after: float = 0.0
    #: ``x-ratelimit-*`` headers
    headers: Mapping[str, str] = field(default_factory=dict)


class Refused(Exception):
    """A request the limits refuse; ``decision`` says why."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.message)
        self.decision = decision


@dataclass(frozen=True, slots=True)
class Ask:
    """One request as the limits see it."""

    token: str
    token_rpm: int | None = None
    consumer: ConsumerPolicy | None = None
    #: worst-case tokens (prompt bound + completion bound)
    tokens: int = 0
    #: worst-case USD (None: a model it may reach has no pricing)
    cost_usd: float | None = 0.0
    #: how long a reservation holds if it is never settled (the request deadline and a margin)
    expiry_seconds: float = 180.0


def reset_text(ms: float) -> str:
    """A reset time as OpenAI writes it (``1.5s``)."""
    return f"{max(ms, 0) / 1000:.3g}s"


@dataclass(frozen=True, slots=True)
class Hit:
    """One request admitted into (or refused by) one window, and where."""

    result: WindowResult
    #: the limit the window counted against (this worker's share when per-process)
    limit: int
    fallback: bool
    backend: Backend
    key: str
    member: str

    async def undo(self) -> None:
        """Take the request back (a later limit refused it)."""
        if self.result.admitted:
            with contextlib.suppress(BackendUnavailable):  # it leaves within a minute anyway
                await self.backend.unhit(self.key, self.member)


@dataclass(slots=True)
class Admission:
    """An admitted request: its reservation until settled or released."""

    limits: SharedLimits
    headers: dict[str, str]
    keys: ConsumerKeys | None = None
    hold: Hold | None = None
    bucket: int | None = None
    backend: Backend | None = None
    done: bool = False

    async def settle(self, tokens: int | None, cost: float | None) -> None:
        """Charge the real usage (None: unknown, the reservation is charged) and drop the
        reservation."""
        hold = self.hold
        if self.done or hold is None:
            self.done = True
            return
        used = hold.tokens if tokens is None else tokens
        spent = hold.cost_micro if cost is None else micro(cost)
        await self._finish(spent, used - hold.tokens)

    async def release(self) -> None:
        """Drop the reservation without charging (the request failed before any output)."""
        if self.done or self.hold is None:
            self.done = True
            return
        await self._finish(0, -self.hold.tokens)

    async def _finish(self, cost_micro: int, tokens: int) -> None:
        self.done = True
        assert self.keys is not None and self.hold is not None and self.backend is not None
        try:
            await self.backend.finish(self.keys, self.hold, self.bucket, cost_micro, tokens)
        except BackendUnavailable:  # the reservation expires on its own
            log.warning(
                "a reservation could not be settled; it expires in %ss", self.hold.expiry_ms // 1000
            )


class SharedLimits:
    """The decisions of one process, over Redis (``shared``) or this process's counters."""

    def __init__(
        self,
        shared: Backend | None = None,
        *,
        ledger: Ledger | None = None,
        workers: int = 1,
        policy: SharedStatePolicy | None = None,
        clock: Callable[[], float] = time.time,
        on_decision: Callable[[str], object] | None = None,
    ) -> None:
        self.shared = shared
        self.local = LocalBackend(clock)
        self.ledger = ledger
        self.workers = max(workers, 1)
        self.policy = policy or SharedStatePolicy()
        #: the wall clock (epoch seconds) the budget periods are taken from
        self.clock = clock
        self._on_decision = on_decision
        #: tests pass ``now`` (ms) into the scripts; None: Redis's clock (or this process's)
        self.now_ms: Callable[[], int] | None = None

    @property
    def mode(self) -> str:
        """``redis`` or ``per-process``."""
        return "per-process" if self.shared is None else self.shared.name

    def _count(self, outcome: str) -> None:
        if self._on_decision is not None:
            self._on_decision(outcome)

    def _share(self, limit: int) -> int:
        return max(math.ceil(limit / self.workers), 1)

    def _now(self) -> int | None:
        return None if self.now_ms is None else self.now_ms()

    def _unavailable(self, what: str) -> Refused:
        self._count(UNAVAILABLE)
        return Refused(
            Decision(
                UNAVAILABLE,
                what,
                f"the shared {what} state is unavailable; try again",
                retry_after=1.0,
            )
        )

    async def hit(self, kind: str, name: str, limit: int) -> Hit:
        """One request into the window of ``kind``/``name`` (Redis, or this worker's share).

        :class:`Refused` (unavailable) when Redis does not answer and the policy is closed."""
        key, member = window_key(kind, name), secrets.token_hex(8)
        if self.shared is not None:
            try:
                result = await self.shared.hit(key, limit, member, self._now())
                return Hit(result, limit, False, self.shared, key, member)
            except BackendUnavailable:
                if self.policy.limits_on_unavailable != OPEN:
                    raise self._unavailable("requests") from None
        share = self._share(limit)
        result = await self.local.hit(key, share, member, self._now())
        return Hit(result, share, self.shared is not None, self.local, key, member)

    async def admit(self, ask: Ask) -> Admission:
        """Check every limit of ``ask``; an :class:`Admission` or :class:`Refused` (a request
        refused by a later limit is taken back from the windows that admitted it)."""
        headers: dict[str, str] = {}
        fallback = False
        consumer = ask.consumer
        windows = [("t", ask.token, ask.token_rpm, f"token '{ask.token}'")]
        if consumer is not None:
            windows.append(("c", consumer.name, consumer.rpm, f"consumer '{consumer.name}'"))
        hits: list[Hit] = []
        try:
            for kind, name, rpm, who in windows:
                if rpm is None:
                    continue
                hit = await self.hit(kind, name, rpm)
                fallback |= hit.fallback
                result = hit.result
                seen = headers.get("x-ratelimit-remaining-requests")
                if seen is None or result.remaining < int(seen) or not result.admitted:
                    headers.update(_request_headers(hit.limit, result))
                if not result.admitted:
                    self._count(LIMITED)
                    raise Refused(
                        Decision(
                            LIMITED,
                            "requests",
                            f"{who} is limited to {rpm} requests per minute",
                            retry_after=result.reset_ms / 1000,
                            headers=headers,
                        )
                    )
                hits.append(hit)
            admission = Admission(self, headers)
            if consumer is not None and (
                consumer.tpm is not None or consumer.budget_usd is not None
            ):
                fallback |= await self._reserve(ask, consumer, admission)
        except Refused:
            for hit in hits:
                await hit.undo()
            raise
        self._count(FALLBACK if fallback else ADMITTED)
        return admission

    async def _reserve(self, ask: Ask, consumer: ConsumerPolicy, admission: Admission) -> bool:
        """Reserve the worst case against the consumer's tpm and budget; True when the
        per-process counters had to stand in for Redis."""
        budget = consumer.budget_usd
        if budget is not None and ask.cost_usd is None:
            self._count(BUDGET)
            raise Refused(
                Decision(
                    BUDGET,
                    "budget",
                    f"consumer '{consumer.name}' has a budget and the model has no pricing",
                )
            )
        if consumer.tpm is not None and ask.tokens > consumer.tpm:
            self._count(LIMITED)
            raise Refused(
                Decision(
                    LIMITED,
                    "tokens",
                    f"the request may use {ask.tokens} tokens, over the {consumer.tpm} tokens per "
                    f"minute of consumer '{consumer.name}' (lower max_tokens)",
                    headers=_token_headers(consumer.tpm, consumer.tpm, 0),
                )
            )
        period = consumer.budget_period or "month"
        start = period_start(period, datetime.fromtimestamp(self.clock(), UTC))
        keys = ConsumerKeys.of(consumer.name, start.date().isoformat())
        hold = Hold(
            id=secrets.token_hex(8),
            tpm=consumer.tpm,
            tokens=ask.tokens,
            budget_micro=None if budget is None else micro(budget),
            cost_micro=micro(ask.cost_usd or 0.0),
            expiry_ms=int(ask.expiry_seconds * 1000),
        )
        backend: Backend = self.local
        local = True
        if self.shared is not None:
            try:
                result = await self._hold(self.shared, keys, hold, consumer, start, 1)
                backend, local = self.shared, False
            except BackendUnavailable:
                hold = self._fallback_hold(hold)
                result = await self._hold(self.local, keys, hold, consumer, start, self.workers)
        else:
            hold = self._local_hold(hold)
            result = await self._hold(self.local, keys, hold, consumer, start, self.workers)
        if not result.reserved:
            self._refuse(result, consumer)
        admission.keys, admission.hold, admission.bucket = keys, hold, result.bucket
        admission.backend = backend
        if consumer.tpm is not None:
            tpm = hold.tpm if hold.tpm is not None else consumer.tpm
            admission.headers.update(_token_headers(tpm, result.room or tpm, 0))
        return local and self.shared is not None

    def _local_hold(self, hold: Hold) -> Hold:
        """``hold`` against this worker's share of the tpm and budget."""
        tpm = None if hold.tpm is None else self._share(hold.tpm)
        budget = None if hold.budget_micro is None else hold.budget_micro // self.workers
        return Hold(hold.id, tpm, hold.tokens, budget, hold.cost_micro, hold.expiry_ms)

    def _fallback_hold(self, hold: Hold) -> Hold:
        """The per-process hold while Redis is unreachable, as the policy says."""
        if hold.budget_micro is not None and self.policy.budgets_on_unavailable != OPEN:
            raise self._unavailable("budget")
        if hold.tpm is not None and self.policy.limits_on_unavailable != OPEN:
            raise self._unavailable("tokens")
        log.warning(
            "Redis unreachable: per-process token limits%s",
            ", budget unmetered" if hold.budget_micro is not None else "",
        )
        local = self._local_hold(hold)
        return Hold(local.id, local.tpm, hold.tokens, None, hold.cost_micro, hold.expiry_ms)

    async def _hold(
        self,
        backend: Backend,
        keys: ConsumerKeys,
        hold: Hold,
        consumer: ConsumerPolicy,
        start: datetime,
        parts: int,
    ) -> HoldResult:
        """Reserve on ``backend``; a missing spend counter is rebuilt from the ledger first
        (``parts``: this counter's share of the spend, 1 when shared)."""
        result = await backend.hold(keys, hold, self._now())
        if not result.missing:
            return result
        spent = 0.0
        if self.ledger is not None:
            try:
                spent = await asyncio.to_thread(self.ledger.spend, consumer.name, start)
            except Exception as exc:  # the database is the truth: without it, no budget
                log.warning("the spend ledger failed: %s", type(exc).__name__)
                raise self._unavailable("budget") from None
        ttl = period_seconds(consumer.budget_period or "month", start) + 86_400
        await backend.seed_spend(keys.spend, micro(spent) // parts, ttl)
        return await backend.hold(keys, hold, self._now())

    def _refuse(self, result: HoldResult, consumer: ConsumerPolicy) -> None:
        if result.limit == "budget":
            self._count(BUDGET)
            raise Refused(
                Decision(
                    BUDGET,
                    "budget",
                    f"consumer '{consumer.name}' has spent its budget of {consumer.budget_usd:g} "
                    f"USD per {consumer.budget_period or 'month'}",
                )
            )
        self._count(LIMITED)
        tpm = consumer.tpm or 0
        raise Refused(
            Decision(
                LIMITED,
                "tokens",
                f"consumer '{consumer.name}' is limited to {tpm} tokens per minute",
                retry_after=result.wait_ms / 1000,
                headers=_token_headers(tpm, max(result.room, 0), result.wait_ms),
            )
        )

    async def aclose(self) -> None:
        """Close the shared backend."""
        if self.shared is not None:
            await self.shared.aclose()


def _request_headers(limit: int, result: WindowResult) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(result.remaining),
        "x-ratelimit-reset-requests": reset_text(result.reset_ms),
    }


def _token_headers(limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-tokens": str(limit),
        "x-ratelimit-remaining-tokens": str(remaining),
        "x-ratelimit-reset-tokens": reset_text(reset_ms),
    }
