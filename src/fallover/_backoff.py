"""One backoff: exponential, capped, jittered; and the one sleep every wait goes through.

A member's retries and the router's park lengths come from :class:`Backoff`
(docs/architecture.md#where-each-decision-is-made). A member's waits go
through :func:`sleep`, so ``fallover.testing.set_testing`` can make them
instant (and record them) without a test reaching into a client.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import TracebackType
from typing import final

import anyio
import anyio.lowlevel

from . import _defaults as d

__all__ = ["MEMBER_RETRIES", "Backoff", "Testing", "set_testing", "sleep"]


@final
class Backoff:
    """Delays that start at ``first``, double per try and stop growing at ``cap``.

    With ``jitter`` each delay is drawn from ``[d/2, d]``, so many callers that
    failed together do not come back together.
    """

    __slots__ = ("_rand", "cap", "first", "jitter")

    def __init__(
        self,
        *,
        first: float = d.BACKOFF_FIRST,
        cap: float = d.BACKOFF_CAP,
        jitter: bool = True,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not first > 0:
            raise ValueError(f"Backoff first must be a positive number of seconds, got {first!r}")
        if cap < first:
            raise ValueError(f"Backoff cap ({cap!r}) is below first ({first!r})")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self._rand = rand

    def __repr__(self) -> str:
        return f"Backoff(first={self.first!r}, cap={self.cap!r}, jitter={self.jitter!r})"

    def ceiling(self, tries: int) -> float:
        """The delay before try ``tries + 1`` without jitter: ``first * 2**tries``, capped."""
        if tries >= 64:  # 2**64 overflows nothing in Python, but is far past any cap
            return self.cap
        return min(self.first * (2.0**tries), self.cap)

    def delay(self, tries: int) -> float:
        """The delay after ``tries`` failed tries (0 for the first retry), jittered."""
        top = self.ceiling(tries)
        return top * (0.5 + self._rand() / 2) if self.jitter else top


MEMBER_RETRIES = Backoff()
"""A member's retries: 0.5 s doubling, capped at 8 s, jitter in [d/2, d]."""


# Set while testing mode is on: the waits asked for, in order.
_testing: list[float] | None = None


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` (instantly, and recorded, in testing mode)."""
    waits = _testing
    if waits is None:
        await anyio.sleep(seconds)
        return
    waits.append(seconds)
    await anyio.lowlevel.checkpoint()


@final
class Testing:
    """The state ``set_testing`` put in place; as a context manager, restores the previous one."""

    __slots__ = ("_previous", "waits")

    def __init__(self, waits: list[float] | None, previous: list[float] | None) -> None:
        self.waits: list[float] = waits if waits is not None else []
        self._previous = previous

    def __enter__(self) -> list[float]:
        return self.waits

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _testing
        _testing = self._previous


def set_testing(testing: bool = True) -> Testing:
    """Make every member retry wait instant (``True``) or real again (``False``).

    Returns an object that, used as a context manager, yields the list of waits
    asked for (in seconds, in order) and restores the previous mode on exit::

        with fallover.testing.set_testing(True) as waits:
            await client.complete(request)
        assert waits == [2.0, 2.0]
    """
    global _testing
    previous = _testing
    _testing = [] if testing else None
    return Testing(_testing, previous)
