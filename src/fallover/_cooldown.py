"""Where parked members are remembered: the CooldownStore protocol and MemoryCooldowns.

A park is a monotonic deadline per member alias. When it passes, the member is
half-open: exactly one caller holds the probe and tries it, the others keep
treating it as parked until that probe succeeds (live again) or fails (parked
again, longer). Expired entries are deleted when read, so the store stays as
small as the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["CooldownStore", "MemoryCooldowns"]


@runtime_checkable
class CooldownStore(Protocol):
    """Shared park state for one pool; every method is synchronous and local."""

    def has_parks(self) -> bool:
        """True when any member is parked or half-open (the fast path skips the rest)."""
        ...

    def remaining(self, key: str) -> float | None:
        """Seconds until ``key`` may be tried, or None when it is not parked."""
        ...

    def half_open(self, key: str) -> bool:
        """True when ``key``'s park has run out but no probe has proved it live yet."""
        ...

    async def begin_probe(self, key: str) -> bool:
        """Take the single probe of half-open ``key``; False when another caller holds it."""
        ...

    def end_probe(self, key: str) -> None:
        """Give back a probe without an outcome (the call ended or went elsewhere)."""
        ...

    def park(self, key: str, seconds: float) -> float:
        """Park ``key`` for at least ``seconds``, never shortening; return the time left."""
        ...

    def succeeded(self, key: str) -> None:
        """``key`` answered: it is live and its park streak restarts."""
        ...

    def streak(self, key: str) -> int:
        """Consecutive parks of ``key`` since its last success."""
        ...

    async def aclose(self) -> None:
        """Release whatever the store holds."""
        ...


class MemoryCooldowns:
    """Parks in a dict, for one process; ``clock`` is injectable for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self._half_open: set[str] = set()
        self._probing: set[str] = set()
        self._streak: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parked={sorted(self._until)!r})"

    def has_parks(self) -> bool:
        return bool(self._until or self._half_open)

    def remaining(self, key: str) -> float | None:
        until = self._until.get(key)
        if until is None:
            return None
        left = until - self._clock()
        if left > 0:
            return left
        del self._until[key]
        self._half_open.add(key)
        return None

    def half_open(self, key: str) -> bool:
        return key in self._half_open

    async def begin_probe(self, key: str) -> bool:
        return self._take_probe(key)

    def _take_probe(self, key: str) -> bool:
        if key not in self._half_open:
            return True
        if key in self._probing:
            return False
        self._probing.add(key)
        return True

    def end_probe(self, key: str) -> None:
        self._probing.discard(key)

    def park(self, key: str, seconds: float) -> float:
        return self._set_until(key, self._clock() + seconds, count=True)

    def _set_until(self, key: str, until: float, *, count: bool) -> float:
        """Max-set a deadline; shared by local parks and parks learned from elsewhere."""
        current = self._until.get(key)
        if current is None or until > current:
            self._until[key] = until
        if count:
            self._streak[key] = self._streak.get(key, 0) + 1
        self._half_open.discard(key)
        self._probing.discard(key)
        return self._until[key] - self._clock()

    def succeeded(self, key: str) -> None:
        if self._streak:
            self._streak.pop(key, None)
        if self._half_open:
            self._half_open.discard(key)
            self._probing.discard(key)
        if key in self._until:
            # A parked member that answered as a last resort is live again.
            del self._until[key]

    def streak(self, key: str) -> int:
        return self._streak.get(key, 0)

    async def aclose(self) -> None:
        self._until.clear()
        self._half_open.clear()
        self._probing.clear()
