"""Policies: the order in which one call asks the live members.

A policy sees only the members that are live for this call (parked ones are
already set aside) and returns them in the order to try. See
docs/routing.md, "Order".
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from .._client import LLMClient

__all__ = ["Order", "make_policy"]


class Order(Protocol):
    """Orders the live members for one call."""

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        """The members to try, first choice first."""
        ...


class Priority:
    """Configured order: the first member is preferred, the rest are backups."""

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        return live


class RoundRobin:
    """The starting member rotates per call."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def order(self, live: Sequence[LLMClient]) -> Sequence[LLMClient]:
        n = len(live)
        if n < 2:
            return live
        start = next(self._turn) % n
        return [*live[start:], *live[:start]]


def make_policy(name: str, members: Sequence[LLMClient]) -> Order:
    """The order policy called ``name`` (already checked by ``_rules.check_policy``)."""
    if name == "round-robin":
        return RoundRobin()
    return Priority()
