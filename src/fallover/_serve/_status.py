"""The gateway's one table from an error to the HTTP status a client sees.

``docs/gateway.md`` shows the same table. A caller's mistake is 4xx; a pool
that could not answer is 5xx (or 429 when every member was rate-limited), with
``Retry-After`` whenever the pool knows when a member is back, which the
official SDKs honour when they retry.
"""

from __future__ import annotations

import math

import msgspec

from .. import _errors as e

__all__ = ["Failure", "failure"]


class Failure(msgspec.Struct, kw_only=True, frozen=True):
    """What to tell the client: status, message, an error code, and when to come back."""

    status: int
    message: str
    code: str | None = None
    retry_after: float | None = None

    @property
    def headers(self) -> dict[str, str]:
        """``Retry-After`` in whole seconds, when known."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


_REJECTED_CODES: dict[type[e.ProviderError], str] = {
    e.ContentFiltered: "content_filter",
    e.ContextTooLong: "context_length_exceeded",
}


def _all_rate_limited(exc: e.AllModelsFailed) -> bool:
    statuses = [a.status for a in exc.attempts if a.outcome == "error"]
    if not statuses:
        # Every member was parked and nothing was sent: come back after retry_after.
        return exc.retry_after is not None
    return all(s == 429 for s in statuses)


def failure(exc: Exception) -> Failure:
    """The status table: see ``docs/gateway.md``."""
    if isinstance(exc, e.RequestRejected):
        code = next((c for t, c in _REJECTED_CODES.items() if isinstance(exc, t)), None)
        if code is None and type(exc).__name__ == "Unsupported":
            code = "unsupported"
        return Failure(status=400, message=str(exc), code=code)
    if isinstance(exc, e.AllModelsFailed):
        if exc.retry_after is None:
            return Failure(status=502, message=str(exc), code="all_models_failed")
        status = 429 if _all_rate_limited(exc) else 503
        return Failure(
            status=status, message=str(exc), code="all_models_failed", retry_after=exc.retry_after
        )
    if isinstance(exc, e.RoutingTimeout | e.ProviderTimeout):
        return Failure(status=504, message=str(exc), code="timeout")
    if isinstance(exc, e.RateLimited):
        return Failure(
            status=429, message=str(exc), code="rate_limited", retry_after=exc.retry_after
        )
    if isinstance(exc, e.ProviderError):
        # The member's key, model or quota failed, or it is down: the gateway's upstream
        # failed, not the caller's request or the caller's key.
        return Failure(status=502, message=str(exc), code="upstream_failed")
    if isinstance(exc, e.StreamInterrupted):
        return Failure(status=502, message=str(exc), code="stream_interrupted")
    return Failure(status=500, message="internal error in the gateway", code="internal_error")
