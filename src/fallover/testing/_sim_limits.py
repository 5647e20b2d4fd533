"""Provider-like rate limits: per-model request and token buckets, and their headers.

Both providers describe their limiters as buckets that refill continuously up to the limit
(Anthropic says so outright; OpenAI's reset headers give the time until "the rate limit
resets to its initial state", i.e. until the bucket is full). A request needs one request
and, before it runs, room for its input tokens; an answer then costs its input and output
tokens, as reported in its usage, so the token bucket can go below zero after a long answer,
as a real one does.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ._sim_scenario import Fault

__all__ = ["Limits", "Refusal", "go_duration"]


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it (Go's format): ``400ms``, ``8.64s``, ``6m0s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


@dataclass(slots=True)
class _Bucket:
    limit: int
    per_second: float
    level: float
    at: float

    def refill(self, now: float) -> None:
        self.level = min(self.limit, self.level + (now - self.at) * self.per_second)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount``."""
        return max(0.0, (min(amount, self.limit) - self.level) / self.per_second)

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.level))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused: which limit, and how long until it would fit."""

    kind: Literal["requests", "tokens"]
    limit: int
    retry_after: float


class Limits:
    """The buckets of every limited model, read against one clock."""

    def __init__(self, clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self._clock = clock
        self._wall = wall  # seconds since the epoch, for Anthropic's RFC 3339 resets
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def reset(self) -> None:
        """Refill every bucket."""
        self._buckets.clear()

    def _bucket(self, model: str, kind: str, limit: int | None, window: float) -> _Bucket | None:
        if limit is None:
            return None
        now = self._clock()
        bucket = self._buckets.get((model, kind))
        if bucket is None or bucket.limit != limit:
            bucket = _Bucket(limit, limit / window, float(limit), now)
            self._buckets[model, kind] = bucket
        bucket.refill(now)
        return bucket

    def admit(self, model: str, fault: Fault, input_tokens: int) -> Refusal | None:
        """Take one request from the bucket, or say why it does not fit."""
        requests = self._bucket(model, "requests", fault.limit_requests, fault.limit_window)
        tokens = self._bucket(model, "tokens", fault.limit_tokens, fault.limit_window)
        if requests is not None and requests.level < 1:
            return Refusal("requests", requests.limit, requests.wait_for(1))
        if tokens is not None and tokens.level < min(input_tokens, tokens.limit):
            return Refusal("tokens", tokens.limit, tokens.wait_for(input_tokens))
        if requests is not None:
            requests.level -= 1
        return None

    def charge(self, model: str, fault: Fault, tokens: int) -> None:
        """Take an answer's tokens (input and output) from the token bucket."""
        bucket = self._bucket(model, "tokens", fault.limit_tokens, fault.limit_window)
        if bucket is not None:
            bucket.level -= tokens

    def headers(self, model: str, fault: Fault, protocol: str) -> dict[str, str]:
        """What is left, as the provider announces it on every response."""
        headers: dict[str, str] = {}
        for kind, limit in (("requests", fault.limit_requests), ("tokens", fault.limit_tokens)):
            bucket = self._bucket(model, kind, limit, fault.limit_window)
            if bucket is None:
                continue
            full_in = bucket.wait_for(bucket.limit)
            if protocol == "anthropic":
                prefix = f"anthropic-ratelimit-{kind}"
                headers[f"{prefix}-limit"] = str(bucket.limit)
                headers[f"{prefix}-remaining"] = str(bucket.remaining)
                headers[f"{prefix}-reset"] = _rfc3339(self._wall() + full_in)
            else:
                headers[f"x-ratelimit-limit-{kind}"] = str(bucket.limit)
                headers[f"x-ratelimit-remaining-{kind}"] = str(bucket.remaining)
                headers[f"x-ratelimit-reset-{kind}"] = go_duration(full_in)
        return headers


def _rfc3339(epoch: float) -> str:
    """Whole seconds, rounded up so a client waiting until then is never early."""
    moment = datetime.datetime.fromtimestamp(math.ceil(epoch), datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
