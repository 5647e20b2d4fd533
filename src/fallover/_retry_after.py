"""How long the server asked us to wait: ``retry-after-ms``, ``Retry-After`` or an HTTP-date."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]

# Anything longer is treated as a typo or hostile, not a day-long park.
_MAX_SECONDS = 24 * 3600.0


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Return the delay in seconds the headers ask for, or None when they ask for none.

    ``retry-after-ms`` (OpenAI, Anthropic) wins over ``Retry-After``, which may
    be seconds or an HTTP-date. Unparseable values are ignored; negative ones
    become 0; absurd ones are capped at a day.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        seconds = _number(ms)
        if seconds is not None:
            return _clamp(seconds / 1000.0)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _clamp(seconds)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    return _clamp(when.timestamp() - now())


def _number(value: str) -> float | None:
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _clamp(seconds: float) -> float:
    return min(max(seconds, 0.0), _MAX_SECONDS)
