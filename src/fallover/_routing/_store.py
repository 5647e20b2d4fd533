"""Where parked members are remembered: the CooldownStore protocol and MemoryCooldowns.

A park is a monotonic deadline per member alias, with the time it was set and
its kind. When the deadline passes the member is half-open: exactly one caller
holds the probe and tries it, the others keep treating it as parked until that
probe succeeds (live again) or fails (parked again, longer). Expired entries
are deleted when read, so the store stays as small as the pool.

Queries (``has_parks``, ``remaining``, ``half_open``, ``parked_at``, ``streak``)
start nothing and record nothing; only ``park``, ``succeeded`` and the probe
methods change state. See docs/architecture.md, "Routing".
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import anyio
import anyio.lowlevel

__all__ = ["CooldownStore", "MemoryCooldowns", "ParkKind"]

ParkKind: TypeAlias = Literal["backoff", "long"]
"""``long``: the member is unusable until a person acts (auth, quota, model); not waited for."""


@runtime_checkable
class CooldownStore(Protocol):
    """Shared park state for one pool; every query is synchronous, local and pure."""

    async def open(self) -> None:
        """Get ready for the first call: load what other processes know, within a short bound."""
        ...

    def now(self) -> float:
        """The store's monotonic clock: attempts are timed on it to compare with parks."""
        ...

    @property
    def version(self) -> int:
        """A number that changes whenever a park is set, cleared or expires."""
        ...

    def has_parks(self) -> bool:
        """True when any member is parked or half-open (the fast path skips the rest)."""
        ...

    def remaining(self, key: str) -> float | None:
        """Seconds until ``key`` may be tried, or None when it is not parked."""
        ...

    def kind(self, key: str) -> ParkKind | None:
        """What kind of park ``key`` is under, or None when it is not parked."""
        ...

    def parked_at(self, key: str) -> float | None:
        """When ``key``'s current park (or the one its half-open state follows) was set."""
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

    def park(
        self, key: str, seconds: float, *, kind: ParkKind = "backoff", count: bool = True
    ) -> float:
        """Park ``key`` for at least ``seconds``, never shortening; return the time left.

        ``count=False``: a failure that is old news, which does not add to the streak.
        """
        ...

    def succeeded(self, key: str, *, started: float) -> None:
        """``key`` answered an attempt begun at ``started`` (on ``now()``).

        The park is cleared and the streak restarts only when the attempt began
        after the park was set: an older success is stale news.
        """
        ...

    def streak(self, key: str) -> int:
        """Consecutive parks of ``key`` since its last success."""
        ...

    async def wait(self, seconds: float) -> None:
        """Return after ``seconds`` on the store's clock, or sooner when any park changes."""
        ...

    async def aclose(self) -> None:
        """Release whatever the store holds."""
        ...


class _Park:
    __slots__ = ("kind", "set_at", "until")

    def __init__(self, until: float, set_at: float, kind: ParkKind) -> None:
        self.until = until
        self.set_at = set_at
        self.kind: ParkKind = kind


class MemoryCooldowns:
    """Parks in a dict, for one process.

    ``clock`` and ``sleep`` are injectable together so tests run on virtual
    time: ``sleep(seconds)`` must let ``clock()`` advance by ``seconds``.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._parks: dict[str, _Park] = {}
        # Half-open members, with the time the park they follow was set.
        self._half_open: dict[str, float] = {}
        self._probing: set[str] = set()
        self._streak: dict[str, int] = {}
        self._version = 0
        self._changed: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parked={sorted(self._parks)!r})"

    async def open(self) -> None:
        return None

    def now(self) -> float:
        return self._clock()

    @property
    def version(self) -> int:
        return self._version

    def notify(self) -> None:
        """Wake the callers waiting on this store: something they wait for may have changed."""
        self._bump()

    def _bump(self) -> None:
        self._version += 1
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    # -- queries -------------------------------------------------------------------

    def has_parks(self) -> bool:
        return bool(self._parks or self._half_open)

    def remaining(self, key: str) -> float | None:
        park = self._parks.get(key)
        if park is None:
            return None
        left = park.until - self._clock()
        if left > 0:
            return left
        # Expired: delete on read and leave the member half-open.
        del self._parks[key]
        self._half_open[key] = park.set_at
        self._bump()
        return None

    def kind(self, key: str) -> ParkKind | None:
        park = self._parks.get(key)
        return park.kind if park is not None and self.remaining(key) is not None else None

    def parked_at(self, key: str) -> float | None:
        park = self._parks.get(key)
        if park is not None:
            return park.set_at
        return self._half_open.get(key)

    def half_open(self, key: str) -> bool:
        return key in self._half_open

    def streak(self, key: str) -> int:
        return self._streak.get(key, 0)

    # -- probes --------------------------------------------------------------------

    async def begin_probe(self, key: str) -> bool:
        return self.take_probe(key)

    def take_probe(self, key: str) -> bool:
        """The local half of ``begin_probe``: single-flight within this process."""
        if key not in self._half_open:
            return True
        if key in self._probing:
            return False
        self._probing.add(key)
        return True

    def end_probe(self, key: str) -> None:
        if key in self._probing:
            self._probing.discard(key)
            self._bump()  # callers waiting on the probe look again

    def probing(self, key: str) -> bool:
        """True when a caller of this process holds ``key``'s probe."""
        return key in self._probing

    # -- changes -------------------------------------------------------------------

    def park(
        self, key: str, seconds: float, *, kind: ParkKind = "backoff", count: bool = True
    ) -> float:
        now = self._clock()
        left = self.mirror(key, now + seconds, set_at=now, kind=kind)
        if count:
            self._streak[key] = self._streak.get(key, 0) + 1
        return left

    def mirror(self, key: str, until: float, *, set_at: float, kind: ParkKind) -> float:
        """Max-set a deadline learned from elsewhere; the streak is not counted.

        Returns the seconds left on the park now in place.
        """
        current = self._parks.get(key)
        if current is None or until > current.until:
            self._parks[key] = _Park(until, set_at, kind)
        self._half_open.pop(key, None)
        self._probing.discard(key)
        self._bump()
        return self._parks[key].until - self._clock()

    def succeeded(self, key: str, *, started: float) -> None:
        set_at = self.parked_at(key)
        if set_at is not None and started < set_at:
            return  # stale: the attempt began before the park was set
        self.live(key)

    def live(self, key: str) -> None:
        """Mark ``key`` live: no park, no half-open state, streak restarted."""
        if self._streak:
            self._streak.pop(key, None)
        if key in self._parks or key in self._half_open:
            self._parks.pop(key, None)
            self._half_open.pop(key, None)
            self._probing.discard(key)
            self._bump()

    async def wait(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        changed = self._changed
        if changed is None:
            changed = self._changed = anyio.Event()
        sleep = self._sleep
        if sleep is None:
            with anyio.move_on_after(seconds):
                await changed.wait()
            return
        until = self._clock() + seconds
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                # Sleep to an absolute time: many waiters on a virtual clock move it once.
                left = until - self._clock()
                if left > 0:
                    await sleep(left)
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            await changed.wait()
            tg.cancel_scope.cancel()

    async def aclose(self) -> None:
        self._parks.clear()
        self._half_open.clear()
        self._probing.clear()
        self._bump()
