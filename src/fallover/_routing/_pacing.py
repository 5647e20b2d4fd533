"""Pacing: never send a member more than its requests and tokens per minute.

Limits are the router's (``AsyncRouter(limits={alias: Pace(rpm=, tpm=)})``, or
``rpm``/``tpm`` in the config): a member is one endpoint with one key, and the
pool is what decides where a call goes. Each limit is a token bucket that
refills at ``limit / 60`` per second and holds one second's worth, so a
fan-out is spread evenly instead of spending a minute's allowance in a burst.
A call's tokens are estimated before it is sent (the prompt's characters / 4,
plus ``max_tokens``) and corrected by the usage the answer reports.

With a store that offers leases (``RedisCooldowns``), a limit is shared by every
process of the pool without a Redis round trip per call: each process spends
a local lease, a batch of a quarter second's allowance, and asks Redis for the
next batch in the background (one ``INCRBY`` on a one-second window) when it
runs out.

The providers' own headers are read too (``x-ratelimit-remaining-*`` and
``-reset-*`` from OpenAI-style servers, ``anthropic-ratelimit-*`` from
Anthropic): a member that reports nothing left is parked until its reset,
before it ever answers 429. See docs/routing.md, "Pacing and hedging".
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec
from multidict import istr

from .._types import ChatRequest, Usage

__all__ = [
    "Allowance",
    "LeaseSource",
    "Pace",
    "Pacer",
    "allowances",
    "estimate_tokens",
    "exhausted_for",
]


@runtime_checkable
class LeaseSource(Protocol):
    """A budget shared between processes, handed out in leases."""

    def lease(self, name: str, want: int, per_second: float, grant: Callable[[int], None]) -> None:
        """Ask for ``want`` units of ``name``'s ``per_second`` budget; ``grant(n)`` is called
        with what was given (maybe 0: the current second is spent), later, without blocking."""
        ...


class Pace(msgspec.Struct, kw_only=True, frozen=True):
    """A member's limits: requests and tokens per minute (None: no limit)."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("rpm", self.rpm), ("tpm", self.tpm)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"Pace.{name} must be a positive whole number, got {value!r}")


# Pace at a little under the stated limit: the provider's clock and ours start at
# different instants, and a request is counted when it arrives, not when it leaves.
MARGIN = 0.9


class _Bucket:
    """A token bucket: ``rate`` per second, holding at most ``capacity``."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, per_minute: float, now: float, *, capacity: float | None = None) -> None:
        self.rate = per_minute / 60.0 * MARGIN
        self.capacity = max(1.0, self.rate) if capacity is None else max(1.0, capacity)
        self.level = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` may be taken (a request larger than the bucket waits
        for a full bucket and then overdraws it)."""
        self._refill(now)
        need = min(amount, self.capacity)
        if self.level >= need - 1e-9:  # a bucket refilled to the instant has room
            return 0.0
        return (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class _SharedBucket(_Bucket):
    """A bucket fed by leases from a shared budget instead of by the clock."""

    __slots__ = ("_asking", "_name", "_source")

    def __init__(self, per_minute: int, now: float, name: str, source: LeaseSource) -> None:
        super().__init__(per_minute, now)
        self.level = 0.0
        self._name = name
        self._source = source
        self._asking = False

    def _refill(self, now: float) -> None:
        return None  # only leases add to it

    def wait(self, amount: float, now: float) -> float:
        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        if not self._asking:
            self._asking = True
            batch = max(math.ceil(need - self.level), math.ceil(self.capacity / 4))
            self._source.lease(self._name, batch, self.capacity, self._granted)
        # A lease is on its way, or this second is spent: look again at the next second.
        return max(1.0 - (time.time() % 1.0), 0.01)

    def _granted(self, amount: int) -> None:
        self._asking = False
        self.level = min(self.capacity, self.level + amount)

    def give(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)


class Pacer:
    """The buckets of every limited member of one pool."""

    def __init__(
        self,
        limits: Mapping[str, Pace],
        *,
        clock: Callable[[], float],
        shared: LeaseSource | None = None,
    ) -> None:
        self._clock = clock
        now = clock()
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}
        for key, pace in limits.items():
            for per_minute, kind, buckets in (
                (pace.rpm, "requests", self._requests),
                (pace.tpm, "tokens", self._tokens),
            ):
                if per_minute is None:
                    continue
                if shared is None:
                    buckets[key] = _Bucket(per_minute, now)
                else:
                    buckets[key] = _SharedBucket(per_minute, now, f"{key}:{kind}", shared)

    def __bool__(self) -> bool:
        return bool(self._requests or self._tokens)

    def limited(self, key: str) -> bool:
        """True when ``key`` has a limit, given or learned from its headers."""
        return key in self._requests or key in self._tokens

    def observe(self, key: str, seen: Sequence[Allowance]) -> None:
        """Learn a member's limits from its rate-limit headers, where none were given.

        The provider's bucket is mirrored: what it says is left now, refilling at
        the pace that brings it back to its limit by the reset.
        """
        now = self._clock()
        done: set[str] = set()
        for kind, limit, remaining, reset in seen:
            if kind not in ("requests", "tokens") or kind in done:
                continue
            if limit is None or reset is None:
                continue
            done.add(kind)  # one family per kind: OpenAI's headers, else Anthropic's
            buckets = self._requests if kind == "requests" else self._tokens
            bucket = buckets.get(key)
            if bucket is None:
                if reset <= 0 or limit <= remaining:
                    continue
                per_minute = (limit - remaining) / reset * 60.0
                bucket = buckets[key] = _Bucket(per_minute, now, capacity=limit * MARGIN)
            bucket.take(0, now)
            bucket.level = min(bucket.level, remaining)

    def wait(self, key: str, tokens: int) -> float:
        """Seconds until ``key`` may be sent a call of ``tokens`` (0: now)."""
        now = self._clock()
        wait = 0.0
        bucket = self._requests.get(key)
        if bucket is not None:
            wait = bucket.wait(1, now)
        bucket = self._tokens.get(key)
        if bucket is not None:
            wait = max(wait, bucket.wait(tokens, now))
        return wait

    def take(self, key: str, tokens: int) -> None:
        """Spend one request and ``tokens`` of ``key``'s allowance."""
        now = self._clock()
        bucket = self._requests.get(key)
        if bucket is not None:
            bucket.take(1, now)
        bucket = self._tokens.get(key)
        if bucket is not None:
            bucket.take(tokens, now)

    def settle(self, key: str, estimated: int, usage: Usage | None) -> None:
        """Correct the estimate by the tokens the answer reports it used."""
        bucket = self._tokens.get(key)
        if bucket is None or usage is None:
            return
        used = usage.input_tokens + usage.output_tokens
        if used < estimated:
            bucket.give(estimated - used)
        else:
            bucket.take(used - estimated, self._clock())


