"""Policies: the order in which one call asks the live members.

A policy sees only the members that are live for this call (parked ones are
already set aside) and returns them in the order to try. Policies that learn
(``latency``) are told when a member is asked and how long it took to its
first event. See docs/routing.md, "Order".
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Protocol

from .. import _defaults
from .._client import LLMClient

__all__ = ["Latency", "Order", "Priority", "RoundRobin", "Weighted", "make_policy"]


class Order(Protocol):
    """Orders the live members for one call."""

    learns: bool
    """True when the policy wants ``started``/``finished`` (the walk skips them otherwise)."""

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        """The members to try, first choice first."""
        ...

    def started(self, member: LLMClient) -> None:
        """``member`` is being asked."""
        ...

    def finished(self, member: LLMClient, first_event: float | None) -> None:
        """``member``'s attempt ended; ``first_event`` is its time to first event, if it had one."""
        ...


class _Static:
    learns = False

    def started(self, member: LLMClient) -> None:
        return None

    def finished(self, member: LLMClient, first_event: float | None) -> None:
        return None


class Priority(_Static):
    """Configured order: the first member is preferred, the rest are backups."""

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        return live


class RoundRobin(_Static):
    """The starting member rotates per call."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        n = len(live)
        if n < 2:
            return live
        start = next(self._turn) % n
        return [*live[start:], *live[:start]]


class Weighted(_Static):
    """The first member is drawn in proportion to its weight among the live ones.

    The rest follow in configured order, so a fallover goes where priority would.
    """

    def __init__(self, weights: dict[str, float], rng: random.Random) -> None:
        self._weights = weights
        self._rng = rng

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        if len(live) < 2:
            return live
        weights = [self._weights.get(m.alias, _defaults.WEIGHT) for m in live]
        pick = self._rng.choices(range(len(live)), weights=weights)[0]
        return [live[pick], *live[:pick], *live[pick + 1 :]]


class Latency:
    """The faster of two random live members, by a decaying average of time to first event.

    The average is penalised by the member's calls in flight, so a fast member
    under load shares it. A member with no sample yet counts as fastest, so
    every member is measured; with probability ``explore`` a call takes the
    slower candidate, so a member that became fast is noticed.
    """

    learns = True

    def __init__(self, rng: random.Random, *, decay: float = 0.2, explore: float = 0.02) -> None:
        self._rng = rng
        self._decay = decay
        self._explore = explore
        self._average: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}

    def score(self, member: LLMClient) -> float:
        """Lower is better: the average time to first event times (1 + calls in flight)."""
        key = member.alias
        return self._average.get(key, 0.0) * (1 + self._in_flight.get(key, 0))

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        n = len(live)
        if n < 2:
            return live
        i, j = self._rng.sample(range(n), 2) if n > 2 else (0, 1)
        a, b = live[i], live[j]
        first, second = (a, b) if self.score(a) <= self.score(b) else (b, a)
        if self._rng.random() < self._explore:
            first, second = second, first
        return [first, second, *(m for k, m in enumerate(live) if k != i and k != j)]

    def started(self, member: LLMClient) -> None:
        key = member.alias
        self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def finished(self, member: LLMClient, first_event: float | None) -> None:
        key = member.alias
        self._in_flight[key] = max(self._in_flight.get(key, 1) - 1, 0)
        if first_event is not None:
            old = self._average.get(key)
            self._average[key] = (
                first_event if old is None else old + self._decay * (first_event - old)
            )


def make_policy(
    name: str,
    members: Sequence[LLMClient],
    *,
    weights: Sequence[float] | None = None,
    rng: random.Random | None = None,
) -> Order:
    """The order policy called ``name`` (already checked by ``_rules.check_policy``)."""
    rng = rng if rng is not None else random.Random()
    if name == "round-robin":
        return RoundRobin()
    if name == "weighted":
        given = weights if weights is not None else [_defaults.WEIGHT] * len(members)
        return Weighted({m.alias: w for m, w in zip(members, given, strict=True)}, rng)
    if name == "latency":
        return Latency(rng)
    return Priority()
