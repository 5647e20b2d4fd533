"""From a failure to what the router does about it.

Two halves: :func:`error_from_http` turns a provider's status, headers and body
into a class of the error tree, and :func:`verdict` turns any exception into a
:class:`Verdict` (raise, fall over, or look for a larger context window; park
or not; retry on the same member or not). DESIGN section 4 is the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from . import _errors as e
from ._retry_after import parse_retry_after

__all__ = ["Verdict", "error_from_http", "error_from_payload", "redact", "redact_url", "verdict"]


class Verdict(NamedTuple):
    """What to do after a failure."""

    action: Literal["raise", "fall_over", "larger_context"]
    park: Literal["none", "backoff", "long"]
    retry: bool  # worth another try on the same member (section 5)


RAISE = Verdict("raise", "none", False)
LARGER_CONTEXT = Verdict("larger_context", "none", False)
PARK_LONG = Verdict("fall_over", "long", False)
TRANSIENT = Verdict("fall_over", "backoff", True)
SILENT = Verdict("fall_over", "backoff", False)
NO_PARK = Verdict("fall_over", "none", False)


def verdict(exc: BaseException) -> Verdict:
    """Map an exception raised by a member to the router's verdict."""
    if isinstance(exc, e.StreamInterrupted):
        return verdict(exc.error)
    if isinstance(exc, e.ContextTooLong):
        return LARGER_CONTEXT
    if isinstance(exc, e.RequestRejected):
        return RAISE
    if isinstance(exc, e.MemberUnusable):
        return PARK_LONG
    if isinstance(exc, e.ProviderTimeout):
        return SILENT
    if isinstance(exc, e.Unavailable):
        return TRANSIENT
    if isinstance(exc, e.RoutingTimeout):
        return NO_PARK  # a nested pool's budget, not a provider fault
    if isinstance(exc, e.ConfigError):
        return RAISE
    # A nested pool that failed, or anything unknown an adapter raised.
    return SILENT


# Markers read from error.type / error.code / error.status (lower-cased), checked
# as substrings so dotted codes such as DashScope's "Throttling.RateQuota" match.
_CONTEXT = (
    "context_length_exceeded",
    "request_too_large",
    "string_above_max_length",
    "model_context_window_exceeded",
)
_FILTERED = (
    "content_policy_violation",
    "content_filter",
    "datainspectionfailed",  # DashScope
    "data_inspection_failed",
    "sensitivecontentdetected",  # Volcengine Ark
    "inputtextsensitivecontentdetected",
)
_QUOTA = (
    "insufficient_quota",
    "billing_hard_limit_reached",
    "exceeded_current_quota",  # Moonshot
    "arrearage",  # DashScope
    "accountoverdue",  # Volcengine Ark
    "insufficient_balance",
    "quotaexceeded",
    "billing_not_active",
)
_RATE = (
    "rate_limit",
    "ratelimit",
    "throttling",  # DashScope
    "resource_exhausted",  # Gemini
    "too_many_requests",
)
_OVERLOADED = (
    "overloaded",  # Anthropic overloaded_error, Moonshot engine_overloaded_error, Ark
    "unavailable",  # Gemini UNAVAILABLE
    "server_error",
    "api_error",
    "internal",
    "timeout",
)
_AUTH = (
    "authentication",
    "permission",
    "invalid_api_key",
    "unauthenticated",
    "unauthorized",
    "invalidapikey",
)
_NOT_FOUND = ("not_found", "model_not_found", "notfound", "invalidendpointormodel")
# Zhipu (BigModel / Z.ai) numeric business codes: https://docs.bigmodel.cn/cn/faq/api-code,
# https://docs.z.ai/api-reference/api-code
_ZHIPU = {
    "1000": e.AuthFailed,  # authentication failed
    "1001": e.AuthFailed,
    "1002": e.AuthFailed,
    "1003": e.AuthFailed,  # token expired
    "1004": e.AuthFailed,
    "1110": e.AuthFailed,  # account inactive
    "1111": e.AuthFailed,  # account does not exist
    "1112": e.AuthFailed,  # account locked
    "1113": e.QuotaExhausted,  # account in arrears
    "1121": e.AuthFailed,  # account locked for irregular activity
    "1211": e.ModelNotFound,  # model does not exist
    "1234": e.ServerFailed,  # network error
    "1261": e.ContextTooLong,  # prompt too long
    "1301": e.ContentFiltered,  # unsafe or sensitive content
    "1302": e.RateLimited,  # concurrency too high
    "1303": e.RateLimited,  # frequency too high
    "1304": e.QuotaExhausted,  # daily call limit reached
    "1305": e.RateLimited,  # too much traffic
}
_CONTEXT_WORDS = re.compile(
    r"context.length|context window|maximum context|prompt is too long|too many tokens"
    r"|exceeded model token limit|input is too long|input length|reduce the length"
    r"|exceeds the (model's )?(maximum|max)",
    re.IGNORECASE,
)
_QUOTA_WORDS = re.compile(
    r"insufficient (balance|quota|credit)|credit balance is too low|spend(ing)? limit"
    r"|daily quota|quota (has been )?exceeded|exceeded your current quota.*billing"
    r"|billing details|out of credits",
    re.IGNORECASE,
)
_FILTER_WORDS = re.compile(r"content (management )?policy|content filter|safety system", re.I)
_SECRETISH = re.compile(r"\b(sk|key|ak|pk)-[A-Za-z0-9_\-*]{6,}")


