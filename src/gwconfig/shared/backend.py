"""What a backend of the shared limits offers (Redis, or this process), and its values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class BackendUnavailable(Exception):
    """The backend did not answer in time, failed, or its circuit breaker is open."""


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One sliding-window check: admitted or not, requests left, ms until the oldest leaves."""

    admitted: bool
    remaining: int
    reset_ms: int


@dataclass(frozen=True, slots=True)
class ConsumerKeys:
    """The keys of one consumer's token window and budget (one hash tag: one cluster slot)."""

    tpm: str
    spend: str
    reservations: str
    amounts: str
    pending: str

    @classmethod
    def of(cls, consumer: str, period: str) -> ConsumerKeys:
        """The keys of ``consumer`` in the budget period starting ``period`` (ISO date)."""
        tag = f"gw:{{c:{consumer}}}"
        return cls(
            tpm=f"{tag}:tpm",
            spend=f"{tag}:spend:{period}",
            reservations=f"{tag}:resv",
            amounts=f"{tag}:resv:amt",
            pending=f"{tag}:pending",
        )


def window_key(kind: str, name: str) -> str:
    """The sliding log of one request limit: ``kind`` t (token), c (consumer), p (provider)."""
    return f"gw:{{{kind}:{name}}}:req"


@dataclass(frozen=True, slots=True)
class Hold:
    """What one reservation asks for: tokens against a tpm, micro-USD against a budget."""

    id: str
    tpm: int | None
    tokens: int
    budget_micro: int | None
    cost_micro: int
    #: how long the reservation holds if it is never settled (a crashed replica's)
    expiry_ms: int


@dataclass(frozen=True, slots=True)
class HoldResult:
    """A reservation: made (``bucket``: its tpm second), refused (``limit``: tpm or budget,
    ``room`` left, ``wait_ms`` for tpm), or ``missing`` (rebuild the spend counter first)."""

    reserved: bool
    bucket: int | None = None
    limit: str | None = None
    room: int = 0
    wait_ms: int = 0
    missing: bool = False


class Backend(Protocol):
    """Where the counters live; every call is one atomic step."""

    name: str

    async def hit(self, key: str, limit: int, member: str, now_ms: int | None) -> WindowResult:
        """Admit one request into ``key``'s window of 60 s if fewer than ``limit`` are in it."""

    async def unhit(self, key: str, member: str) -> None:
        """Take back an admitted request (a later check refused it)."""

    async def hold(self, keys: ConsumerKeys, hold: Hold, now_ms: int | None) -> HoldResult:
        """Reserve ``hold`` if both the tpm and the budget have room."""

    async def finish(
        self, keys: ConsumerKeys, hold: Hold, bucket: int | None, cost_micro: int, tokens: int
    ) -> None:
        """Drop the reservation, add ``cost_micro`` to the spend, correct the tpm by ``tokens``
        (actual minus reserved)."""

    async def seed_spend(self, key: str, micro: int, ttl_seconds: int) -> None:
        """Set the spend counter ``key`` unless it exists (``SET NX``: replicas rebuilding it
        at once count it once)."""

    async def aclose(self) -> None:
        """Close the connections."""
