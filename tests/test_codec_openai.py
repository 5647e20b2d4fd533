"""The OpenAI codec: bytes in, neutral values out."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import fallover as f
from fallover._codecs._base import SSEEvent, UpstreamError
from fallover._codecs._openai import OpenAICodec

from .codec_sdk import valid_body


def codec(**kw: Any) -> OpenAICodec:
    return OpenAICodec(model="m", alias="openai/m", **kw)


def ask(text: str = "x", **kw: Any) -> f.ChatRequest:
    return f.ChatRequest(messages=[f.Message(role="user", content=text)], **kw)


def answer(**over: Any) -> bytes:
    """A chat completion, as the SDK's own model accepts it."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    body.update(over)
    ChatCompletion.model_validate(body)
    return msgspec.json.encode(body)


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, *, sdk: bool = True, **over: Any
) -> SSEEvent:
    """A stream chunk, as the SDK's own model accepts it (unless ``sdk=False``: not OpenAI's)."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m-2024",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
    }
    body.update(over)
    if sdk:
        ChatCompletionChunk.model_validate(body)
    return SSEEvent("message", msgspec.json.encode(body).decode())


DONE = SSEEvent("message", "[DONE]")
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def feed_all(events: list[SSEEvent]) -> tuple[list[f.StreamEvent], Any]:
    dec = codec().stream_decoder()
    out: list[f.StreamEvent] = []
    for ev in events:
        out.extend(dec.feed(ev))
    return out, dec


def test_plain_request_body() -> None:
    """A plain request carries the member's model, the messages and the options."""
    req = f.ChatRequest(
        messages=[
            f.Message(role="system", content="be brief"),
            f.Message(role="user", content="x"),
        ],
        model="ignored",
        max_tokens=5,
        temperature=0.1,
        stop=["END"],
    )
    assert valid_body("openai", codec().encode(req, stream=False)) == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
        "max_tokens": 5,
        "temperature": 0.1,
        "stop": ["END"],
    }


def test_stream_request_asks_for_usage() -> None:
    """A stream request sets stream and asks for the usage chunk."""
    body = valid_body("openai", codec().encode(ask(), stream=True), stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_extra_body_is_merged_and_wins() -> None:
    """extra_body keys are added to every body and override ours."""
    c = codec(extra_body={"temperature": 0.5, "enable_thinking": False})
    body = msgspec.json.decode(c.encode(ask(temperature=0.1), stream=False))
    assert body["temperature"] == 0.5
    assert body["enable_thinking"] is False


def test_auth_header_only_with_a_key() -> None:
    """The key travels as a Bearer token; no key, no header."""
    assert codec().auth_headers("k") == {"Authorization": "Bearer k"}
    assert codec().auth_headers(None) == {}


def test_decode_answer() -> None:
    """A completion becomes text, the reported model, usage and a finish reason."""
    assert codec().decode(answer(), status=200) == f.ChatResponse(
        text="hi",
        model="m-2024",
        alias="openai/m",
        usage=f.Usage(input_tokens=3, output_tokens=1),
        finish_reason="stop",
    )


@pytest.mark.parametrize(
    ("raw", "finish"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),
    ],
)
def test_finish_reason_is_normalised(raw: str, finish: str) -> None:
    """OpenAI finish reasons map onto the neutral ones."""
    choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": raw}
    assert codec().decode(answer(choices=[choice]), status=200).finish_reason == finish


def test_error_object_under_200_is_upstream_error() -> None:
    """An error object where an answer should be is handed back with its status."""
    with pytest.raises(UpstreamError) as info:
        codec().decode(b'{"error": {"type": "rate_limit_exceeded", "message": "slow"}}', status=200)
    assert info.value.payload == {"error": {"type": "rate_limit_exceeded", "message": "slow"}}
    assert info.value.status == 200


def test_wrong_shape_is_a_validation_error() -> None:
    """JSON without choices is a msgspec validation error (the endpoint calls it malformed)."""
    with pytest.raises(msgspec.ValidationError, match="choices"):
        codec().decode(b'{"answer": 42}', status=200)
    with pytest.raises(msgspec.ValidationError, match="choices"):
        codec().decode(b'{"choices": []}', status=200)


def test_html_is_a_decode_error() -> None:
    """A body that is not JSON is a msgspec decode error."""
    with pytest.raises(msgspec.DecodeError):
        codec().decode(b"<html>busy</html>", status=200)


def test_stream_text_usage_and_done() -> None:
    """Deltas become TextDelta; the usage chunk after the finish ends the stream."""
    out, dec = feed_all(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, "stop"),
        ]
    )
    assert out == [f.TextDelta(text="Hel"), f.TextDelta(text="lo")]
    assert dec.finishing and not dec.done
    dec.feed(chunk(choices=[], usage=USAGE))
    assert dec.done
    assert dec.result() == f.ChatResponse(
        text="Hello",
        model="m-2024",
        alias="openai/m",
        usage=f.Usage(input_tokens=3, output_tokens=2),
        finish_reason="stop",
    )


def test_stream_done_after_finish() -> None:
    """[DONE] after a finish ends the stream with the answer."""
    _, dec = feed_all([chunk({"content": "a"}, "length"), DONE])
    assert dec.done
    assert dec.result().finish_reason == "length"


def test_done_without_finish_is_incomplete() -> None:
    """[DONE] before any finish_reason ends the stream with no answer."""
    _, dec = feed_all([chunk({"content": "a"}), DONE])
    assert dec.done
    assert dec.result() is None


def test_no_finish_no_result() -> None:
    """A body that ends mid-answer has no result."""
    _, dec = feed_all([chunk({"content": "a"})])
    assert not dec.finishing
    assert dec.result() is None


def test_empty_finish_reason_is_not_a_finish() -> None:
    """finish_reason "" on intermediate chunks (Ollama, SGLang, LocalAI) does not finish."""
    _, dec = feed_all(
        [chunk({"content": "a"}, "", sdk=False), chunk({"content": "b"}, "", sdk=False)]
    )
    assert not dec.finishing
    assert dec.result() is None
    dec.feed(chunk({}, "stop"))
    assert dec.result().text == "ab"


def test_every_chunk_is_progress() -> None:
    """Each chunk, even one without text, counts as progress."""
    dec = codec().stream_decoder()
    assert not dec.progressed
    dec.feed(chunk({"role": "assistant"}))
    assert dec.progressed


def test_error_event_and_error_chunk() -> None:
    """An error event, or a chunk holding an error object, raises UpstreamError."""
    dec = codec().stream_decoder()
    with pytest.raises(UpstreamError) as info:
        dec.feed(SSEEvent("error", '{"error": {"type": "server_error"}}'))
    assert info.value.payload == {"error": {"type": "server_error"}}
    with pytest.raises(UpstreamError) as info:
        dec.feed(SSEEvent("message", '{"error": {"code": "overloaded"}}'))
    assert info.value.payload == {"error": {"code": "overloaded"}}


def test_malformed_chunk() -> None:
    """A chunk that is not JSON is a msgspec decode error."""
    with pytest.raises(msgspec.DecodeError):
        codec().stream_decoder().feed(SSEEvent("message", "{not json"))
