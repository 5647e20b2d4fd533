"""Status and body map onto the error tree; every class has its verdict."""

from __future__ import annotations

import json

import pytest

import fallover as f
from fallover._classify import error_from_http, error_from_payload, verdict


def classify(status: int, body: object, headers: dict[str, str] | None = None) -> f.ProviderError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return error_from_http(status, headers or {}, raw, alias="p/m")


def openai(type_: str, code: str | None = None, message: str = "m") -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def anthropic(type_: str, message: str = "m") -> dict[str, object]:
    return {"type": "error", "error": {"type": type_, "message": message}}


CASES = [
    # OpenAI, https://platform.openai.com/docs/guides/error-codes
    (429, openai("requests", "rate_limit_exceeded"), f.RateLimited),
    (
        429,
        openai(
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        f.QuotaExhausted,
    ),
    (
        400,
        openai(
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens.",
        ),
        f.ContextTooLong,
    ),
    (400, openai("invalid_request_error", "content_policy_violation"), f.ContentFiltered),
    (400, openai("invalid_request_error", None, "'messages' is a required property"), f.BadRequest),
    (
        401,
        openai("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
        f.AuthFailed,
    ),
    (404, openai("invalid_request_error", "model_not_found"), f.ModelNotFound),
    (500, openai("server_error"), f.ServerFailed),
    (503, openai("server_error", None, "The engine is currently overloaded"), f.ServerFailed),
    # Anthropic, https://docs.anthropic.com/en/api/errors
    (400, anthropic("invalid_request_error"), f.BadRequest),
    (401, anthropic("authentication_error"), f.AuthFailed),
    (403, anthropic("permission_error"), f.AuthFailed),
    (404, anthropic("not_found_error"), f.ModelNotFound),
    (413, anthropic("request_too_large"), f.ContextTooLong),
    (
        400,
        anthropic("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum"),
        f.ContextTooLong,
    ),
    (429, anthropic("rate_limit_error"), f.RateLimited),
    (500, anthropic("api_error"), f.ServerFailed),
    (529, anthropic("overloaded_error"), f.ServerFailed),
    (
        400,
        anthropic(
            "invalid_request_error", "Your credit balance is too low to access the Anthropic API."
        ),
        f.QuotaExhausted,
    ),
    # Gemini, https://ai.google.dev/gemini-api/docs/troubleshooting
    (
        429,
        {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted",
                "status": "RESOURCE_EXHAUSTED",
            }
        },
        f.RateLimited,
    ),
    (
        503,
        [{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}],
        f.ServerFailed,
    ),
    (
        400,
        {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}},
        f.BadRequest,
    ),
    (
        403,
        {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}},
        f.AuthFailed,
    ),
    # DeepSeek, https://api-docs.deepseek.com/quick_start/error_codes
    (
        402,
        {
            "error": {
                "message": "Insufficient Balance",
                "type": "unknown_error",
                "code": "invalid_request_error",
            }
        },
        f.QuotaExhausted,
    ),
    (
        422,
        {"error": {"message": "Invalid Parameters", "type": "invalid_request_error"}},
        f.BadRequest,
    ),
    (503, {"error": {"message": "Server Overloaded", "type": "unknown_error"}}, f.ServerFailed),
    # DashScope (compatible mode), https://help.aliyun.com/zh/model-studio/error-code
    (
        429,
        {
            "error": {
                "code": "Throttling.RateQuota",
                "message": "Requests rate limit exceeded",
                "type": "Throttling.RateQuota",
            }
        },
        f.RateLimited,
    ),
    (
        400,
        {
            "error": {
                "code": "Arrearage",
                "message": "Access denied, please make sure your account is in good standing.",
                "type": "Arrearage",
            }
        },
        f.QuotaExhausted,
    ),
    (
        400,
        {
            "error": {
                "code": "data_inspection_failed",
                "message": "Input data may contain inappropriate content.",
                "type": "data_inspection_failed",
            }
        },
        f.ContentFiltered,
    ),
    # Moonshot, https://platform.moonshot.cn/docs/api/chat
    (
        429,
        {"error": {"message": "engine overloaded", "type": "engine_overloaded_error"}},
        f.RateLimited,
    ),
    (
        429,
        {"error": {"message": "quota exceeded", "type": "exceeded_current_quota_error"}},
        f.QuotaExhausted,
    ),
    (
        400,
        {
            "error": {
                "message": "Invalid request: Your request exceeded model token limit: 8192",
                "type": "invalid_request_error",
            }
        },
        f.ContextTooLong,
    ),
    # Zhipu, https://docs.bigmodel.cn/cn/faq/api-code
    (429, {"error": {"code": "1113", "message": "您的账户已欠费"}}, f.QuotaExhausted),
    (429, {"error": {"code": "1302", "message": "您当前使用该API的并发数过高"}}, f.RateLimited),
    (
        400,
        {"error": {"code": "1301", "message": "系统检测到输入或生成内容可能包含不安全或敏感内容"}},
        f.ContentFiltered,
    ),
    (400, {"error": {"code": "1261", "message": "Prompt 超长"}}, f.ContextTooLong),
    # Volcengine Ark, https://www.volcengine.com/docs/82379/1299023
    (
        429,
        {
            "error": {
                "code": "RateLimitExceeded.EndpointRPMExceeded",
                "message": "rpm",
                "type": "TooManyRequests",
            }
        },
        f.RateLimited,
    ),
    (
        429,
        {"error": {"code": "ServerOverloaded", "message": "busy", "type": "TooManyRequests"}},
        f.RateLimited,
    ),
    (
        403,
        {"error": {"code": "AccountOverdueError", "message": "overdue", "type": "Forbidden"}},
        f.QuotaExhausted,
    ),
    (
        400,
        {"error": {"code": "SensitiveContentDetected", "message": "x", "type": "BadRequest"}},
        f.ContentFiltered,
    ),
    # OpenRouter, https://openrouter.ai/docs/api-reference/errors
    (402, {"error": {"code": 402, "message": "Insufficient credits"}}, f.QuotaExhausted),
    (429, {"error": {"code": 429, "message": "Rate limited"}}, f.RateLimited),
    # Status alone
    (409, b"", f.RateLimited),
    (502, b"<html><body>Bad Gateway</body></html>", f.ServerFailed),
    (429, b"<html>slow down</html>", f.RateLimited),
    (418, b"teapot", f.BadRequest),
    (307, b"", f.MalformedResponse),
]