def redact(text: str, secret: str | None = None) -> str:
    """Remove a key (and anything that looks like one) from text we show."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _SECRETISH.sub(r"\1-[redacted]", text)


def redact_url(url: str) -> str:
    """A URL without its credentials (``redis://user:pw@host`` → ``redis://***@host``)."""
    head, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{head}://***@{rest.split('@', 1)[1]}"
    return url


class _Fields(NamedTuple):
    markers: str
    code: str | None
    message: str


def _fields(payload: Any) -> _Fields | None:
    """Pull type/code/status/message out of the usual error envelopes."""
    if isinstance(payload, list) and payload:  # Gemini sometimes wraps the error in a list
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    err = payload.get("error", payload if "type" in payload or "code" in payload else None)
    if isinstance(err, str):  # {"error": "message"} (Ollama, some proxies)
        return _Fields("", None, err)
    if not isinstance(err, dict):
        return None
    parts = [err.get(k) for k in ("type", "code", "status")]
    words = [str(p).lower() for p in parts if p is not None and p != ""]
    code = next((str(p) for p in (err.get("code"), err.get("type"), err.get("status")) if p), None)
    message = err.get("message")
    return _Fields(" ".join(words), code, message if isinstance(message, str) else "")


def _has(markers: str, options: tuple[str, ...]) -> bool:
    return any(o in markers for o in options)


def _pick(status: int | None, f: _Fields | None) -> type[e.ProviderError]:
    markers = f.markers if f else ""
    message = f.message if f else ""
    if f and f.code in _ZHIPU:
        return _ZHIPU[f.code]
    if status == 413 or _has(markers, _CONTEXT) or _CONTEXT_WORDS.search(message):
        return e.ContextTooLong
    if _has(markers, _FILTERED) or (status == 400 and _FILTER_WORDS.search(message)):
        return e.ContentFiltered
    if status == 402 or _has(markers, _QUOTA) or _QUOTA_WORDS.search(message):
        return e.QuotaExhausted
    if status in (401, 403) or _has(markers, _AUTH):
        return e.AuthFailed
    if status == 404 or _has(markers, _NOT_FOUND):
        return e.ModelNotFound
    if status in (429, 409) or _has(markers, _RATE):
        return e.RateLimited
    if status == 529 or _has(markers, _OVERLOADED):
        return e.ServerFailed
    if status is not None and status >= 500:
        return e.ServerFailed
    if status in (400, 422) or "invalid_request" in markers or "invalid" in markers:
        return e.BadRequest
    if status is not None and 400 <= status < 500:
        return e.BadRequest
    return e.MalformedResponse


_decode_any = msgspec.json.Decoder().decode


def error_from_payload(
    payload: Any,
    *,
    alias: str,
    status: int | None = None,
    retry_after: float | None = None,
    secret: str | None = None,
) -> e.ProviderError:
    """Classify an already-decoded error body (or an SSE error event)."""
    f = _fields(payload)
    cls = _pick(status, f)
    message = (f.message if f and f.message else "") or "provider reported an error"
    if f and f.code and f.code not in message:
        message = f"{f.code}: {message}"
    return cls(
        redact(message[:500], secret),
        alias=alias,
        status=status,
        retry_after=retry_after,
        code=f.code if f else None,
    )


def error_from_http(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    alias: str,
    secret: str | None = None,
) -> e.ProviderError:
    """Classify a non-2xx HTTP answer from its status, headers and body."""
    retry_after = parse_retry_after(headers)
    try:
        payload = _decode_any(body) if body else None
    except msgspec.DecodeError:
        payload = None
    if payload is not None and _fields(payload) is not None:
        return error_from_payload(
            payload, alias=alias, status=status, retry_after=retry_after, secret=secret
        )
    cls = _pick(status, None)
    kind = "an HTML page" if body.lstrip()[:1] == b"<" else f"{len(body)} bytes"
    if 300 <= status < 400:
        where = headers.get("location", "?")
        message = f"redirect to {where} not followed (check base_url)"
    else:
        message = f"HTTP {status} with {kind} instead of an error object"
    return cls(redact(message, secret), alias=alias, status=status, retry_after=retry_after)
