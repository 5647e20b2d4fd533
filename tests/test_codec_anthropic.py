"""The Anthropic codec: bytes in, neutral values out."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import RawMessageStreamEvent
from pydantic import TypeAdapter

import fallover as f
from fallover._codecs._anthropic import AnthropicCodec
from fallover._codecs._base import SSEEvent, UpstreamError

from .codec_sdk import valid_body

_EVENT = TypeAdapter(RawMessageStreamEvent)


def codec(**kw: Any) -> AnthropicCodec:
    return AnthropicCodec(model="m", alias="anthropic/m", **kw)


def ask(text: str = "x", **kw: Any) -> f.ChatRequest:
    return f.ChatRequest(messages=[f.Message(role="user", content=text)], **kw)


def answer(**over: Any) -> bytes:
    """A Messages answer, as the SDK's own model accepts it."""
    body: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m-1",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    body.update(over)
    SDKMessage.model_validate(body)
    return msgspec.json.encode(body)


def event(body: dict[str, Any], *, sdk: bool = True) -> SSEEvent:
    """A stream event, as the SDK's own types accept it (unless ``sdk=False``)."""
    if sdk:
        _EVENT.validate_python(body)
    return SSEEvent(body["type"], msgspec.json.encode(body).decode())


MESSAGE_START = event(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m-1",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 1},
        },
    }
)
BLOCK_START = event(
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
)
BLOCK_STOP = event({"type": "content_block_stop", "index": 0})
PING = event({"type": "ping"}, sdk=False)
MESSAGE_STOP = event({"type": "message_stop"})


def text(t: str) -> SSEEvent:
    return event(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
    )


def message_delta(stop: str = "end_turn", output_tokens: int = 3) -> SSEEvent:
    return event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
    )


def feed_all(events: list[SSEEvent]) -> tuple[list[f.StreamEvent], Any]:
    dec = codec().stream_decoder()
    out: list[f.StreamEvent] = []
    for ev in events:
        out.extend(dec.feed(ev))
    return out, dec


def test_plain_request_body() -> None:
    """System messages go top-level; max_tokens is always sent."""
    req = f.ChatRequest(
        messages=[
            f.Message(role="system", content="be brief"),
            f.Message(role="user", content="x"),
        ],
        stop="END",
    )
    assert valid_body("anthropic", codec().encode(req, stream=False)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 4096,
        "system": "be brief",
        "stop_sequences": ["END"],
    }


def test_temperature_is_sent() -> None:
    """temperature is sent under anthropic-version 2023-06-01 (the SDK's own 2026 types lack it)."""
    body = msgspec.json.decode(codec().encode(ask(temperature=0.2), stream=False))
    assert body["temperature"] == 0.2


def test_stream_request() -> None:
    """A stream request sets stream."""
    body = valid_body("anthropic", codec().encode(ask(max_tokens=9), stream=True), stream=True)
    assert body["stream"] is True
    assert body["max_tokens"] == 9


def test_extra_body_is_merged_and_wins() -> None:
    """extra_body keys are added to every body and override ours."""
    body = msgspec.json.decode(
        codec(extra_body={"max_tokens": 7, "x": 1}).encode(ask(), stream=False)
    )
    assert body["max_tokens"] == 7
    assert body["x"] == 1


def test_auth_headers() -> None:
    """The key goes in x-api-key, with the API version."""
    assert codec().auth_headers("k") == {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    assert codec().auth_headers(None) == {"anthropic-version": "2023-06-01"}


def test_path() -> None:
    """Requests go to /v1/messages under the base URL."""
    assert codec().path() == "/v1/messages"


def test_decode_answer() -> None:
    """An answer becomes its text blocks joined, the model, usage and a finish reason."""
    body = answer(content=[{"type": "text", "text": "h"}, {"type": "text", "text": "i"}])
    assert codec().decode(body, status=200) == f.ChatResponse(
        text="hi",
        model="m-1",
        alias="anthropic/m",
        usage=f.Usage(input_tokens=5, output_tokens=1),
        finish_reason="stop",
    )


@pytest.mark.parametrize(
    ("raw", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", None),
    ],
)
def test_finish_reason_is_normalised(raw: str, finish: str | None) -> None:
    """Anthropic stop reasons map onto the neutral finish reasons."""
    assert codec().decode(answer(stop_reason=raw), status=200).finish_reason == finish


def test_error_object_under_200_is_upstream_error() -> None:
    """An error object where an answer should be is handed back with its status."""
    payload = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    with pytest.raises(UpstreamError) as info:
        codec().decode(msgspec.json.encode(payload), status=200)
    assert info.value.payload == payload
    assert info.value.status == 200


def test_wrong_shape_is_a_validation_error() -> None:
    """JSON without content is a msgspec validation error (the endpoint calls it malformed)."""
    with pytest.raises(msgspec.ValidationError, match="content"):
        codec().decode(b'{"answer": 42}', status=200)


def test_stream_text_usage_and_stop() -> None:
    """Text deltas become TextDelta; message_stop completes with usage and finish."""
    out, dec = feed_all([MESSAGE_START, BLOCK_START, text("Hel"), text("lo"), BLOCK_STOP])
    assert out == [f.TextDelta(text="Hel"), f.TextDelta(text="lo")]
    dec.feed(message_delta("max_tokens", 4))
    assert not dec.done
    assert dec.result() is None
    dec.feed(MESSAGE_STOP)
    assert dec.done
    assert dec.result() == f.ChatResponse(
        text="Hello",
        model="m-1",
        alias="anthropic/m",
        usage=f.Usage(input_tokens=7, output_tokens=4),
        finish_reason="length",
    )


def test_missing_message_stop_is_incomplete() -> None:
    """Without message_stop there is no answer, even after the stop reason."""
    _, dec = feed_all([MESSAGE_START, text("a"), message_delta()])
    assert not dec.finishing
    assert dec.result() is None


def test_ping_is_not_progress() -> None:
    """A ping is a keep-alive; a real event is progress."""
    dec = codec().stream_decoder()
    dec.feed(MESSAGE_START)
    assert dec.progressed
    dec.feed(PING)
    assert not dec.progressed


def test_error_event_raises_upstream_error() -> None:
    """event: error under a 200 raises UpstreamError with the error object."""
    ev = event(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, sdk=False
    )
    with pytest.raises(UpstreamError) as info:
        codec().stream_decoder().feed(ev)
    assert info.value.payload == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_unknown_event_type_is_ignored() -> None:
    """An event type added after this codec carries nothing and breaks nothing."""
    out, dec = feed_all([MESSAGE_START, SSEEvent("future", '{"type": "future_event", "x": 1}')])
    assert out == []
    assert dec.progressed


def test_event_without_type_uses_the_event_name() -> None:
    """Data without its "type" is read by the SSE event name."""
    _, dec = feed_all([SSEEvent("message_stop", "{}")])
    assert dec.done


def test_wrong_event_shape_is_a_validation_error() -> None:
    """A known event of the wrong shape is a msgspec validation error."""
    with pytest.raises(msgspec.ValidationError):
        codec().stream_decoder().feed(SSEEvent("message", '{"type": "content_block_delta"}'))


def test_malformed_event() -> None:
    """An event that is not JSON is a msgspec decode error."""
    with pytest.raises(msgspec.DecodeError):
        codec().stream_decoder().feed(SSEEvent("message", "{not json"))