@pytest.mark.parametrize(("status", "body", "cls"), CASES)
def test_status_and_body(status: int, body: object, cls: type[f.ProviderError]) -> None:
    """Each documented provider error lands on its class, with alias and status."""
    err = classify(status, body)
    assert type(err) is cls, (err, err.code)
    assert err.alias == "p/m"
    assert err.status == status
    assert "p/m" in str(err)


def test_retry_after_is_read_with_the_error() -> None:
    """Retry-After travels on the error for the router's park."""
    err = classify(429, openai("requests", "rate_limit_exceeded"), {"retry-after": "7"})
    assert err.retry_after == 7.0


def test_html_page_message_says_so() -> None:
    """An HTML page is named as such in the message."""
    err = classify(503, b"<!doctype html><title>oops</title>")
    assert "HTML page" in str(err)


def test_anthropic_error_event_under_200() -> None:
    """An SSE error event's payload classifies like a status would."""
    err = error_from_payload(anthropic("overloaded_error", "Overloaded"), alias="a/b")
    assert isinstance(err, f.ServerFailed)
    assert err.code == "overloaded_error"


def test_keys_in_provider_messages_are_redacted() -> None:
    """A provider echoing a key (or our exact key) never gets it into our message."""
    body = openai(
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-abcdef1234567890. You can find your key...",
    )
    err = error_from_http(
        401, {}, json.dumps(body).encode(), alias="p/m", secret="sk-abcdef1234567890"
    )
    assert "abcdef1234567890" not in str(err)
    assert "abcdef1234567890" not in repr(err)


V = {
    f.BadRequest: ("raise", "none", False),
    f.ContentFiltered: ("raise", "none", False),
    f.ContextTooLong: ("larger_context", "none", False),
    f.AuthFailed: ("fall_over", "long", False),
    f.ModelNotFound: ("fall_over", "long", False),
    f.QuotaExhausted: ("fall_over", "long", False),
    f.RateLimited: ("fall_over", "backoff", True),
    f.ServerFailed: ("fall_over", "backoff", True),
    f.ConnectionFailed: ("fall_over", "backoff", True),
    f.MalformedResponse: ("fall_over", "backoff", True),
    f.ProviderTimeout: ("fall_over", "backoff", False),
}


@pytest.mark.parametrize(("cls", "expected"), list(V.items()))
def test_verdict_table(cls: type[f.ProviderError], expected: tuple[str, str, bool]) -> None:
    """The verdict table of DESIGN section 4, row by row."""
    assert tuple(verdict(cls("x"))) == expected


def test_unknown_exceptions_fall_over_and_park() -> None:
    """Anything unknown an adapter raises falls over and parks."""
    assert tuple(verdict(RuntimeError("bug"))) == ("fall_over", "backoff", False)


def test_stream_interrupted_is_judged_by_its_cause() -> None:
    """A StreamInterrupted takes the verdict of the error that cut it."""
    exc = f.StreamInterrupted("x", partial_text="ab", error=f.RateLimited("r"))
    assert verdict(exc).retry is True


def test_a_redirect_names_where_without_credentials() -> None:
    """A 3xx names its Location, with credentials and key-like query values hidden."""
    err = error_from_http(307, {"location": "https://u:pw@evil.test/v1?key=abc"}, b"", alias="p/m")
    assert isinstance(err, f.MalformedResponse)
    assert "evil.test" in str(err) and "pw@" not in str(err) and "abc" not in str(err)


def test_the_same_error_twice_is_classified_alike() -> None:
    """Repeated errors (the cached decision) keep their class, code and message."""
    body = openai("requests", "rate_limit_exceeded", "slow down")
    first, second = classify(429, body), classify(429, body)
    assert type(first) is type(second) is f.RateLimited
    assert (first.code, first.message) == (second.code, second.message)
    assert type(classify(503, body)) is f.RateLimited
