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


def test_sampling_is_sent() -> None:
    """temperature and top_p are sent: anthropic-version 2023-06-01 has them (SDK 2.x types do not)."""
    req = ask(temperature=0.2, top_p=0.9)
    body = valid_body(
        "anthropic", codec().encode(req, stream=False), beyond=("temperature", "top_p")
    )
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)


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


# -- whole requests ------------------------------------------------------------------

READ = f.Tool(
    name="read_file",
    description="Read a file",
    parameters={
        "type": "object",
        "properties": {"path": {"type": "string"}, "lines": {"type": "integer"}},
        "required": ["path"],
    },
)
GREP = f.Tool(name="grep", parameters={"type": "object", "properties": {"q": {"type": "string"}}})
PNG = b"\x89PNG\r\n\x1a\nfake"


def agent_history() -> list[f.Message]:
    """A tool loop as an OpenAI-protocol member answered it: two parallel calls, their results."""
    return [
        f.Message(role="system", content="You review code."),
        f.Message(role="user", content="Review a.py"),
        f.Message(
            role="assistant",
            content="Let me look.",
            tool_calls=[
                f.ToolCall(id="call_1", name="read_file", arguments='{"path": "a.py"}'),
                f.ToolCall(id="call.2", name="grep", arguments='{"q": "TODO"}'),
            ],
        ),
        f.Message(role="tool", tool_call_id="call_1", content="print(1)"),
        f.Message(role="tool", tool_call_id="call.2", content="no match"),
        f.Message(role="user", content="And b.py?"),
    ]


def test_tool_turns_and_merged_results() -> None:
    """Tool calls become tool_use blocks; consecutive results one user turn of tool_result blocks."""
    req = f.ChatRequest(messages=agent_history(), tools=[READ, GREP])
    body = valid_body("anthropic", codec().encode(req, stream=False))
    assert body["system"] == "You review code."
    assert body["messages"] == [
        {"role": "user", "content": "Review a.py"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "read_file",
                    "input": {"path": "a.py"},
                },
                {"type": "tool_use", "id": "call_2", "name": "grep", "input": {"q": "TODO"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "print(1)"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "no match"},
            ],
        },
        {"role": "user", "content": "And b.py?"},
    ]


def test_system_only_request_is_not_empty() -> None:
    """A request of only system text sends it as the user turn, never messages: []."""
    req = f.ChatRequest(messages=[f.Message(role="system", content="Say hi")])
    body = valid_body("anthropic", codec().encode(req, stream=False))
    assert body["messages"] == [{"role": "user", "content": "Say hi"}]
    assert "system" not in body


def test_images_as_data_and_url() -> None:
    """Image parts become image blocks: base64 for bytes, a URL source otherwise."""
    msg = f.Message(
        role="user",
        content=[
            f.Text(text="What is this?"),
            f.Image(data=PNG, media_type="image/png"),
            f.Image(url="https://x.test/a.jpg"),
        ],
    )
    body = valid_body("anthropic", codec().encode(f.ChatRequest(messages=[msg]), stream=False))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgpmYWtl"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
    ]