def estimate_tokens(request: ChatRequest) -> int:
    """A request's tokens before it is sent: its text's characters / 4, plus ``max_tokens``."""
    chars = 0
    for m in request.messages:
        content = m.content
        if isinstance(content, str):
            chars += len(content)
        else:
            chars += sum(len(getattr(p, "text", "")) for p in content)
    for t in request.tools:
        chars += len(t.description or "") + len(t.name)
    return chars // 4 + 1 + (request.max_tokens or 0)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _duration(text: str) -> float | None:
    """OpenAI's reset durations (``6m0s``, ``0.4s``, ``20ms``); a bare number is seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def _instant(text: str, wall: float) -> float | None:
    """Anthropic's reset instants (RFC 3339), as seconds from ``wall``."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.timestamp() - wall


class Allowance(NamedTuple):
    """What one family of rate-limit headers says about one kind of allowance."""

    kind: str  # requests, tokens, input-tokens, output-tokens
    limit: float | None
    remaining: float
    reset: float | None  # seconds until it is whole again


class _Family(NamedTuple):
    kind: str
    remaining: istr
    limit: istr
    reset: istr
    instant: bool  # the reset is an RFC 3339 instant (Anthropic), not a duration (OpenAI)


_KINDS = ("requests", "tokens", "input-tokens", "output-tokens")
# OpenAI's family first: where a server sends both, its reading wins. The names are
# ``istr``: a case-insensitive header map looks them up without folding them each time.
_FAMILIES = (
    *(
        _Family(
            k,
            istr(f"x-ratelimit-remaining-{k}"),
            istr(f"x-ratelimit-limit-{k}"),
            istr(f"x-ratelimit-reset-{k}"),
            False,
        )
        for k in _KINDS
    ),
    *(
        _Family(
            k,
            istr(f"anthropic-ratelimit-{k}-remaining"),
            istr(f"anthropic-ratelimit-{k}-limit"),
            istr(f"anthropic-ratelimit-{k}-reset"),
            True,
        )
        for k in _KINDS
    ),
)
_REMAINING = tuple(family.remaining for family in _FAMILIES)


def allowances(
    headers: Mapping[str, str], *, wall: Callable[[], float] = time.time
) -> list[Allowance]:
    """Every allowance the response's rate-limit headers report; [] when they report none.

    Every response of a pool passes here: a response without such headers costs
    eight lookups, with the header names built once.
    """
    for name in _REMAINING:
        if name in headers:
            break
    else:
        return []
    now = wall()
    seen: list[Allowance] = []
    for kind, remaining_name, limit_name, reset_name, instant in _FAMILIES:
        remaining = _number(headers.get(remaining_name))
        if remaining is None:
            continue
        reset_text = headers.get(reset_name)
        if reset_text is None:
            reset = None
        else:
            reset = _instant(reset_text, now) if instant else _duration(reset_text)
        seen.append(Allowance(kind, _number(headers.get(limit_name)), remaining, reset))
    return seen


def exhausted_for(seen: Sequence[Allowance]) -> float | None:
    """Seconds until the provider's allowance is back, when its headers say none is left."""
    longest: float | None = None
    for allowance in seen:
        if allowance.remaining <= 0:
            longest = _longer(longest, allowance.reset)
    return longest


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _longer(current: float | None, seconds: float | None) -> float | None:
    if seconds is None or not math.isfinite(seconds):
        seconds = 1.0  # nothing left and no usable reset: hold off briefly
    seconds = max(seconds, 0.0)
    return seconds if current is None else max(current, seconds)
