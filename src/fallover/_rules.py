"""Validation rules for settings, each made once.

The clients and the router call these with their keyword arguments and let the
``ValueError`` propagate; the config calls the same functions and turns the
``ValueError`` into a ``ConfigError`` naming the file and the key. The message
therefore names the setting, never where it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeAlias, get_args

from ._client import OnInterrupt
from ._types import CAPABILITIES

__all__ = [
    "CAPABILITIES",
    "ON_INTERRUPTS",
    "POLICIES",
    "RESERVED_BODY_KEYS",
    "STORE_SCHEMES",
    "OnInterrupt",
    "Policy",
    "check_capabilities",
    "check_cooldowns",
    "check_extra_body",
    "check_non_negative",
    "check_on_interrupt",
    "check_policy",
    "check_positive",
    "check_store",
    "choices",
]

Policy: TypeAlias = Literal["priority", "round-robin", "weighted", "latency"]
POLICIES: tuple[str, ...] = get_args(Policy)

ON_INTERRUPTS: tuple[str, ...] = get_args(OnInterrupt)

STORE_SCHEMES: tuple[str, ...] = ("redis://", "rediss://", "unix://")

# Fields fallover writes itself: an extra body that set them would silently
# change which model answers, what it is asked, or how the answer arrives.
RESERVED_BODY_KEYS: frozenset[str] = frozenset(("messages", "model", "stream"))


def choices(values: Iterable[str]) -> str:
    """``a, b or c``: the valid values, for an error message."""
    items = list(values)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def check_policy(policy: object) -> None:
    """A policy is one of POLICIES."""
    if policy not in POLICIES:
        raise ValueError(f"{policy!r} is not a policy (choose {choices(POLICIES)})")


def check_on_interrupt(on_interrupt: object) -> None:
    """``on_interrupt`` is one of ON_INTERRUPTS."""
    if on_interrupt not in ON_INTERRUPTS:
        raise ValueError(
            f"on_interrupt must be {choices(repr(v) for v in ON_INTERRUPTS)}, got {on_interrupt!r}"
        )


def check_positive(name: str, value: float | None) -> None:
    """``value`` is None (unset) or a positive number."""
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    """``value`` is zero or more."""
    if not value >= 0:
        raise ValueError(f"{name} must be zero or more, got {value!r}")


def check_cooldowns(cooldown: float, cooldown_max: float) -> None:
    """Both are positive, and the cap is not below the first park."""
    check_positive("cooldown", cooldown)
    check_positive("cooldown_max", cooldown_max)
    if cooldown_max < cooldown:
        raise ValueError(f"cooldown_max ({cooldown_max:g}) is below cooldown ({cooldown:g})")


def check_store(store: str) -> None:
    """A store is "memory" or a Redis URL."""
    if not (store == "memory" or store.startswith(STORE_SCHEMES)):
        raise ValueError(f'{store!r} is not a store (use "memory" or a redis:// URL)')


def check_capabilities(capabilities: Iterable[str]) -> frozenset[str]:
    """The capabilities as a set, each one of CAPABILITIES."""
    given = frozenset(capabilities)
    unknown = sorted(given - CAPABILITIES)
    if unknown:
        raise ValueError(
            f"{', '.join(map(repr, unknown))} is not a capability "
            f"(choose from {choices(sorted(CAPABILITIES))})"
        )
    return given


def check_extra_body(extra_body: Mapping[str, Any]) -> None:
    """An extra body sets none of the fields fallover writes itself."""
    taken = sorted(RESERVED_BODY_KEYS & extra_body.keys())
    if taken:
        raise ValueError(
            f"extra_body cannot set {choices(repr(k) for k in taken)}: fallover writes "
            "it from the request and the member"
        )
