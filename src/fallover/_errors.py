"""The error tree.

::

    FalloverError
    ├── ConfigError                 bad config; .path (file) and .key ("routing.policy")
    ├── ProviderError               one member's failure; .alias .status .retry_after .code
    │   ├── RequestRejected         the request itself is bad: same on every model
    │   │   ├── BadRequest          400 / 422 invalid request
    │   │   ├── ContentFiltered     content_policy_violation; content_filter with no answer
    │   │   ├── ContextTooLong      413, context_length_exceeded, request_too_large
    │   │   └── Unsupported         no member can take what the request needs (tools, vision, ...)
    │   ├── MemberUnusable          this member can't serve anyone right now
    │   │   ├── AuthFailed          401 / 403
    │   │   ├── ModelNotFound       404
    │   │   └── QuotaExhausted      402, insufficient_quota, spend limit, daily quota
    │   └── Unavailable             transient
    │       ├── RateLimited         429 (not quota), 409
    │       ├── ServerFailed        5xx, 529, overloaded_error, UNAVAILABLE
    │       ├── ConnectionFailed    refused, reset, truncated body
    │       ├── ProviderTimeout     attempt timeout, first-token timeout, stream stall
    │       └── MalformedResponse   not the protocol's JSON/SSE (an HTML error page, bad JSON)
    ├── StreamInterrupted           failed after an event was yielded; .partial_text
    ├── AllModelsFailed             every member failed; .attempts .retry_after
    └── RoutingTimeout              the call's budget ran out; .attempts

Misuse (a bad argument) raises ``TypeError``/``ValueError``, outside this tree,
so ``except ProviderError`` never hides a bug.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._types import Attempt

__all__ = [
    "AllModelsFailed",
    "AuthFailed",
    "BadRequest",
    "ConfigError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextTooLong",
    "FalloverError",
    "MalformedResponse",
    "MemberUnusable",
    "ModelNotFound",
    "ProviderError",
    "ProviderTimeout",
    "QuotaExhausted",
    "RateLimited",
    "RequestRejected",
    "RoutingTimeout",
    "ServerFailed",
    "StreamInterrupted",
    "Unavailable",
    "Unsupported",
]


class FalloverError(Exception):
    """Base of every error fallover raises on purpose."""


class ConfigError(FalloverError):
    """The configuration is wrong; ``path`` is the file, ``key`` the dotted key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        self.message = message
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ProviderError(FalloverError):
    """One member's failure."""

    def __init__(
        self,
        message: str,
        *,
        alias: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        self.message = message
        self.alias = alias
        self.status = status
        self.retry_after = retry_after
        self.code = code
        super().__init__(message)

    def __str__(self) -> str:
        head = self.alias or "provider"
        if self.status is not None:
            head += f" ({self.status})"
        return f"{head}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, alias={self.alias!r}, "
            f"status={self.status!r}, retry_after={self.retry_after!r}, code={self.code!r})"
        )


class RequestRejected(ProviderError):
    """The request itself is bad: every model would refuse it."""


class BadRequest(RequestRejected):
    """400 / 422: the request is invalid."""


class ContentFiltered(RequestRejected):
    """The provider's content policy refused the request."""


class ContextTooLong(RequestRejected):
    """The request does not fit this model's context window."""


class Unsupported(RequestRejected):
    """No member can take what the request needs (tools, vision, json_schema, reasoning)."""


class MemberUnusable(ProviderError):
    """This member can't serve anyone right now (key, model or quota)."""


class AuthFailed(MemberUnusable):
    """401 / 403: the key is missing, wrong or not allowed."""


class ModelNotFound(MemberUnusable):
    """404: no such model (or endpoint) at this provider."""


class QuotaExhausted(MemberUnusable):
    """402 / insufficient_quota: the account is out of credit or quota."""


class Unavailable(ProviderError):
    """A transient failure: worth retrying later or elsewhere."""


class RateLimited(Unavailable):
    """429 (not quota) or 409: slow down."""


class ServerFailed(Unavailable):
    """5xx, 529, overloaded."""


class ConnectionFailed(Unavailable):
    """Refused, reset or truncated."""


class ProviderTimeout(Unavailable):
    """The provider was silent too long: attempt, first-token or idle timeout."""


class MalformedResponse(Unavailable):
    """The answer is not the protocol's JSON or SSE."""


class StreamInterrupted(FalloverError):
    """A stream failed after its first event was yielded; ``partial_text`` is what arrived."""

    def __init__(self, message: str, *, partial_text: str, error: BaseException) -> None:
        self.partial_text = partial_text
        self.error = error
        super().__init__(message)


def _list_attempts(attempts: Sequence[Attempt]) -> str:
    return "; ".join(f"{a.alias}: {a.error or a.outcome}" for a in attempts) or "no member tried"


class AllModelsFailed(FalloverError):
    """Every member failed; ``attempts`` says how, ``retry_after`` when one is back."""

    def __init__(self, attempts: Sequence[Attempt], *, retry_after: float | None = None) -> None:
        self.attempts = tuple(attempts)
        self.retry_after = retry_after
        msg = f"all {len({a.alias for a in self.attempts})} models failed: "
        msg += _list_attempts(self.attempts)
        if retry_after is not None:
            msg += f" (soonest back in {retry_after:.1f}s)"
        super().__init__(msg)


class RoutingTimeout(FalloverError):
    """The call's ``call_timeout`` ran out; ``attempts`` lists what was tried."""

    def __init__(self, timeout: float, attempts: Sequence[Attempt]) -> None:
        self.timeout = timeout
        self.attempts = tuple(attempts)
        super().__init__(
            f"call_timeout of {timeout:g}s ran out after: {_list_attempts(self.attempts)}"
        )
