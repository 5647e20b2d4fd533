"""From a failure to what the router does about it.

Two halves: :func:`error_from_http` turns a provider's status, headers and body
into a class of the error tree, and :func:`verdict` turns any exception into a
:class:`Verdict` (raise, fall over, or look for a larger context window; park
or not; retry on the same member or not). The table is in docs/errors.md;
the flow around it in docs/architecture.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec

from . import _errors as e
from ._redact import redact, redact_url
from ._retry_after import parse_retry_after

__all__ = ["Verdict", "error_from_http", "error_from_payload", "verdict"]


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
# Messages are lower-cased once and searched without IGNORECASE: this runs on every failure.
_CONTEXT_WORDS = re.compile(
    r"context.length|context window|maximum context|prompt is too long|too many tokens"
    r"|exceeded model token limit|input is too long|input length|reduce the length"
    r"|exceeds the (?:model's )?(?:maximum|max)"
)
_QUOTA_WORDS = re.compile(
    r"insufficient (?:balance|quota|credit)|credit balance is too low|spend(?:ing)? limit"
    r"|daily quota|quota (?:has been )?exceeded|exceeded your current quota.*billing"
    r"|billing details|out of credits"
)
_FILTER_WORDS = re.compile(r"content (?:management )?policy|content filter|safety system")


def _any_of(options: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(o) for o in options))


_CONTEXT_MARK = _any_of(_CONTEXT)
_FILTERED_MARK = _any_of(_FILTERED)
_QUOTA_MARK = _any_of(_QUOTA)
_AUTH_MARK = _any_of(_AUTH)
_NOT_FOUND_MARK = _any_of(_NOT_FOUND)
_RATE_MARK = _any_of(_RATE)
_OVERLOADED_MARK = _any_of(_OVERLOADED)


class _Fields(NamedTuple):
    markers: str  # error.code, .type and .status, lower-cased, space-separated
    code: str | None  # the first of code, type and status that is set
    message: str


def _fields(payload: Any) -> _Fields | None:
    """Pull code/type/status/message out of the usual error envelopes, once."""
    if type(payload) is list and payload:  # Gemini sometimes wraps the error in a list
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    err = payload.get("error")
    if err is None and ("type" in payload or "code" in payload):
        err = payload
    if isinstance(err, str):  # {"error": "message"} (Ollama, some proxies)
        return _Fields("", None, err)
    if not isinstance(err, dict):
        return None
    code: str | None = None
    markers = ""
    for key in ("code", "type", "status"):
        value = err.get(key)
        if not value:
            continue
        text = value if isinstance(value, str) else str(value)
        if code is None:
            code = text
        markers = f"{markers} {text}" if markers else text
    message = err.get("message")
    return _Fields(markers.lower(), code, message if isinstance(message, str) else "")


# The same few errors come back again and again (a throttled provider answers every
# call alike), so each distinct (status, fields) decision is made once and looked up after.
_PICKED: dict[tuple[int | None, _Fields | None], type[e.ProviderError]] = {}
_PICKED_MAX = 1024


def _pick(status: int | None, f: _Fields | None) -> type[e.ProviderError]:
    key = (status, f)
    cls = _PICKED.get(key)
    if cls is None:
        cls = _decide(status, f)
        if len(_PICKED) >= _PICKED_MAX:
            _PICKED.clear()
        _PICKED[key] = cls
    return cls


def _decide(status: int | None, f: _Fields | None) -> type[e.ProviderError]:
    markers = message = ""
    if f is not None:
        if f.code is not None and f.code in _ZHIPU:
            return _ZHIPU[f.code]
        markers = f.markers
        message = f.message.lower()
    if status == 413 or _CONTEXT_MARK.search(markers) or _CONTEXT_WORDS.search(message):
        return e.ContextTooLong
    if _FILTERED_MARK.search(markers) or (status == 400 and _FILTER_WORDS.search(message)):
        return e.ContentFiltered
    if status == 402 or _QUOTA_MARK.search(markers) or _QUOTA_WORDS.search(message):
        return e.QuotaExhausted
    if status == 401 or status == 403 or _AUTH_MARK.search(markers):
        return e.AuthFailed
    if status == 404 or _NOT_FOUND_MARK.search(markers):
        return e.ModelNotFound
    if status == 429 or status == 409 or _RATE_MARK.search(markers):
        return e.RateLimited
    if status == 529 or _OVERLOADED_MARK.search(markers):
        return e.ServerFailed
    if status is not None and status >= 500:
        return e.ServerFailed
    if (status is not None and 400 <= status < 500) or "invalid" in markers:
        return e.BadRequest
    return e.MalformedResponse


_decode_any = msgspec.json.Decoder().decode


def _error(
    f: _Fields | None,
    *,
    alias: str,
    status: int | None,
    retry_after: float | None,
    secret: str | None,
) -> e.ProviderError:
    cls = _pick(status, f)
    message = "provider reported an error"
    code = None
    if f is not None:
        message = f.message or message
        if f.code is not None:
            # A provider may echo the key in any field, the code included.
            code = redact(f.code, secret)
            if f.code not in message:
                message = f"{f.code}: {message}"
    # Redact first, then cut: a cut must not leave a key's prefix behind.
    return cls(
        redact(message, secret)[:500],
        alias=alias,
        status=status,
        retry_after=retry_after,
        code=code,
    )


def error_from_payload(
    payload: Any,
    *,
    alias: str,
    status: int | None = None,
    retry_after: float | None = None,
    secret: str | None = None,
) -> e.ProviderError:
    """Classify an already-decoded error body (or an SSE error event)."""
    return _error(
        _fields(payload), alias=alias, status=status, retry_after=retry_after, secret=secret
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
    f = None
    if body:
        try:
            f = _fields(_decode_any(body))
        except msgspec.DecodeError:
            f = None
    if f is not None:
        return _error(f, alias=alias, status=status, retry_after=retry_after, secret=secret)
    cls = _pick(status, None)
    if 300 <= status < 400:
        where = redact_url(headers.get("location", "?"), secret)
        message = f"redirect to {where} not followed (check base_url)"
    else:
        kind = "an HTML page" if body.lstrip()[:1] == b"<" else f"{len(body)} bytes"
        message = f"HTTP {status} with {kind} instead of an error object"
    return cls(message, alias=alias, status=status, retry_after=retry_after)