def test_image_type_anthropic_cannot_read_is_unfit() -> None:
    """An image in a format the API does not take makes the member unfit."""
    msg = f.Message(role="user", content=[f.Image(data=b"x", media_type="image/bmp")])
    assert codec().unfit(f.ChatRequest(messages=[msg])) == (
        "messages[0]: Anthropic takes no image/bmp images"
    )


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, None),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ("grep", False, {"type": "tool", "name": "grep", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice(choice: str, parallel: bool | None, expected: Any) -> None:
    """Tools are written with input_schema; tool_choice and parallel calls map onto tool_choice."""
    req = ask(tools=[READ, GREP], tool_choice=choice, parallel_tool_calls=parallel)
    body = valid_body("anthropic", codec().encode(req, stream=False))
    assert body["tools"] == [
        {"name": "read_file", "input_schema": READ.parameters, "description": "Read a file"},
        {"name": "grep", "input_schema": GREP.parameters},
    ]
    assert body.get("tool_choice") == expected


def test_strict_tool_schema_is_closed() -> None:
    """A strict tool is sent strict, its objects closed, its required list as given."""
    tool = f.Tool(name="read_file", parameters=READ.parameters, strict=True)
    body = valid_body("anthropic", codec().encode(ask(tools=[tool]), stream=False))
    sent = body["tools"][0]
    assert sent["strict"] is True
    assert sent["input_schema"] == {**READ.parameters, "additionalProperties": False}


def test_json_schema_is_output_config_format() -> None:
    """JsonSchema becomes output_config.format of type json_schema, objects closed."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    body = valid_body(
        "anthropic",
        codec().encode(ask(response_format=f.JsonSchema(name="v", schema=schema)), stream=False),
    )
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": {**schema, "additionalProperties": False}}
    }


def test_user_is_metadata() -> None:
    """user becomes metadata.user_id."""
    body = valid_body("anthropic", codec().encode(ask(user="u-1"), stream=False))
    assert body["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (ask(temperature=1.5), "Anthropic takes temperature up to 1, got 1.5"),
        (ask(seed=1), "Anthropic has no seed"),
        (
            ask(response_format="json"),
            "Anthropic has no JSON mode without a schema (give a fallover.JsonSchema)",
        ),
    ],
)
def test_what_anthropic_cannot_take_is_unfit(request_: f.ChatRequest, reason: str) -> None:
    """Temperatures above 1, a seed and schema-less JSON mode make the member unfit."""
    assert codec().unfit(request_) == reason


def test_plain_request_is_fit() -> None:
    """A plain request, temperature 1 included, fits."""
    assert codec().unfit(ask(temperature=1.0)) is None


def test_tool_history_needs_tools() -> None:
    """A history with tool turns but no tools defined is unfit (the API refuses it)."""
    req = f.ChatRequest(messages=agent_history())
    assert codec().unfit(req) == "Anthropic needs the tools defined when the history has tool calls"


def test_tool_call_arguments_that_are_not_an_object_are_unfit() -> None:
    """A tool call whose arguments are not a JSON object cannot become tool_use input."""
    msgs = [
        f.Message(role="user", content="go"),
        f.Message(
            role="assistant", tool_calls=[f.ToolCall(id="c", name="grep", arguments="{oops")]
        ),
        f.Message(role="tool", tool_call_id="c", content="x"),
    ]
    req = f.ChatRequest(messages=msgs, tools=[GREP])
    assert codec().unfit(req) == "messages[1]: tool call 'c' has arguments that are not an object"
    with pytest.raises(ValueError, match="messages\\[1\\]"):
        codec().encode(req, stream=False)


# -- thinking --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "budget", "sent_max"),
    [
        (f.Reasoning(effort="low"), None, 2048, 2048 + 4096),
        (f.Reasoning(effort="high"), None, 16384, 16384 + 4096),
        (f.Reasoning(effort="high"), 10000, 5000, 10000),
        (f.Reasoning(effort="medium"), 1500, 1024, 1500),
        (f.Reasoning(budget_tokens=3000), None, 3000, 3000 + 4096),
        (f.Reasoning(budget_tokens=3000), 5000, 3000, 5000),
    ],
)
def test_thinking_budget(
    reasoning: f.Reasoning, max_tokens: int | None, budget: int, sent_max: int
) -> None:
    """Thinking gets the given budget, or one from the effort, always below max_tokens."""
    req = ask(reasoning=reasoning, max_tokens=max_tokens)
    assert codec().unfit(req) is None
    body = valid_body("anthropic", codec().encode(req, stream=False))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == sent_max


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (
            ask(reasoning=f.Reasoning(budget_tokens=4000), max_tokens=4000),
            "Anthropic thinking needs max_tokens above its budget (4000), got 4000",
        ),
        (
            ask(reasoning=f.Reasoning(), max_tokens=1024),
            "Anthropic thinking needs max_tokens above its budget (1024), got 1024",
        ),
        (
            ask(reasoning=f.Reasoning(budget_tokens=500)),
            "Anthropic thinking needs budget_tokens of at least 1024",
        ),
        (
            ask(reasoning=f.Reasoning(), temperature=0.2),
            "Anthropic thinking takes no temperature but 1, got 0.2",
        ),
        (
            ask(reasoning=f.Reasoning(), top_p=0.5),
            "Anthropic thinking takes top_p of 0.95 or more, got 0.5",
        ),
        (
            ask(reasoning=f.Reasoning(), tools=[GREP], tool_choice="required"),
            "Anthropic thinking takes tool_choice 'auto' or 'none' only",
        ),
    ],
)
def test_thinking_that_cannot_fit_is_unfit(req: f.ChatRequest, reason: str) -> None:
    """Thinking with a budget at or above max_tokens, or with what the API refuses beside it, is unfit."""
    assert codec().unfit(req) == reason


def test_thinking_is_left_out_of_a_tool_loop_begun_elsewhere() -> None:
    """A tool loop whose last call came from another provider goes on without thinking."""
    history = agent_history()[:-1]
    req = f.ChatRequest(
        messages=history, tools=[READ, GREP], reasoning=f.Reasoning(), temperature=0.3
    )
    assert codec().unfit(req) is None
    body = valid_body("anthropic", codec().encode(req, stream=False), beyond=("temperature",))
    assert "thinking" not in body


# -- decoding whole answers ------------------------------------------------------------

THINKING = {"type": "thinking", "thinking": "Let me see.", "signature": "sig-1"}
REDACTED = {"type": "redacted_thinking", "data": "opaque"}


def test_decode_thinking_tool_use_and_cache_usage() -> None:
    """Thinking becomes reasoning and signed state; tool_use a ToolCall; usage counts the cache."""
    body = answer(
        content=[
            THINKING,
            REDACTED,
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}},
        ],
        stop_reason="tool_use",
        usage={
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
        },
    )
    r = codec().decode(body, status=200)
    assert r.text == "Reading."
    assert r.reasoning == "Let me see."
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == (
        f.ToolCall(id="toolu_1", name="read_file", arguments='{"path":"a.py"}'),
    )
    assert r.usage == f.Usage(
        input_tokens=130, output_tokens=5, cache_read_tokens=100, cache_write_tokens=20
    )
    assert r.provider_state == f.ProviderState(
        protocol="anthropic", provider="anthropic", data={"blocks": [THINKING, REDACTED]}
    )


def test_refusal_is_a_content_filter_finish() -> None:
    """stop_reason refusal with no text is an empty answer that finished content_filter."""
    r = codec().decode(answer(content=[], stop_reason="refusal"), status=200)
    assert (r.text, r.finish_reason) == ("", "content_filter")


def thinking_turn() -> f.ChatResponse:
    body = answer(
        content=[
            THINKING,
            REDACTED,
            {"type": "tool_use", "id": "toolu_1", "name": "grep", "input": {"q": "x"}},
        ],
        stop_reason="tool_use",
    )
    return codec().decode(body, status=200)


def test_thinking_replayed_to_the_same_provider_keeps_its_signature() -> None:
    """The signed thinking blocks go back first in the turn, to the provider that wrote them."""
    turn = thinking_turn()
    req = f.ChatRequest(
        messages=[
            f.Message(role="user", content="q"),
            turn.message,
            f.Message(role="tool", tool_call_id="toolu_1", content="found"),
        ],
        tools=[GREP],
        reasoning=f.Reasoning(),
    )
    body = valid_body("anthropic", codec().encode(req, stream=False))
    assert body["messages"][1]["content"] == [
        THINKING,
        REDACTED,
        {"type": "tool_use", "id": "toolu_1", "name": "grep", "input": {"q": "x"}},
    ]
    assert body["thinking"]["type"] == "enabled"


def test_thinking_is_dropped_for_another_provider() -> None:
    """Another provider behind the Messages protocol gets the turn without the signed blocks."""
    turn = thinking_turn()
    req = f.ChatRequest(
        messages=[
            f.Message(role="user", content="q"),
            turn.message,
            f.Message(role="tool", tool_call_id="toolu_1", content="found"),
        ],
        tools=[GREP],
    )
    other = AnthropicCodec(model="m", alias="deepseek/m", provider="deepseek")
    body = valid_body("anthropic", other.encode(req, stream=False))
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "grep", "input": {"q": "x"}}
    ]


# -- streaming whole answers -----------------------------------------------------------


def block_start(index: int, block: dict[str, Any]) -> SSEEvent:
    return event({"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> SSEEvent:
    return event({"type": "content_block_delta", "index": index, "delta": delta})


def test_stream_thinking_text_and_parallel_tool_use() -> None:
    """Thinking, text and two tool calls stream as neutral deltas and assemble at message_stop."""
    start = event(
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
                "usage": {"input_tokens": 7, "output_tokens": 1, "cache_read_input_tokens": 3},
            },
        }
    )
    out, dec = feed_all(
        [
            start,
            block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
            block_delta(0, {"type": "thinking_delta", "thinking": "Hmm"}),
            block_delta(0, {"type": "signature_delta", "signature": "sig-9"}),
            event({"type": "content_block_stop", "index": 0}),
            block_start(1, {"type": "text", "text": ""}),
            block_delta(1, {"type": "text_delta", "text": "Two calls."}),
            block_start(2, {"type": "tool_use", "id": "toolu_a", "name": "read_file", "input": {}}),
            block_delta(2, {"type": "input_json_delta", "partial_json": '{"path":'}),
            block_delta(2, {"type": "input_json_delta", "partial_json": ' "a.py"}'}),
            block_start(3, {"type": "tool_use", "id": "toolu_b", "name": "grep", "input": {}}),
            block_delta(3, {"type": "input_json_delta", "partial_json": ""}),
            message_delta("tool_use", 12),
            MESSAGE_STOP,
        ]
    )
    assert out == [
        f.ReasoningDelta(text="Hmm"),
        f.TextDelta(text="Two calls."),
        f.ToolCallDelta(index=0, id="toolu_a", name="read_file"),
        f.ToolCallDelta(index=0, arguments='{"path":'),
        f.ToolCallDelta(index=0, arguments=' "a.py"}'),
        f.ToolCallDelta(index=1, id="toolu_b", name="grep"),
    ]
    r = dec.result()
    assert r.tool_calls == (
        f.ToolCall(id="toolu_a", name="read_file", arguments='{"path": "a.py"}'),
        f.ToolCall(id="toolu_b", name="grep", arguments="{}"),
    )
    assert (r.text, r.reasoning, r.finish_reason) == ("Two calls.", "Hmm", "tool_calls")
    assert r.usage == f.Usage(input_tokens=10, output_tokens=12, cache_read_tokens=3)
    assert r.provider_state == f.ProviderState(
        protocol="anthropic",
        provider="anthropic",
        data={"blocks": [{"type": "thinking", "thinking": "Hmm", "signature": "sig-9"}]},
    )


def test_stream_redacted_thinking_is_kept() -> None:
    """A redacted thinking block carries no text but is kept for replay."""
    _, dec = feed_all([MESSAGE_START, block_start(0, REDACTED), message_delta(), MESSAGE_STOP])
    assert dec.result().provider_state.data == {"blocks": [REDACTED]}
    assert dec.result().reasoning is None


# -- across protocols --------------------------------------------------------------------


def test_openai_turn_continues_on_anthropic_and_back() -> None:
    """An OpenAI-protocol tool turn encodes for Anthropic, and an Anthropic one for OpenAI."""
    from fallover._codecs._openai import OpenAICodec

    oa = OpenAICodec(model="gpt", alias="openai/gpt", provider="openai")
    oa_turn = oa.decode(
        msgspec.json.encode(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "call_1",
                                    "type": "function",
                                    "function": {"name": "grep", "arguments": '{"q":"a"}'},
                                }
                            ],
                        },
                    }
                ],
            }
        ),
        status=200,
    )
    history = [
        f.Message(role="user", content="q"),
        oa_turn.message,
        f.Message(role="tool", tool_call_id="call_1", content="hit"),
    ]
    body = valid_body(
        "anthropic", codec().encode(f.ChatRequest(messages=history, tools=[GREP]), stream=False)
    )
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "call_1", "name": "grep", "input": {"q": "a"}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "hit"}],
        },
    ]
    an_turn = thinking_turn()
    history = [
        f.Message(role="user", content="q"),
        an_turn.message,
        f.Message(role="tool", tool_call_id="toolu_1", content="found"),
    ]
    back = valid_body(
        "openai", oa.encode(f.ChatRequest(messages=history, tools=[GREP]), stream=False)
    )
    assert back["messages"][1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "type": "function",
                "id": "toolu_1",
                "function": {"name": "grep", "arguments": '{"q":"x"}'},
            }
        ],
    }


def test_empty_stop_list_is_not_sent() -> None:
    """stop=[] asks for nothing, so no stop_sequences field is sent."""
    assert "stop_sequences" not in valid_body(
        "anthropic", codec().encode(ask(stop=[]), stream=False)
    )
