"""The gateway's server-side codecs, checked against the official SDKs' own types and helpers."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

import fallover
from fallover._codecs import _anthropic_server as anthropic_server
from fallover._codecs import _openai_server as openai_server

ANSWER = fallover.ChatResponse(
    text="It is sunny.",
    model="upstream-model",
    alias="p/upstream-model",
    finish_reason="tool_calls",
    reasoning="Check the weather first.",
    usage=fallover.Usage(input_tokens=10, output_tokens=5, cache_read_tokens=2, reasoning_tokens=3),
    tool_calls=(fallover.ToolCall(id="call_1", name="weather", arguments='{"city": "Oslo"}'),),
)

EVENTS: list[fallover.StreamEvent] = [
    fallover.ReasoningDelta(text="Check the "),
    fallover.ReasoningDelta(text="weather first."),
    fallover.TextDelta(text="It is "),
    fallover.TextDelta(text="sunny."),
    fallover.ToolCallDelta(index=0, id="call_1", name="weather"),
    fallover.ToolCallDelta(index=0, arguments='{"city": '),
    fallover.ToolCallDelta(index=0, arguments='"Oslo"}'),
    fallover.Completed(response=ANSWER),
]


def _sse_data(raw: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        events.append((name, data))
    return events


def test_openai_response_validates_as_a_chat_completion() -> None:
    """A neutral answer encodes as a ChatCompletion the OpenAI SDK validates, usage included."""
    body = openai_server.encode_response(ANSWER, id="chatcmpl-1", created=1)
    completion = ChatCompletion.model_validate_json(body)
    message = completion.choices[0].message
    assert message.content == "It is sunny."
    assert message.tool_calls is not None and message.tool_calls[0].function.name == "weather"  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 2  # type: ignore[union-attr]
    assert completion.usage.completion_tokens_details.reasoning_tokens == 3  # type: ignore[union-attr]
    assert json.loads(body)["choices"][0]["message"]["reasoning_content"] == ANSWER.reasoning


def test_openai_stream_assembles_in_the_sdk_stream_state() -> None:
    """Stream events encode as chunks the SDK's stream state assembles into the same answer."""
    encoder = openai_server.StreamEncoder(
        id="chatcmpl-1", created=1, model="pool", include_usage=True
    )
    raw = b"".join(encoder.event(e) for e in EVENTS)
    events = _sse_data(raw)
    assert events[-1] == (None, "[DONE]")
    state: ChatCompletionStreamState = ChatCompletionStreamState()
    for _, data in events[:-1]:
        state.handle_chunk(ChatCompletionChunk.model_validate_json(data))
    final = state.get_final_completion()
    message = final.choices[0].message
    assert message.content == "It is sunny."
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city": "Oslo"}'
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.total_tokens == 15
    reasoning = "".join(
        json.loads(d)["choices"][0]["delta"].get("reasoning_content", "")
        for _, d in events[:-1]
        if json.loads(d)["choices"]
    )
    assert reasoning == "Check the weather first."


def test_anthropic_response_validates_as_a_message() -> None:
    """A neutral answer encodes as a Message the Anthropic SDK validates: thinking, text, tool_use."""
    body = anthropic_server.encode_response(ANSWER, id="msg_1")
    message = AnthropicMessage.model_validate_json(body)
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[2].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 2


def test_anthropic_stream_accumulates_in_the_sdk() -> None:
    """Stream events encode as Messages events the SDK accumulates into the same answer."""
    encoder = anthropic_server.StreamEncoder(id="msg_1", model="pool")
    raw = b"".join(encoder.event(e) for e in EVENTS)
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    names = []
    for name, data in _sse_data(raw):
        event = adapter.validate_json(data)
        assert event.type == name
        names.append(name)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert [b.type for b in snapshot.content] == ["thinking", "text", "tool_use"]
    assert snapshot.content[0].thinking == "Check the weather first."
    assert snapshot.content[1].text == "It is sunny."
    assert snapshot.content[2].input == {"city": "Oslo"}
    assert snapshot.stop_reason == "tool_use"
    assert snapshot.usage.output_tokens == 5 and snapshot.usage.input_tokens == 10


def test_anthropic_stream_refuses_a_tool_call_resumed_after_another_block() -> None:
    """Fragments of a closed tool call cannot be relayed: the encoder says so instead of lying."""
    encoder = anthropic_server.StreamEncoder(id="msg_1", model="pool")
    encoder.event(fallover.ToolCallDelta(index=0, id="a", name="x"))
    encoder.event(fallover.ToolCallDelta(index=1, id="b", name="y"))
    with pytest.raises(ValueError, match="tool call 0"):
        encoder.event(fallover.ToolCallDelta(index=0, arguments="{}"))


def test_openai_request_decodes_every_field() -> None:
    """An OpenAI request's images, schema output, reasoning, stop and limits reach the neutral model."""
    body = {
        "model": "pool",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "minimal",
        "max_completion_tokens": 100,
        "max_tokens": 5,
        "stop": ["END"],
        "seed": 7,
        "top_p": 0.5,
        "user": "u1",
        "parallel_tool_calls": False,
        "logprobs": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    incoming = openai_server.decode_request(json.dumps(body).encode())
    r = incoming.request
    assert incoming.stream and incoming.include_usage
    assert r.messages[0] == fallover.Message(role="system", content="be brief")
    parts = r.messages[1].content
    assert parts[1] == fallover.Image(data=b"\x89PNG", media_type="image/png")  # type: ignore[index]
    assert parts[2] == fallover.Image(url="https://example.com/a.png")  # type: ignore[index]
    assert r.response_format == fallover.JsonSchema(
        name="answer", schema={"type": "object"}, strict=True
    )
    assert r.reasoning == fallover.Reasoning(effort="low")
    assert (r.max_tokens, r.stop, r.seed, r.top_p, r.user) == (100, ["END"], 7, 0.5, "u1")
    assert r.parallel_tool_calls is False
    assert r.needs == {"vision", "json_schema", "reasoning"}


def test_anthropic_request_decodes_every_field() -> None:
    """An Anthropic request's system, images, thinking, tool choice and stops reach the neutral model."""
    body = {
        "model": "pool",
        "max_tokens": 1000,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look", "cache_control": {"type": "ephemeral"}},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "t1", "name": "look", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "bad", "is_error": True}
                ],
            },
        ],
        "tools": [{"name": "look", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "look", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u1"},
        "top_k": 5,
    }
    r = anthropic_server.decode_request(json.dumps(body).encode()).request
    assert [m.role for m in r.messages] == ["system", "user", "assistant", "tool"]
    assert r.messages[1].content[1] == fallover.Image(data=b"\x89PNG", media_type="image/png")  # type: ignore[index]
    assistant = r.messages[2]
    assert (assistant.text, assistant.reasoning) == ("Calling.", "hmm")
    assert assistant.tool_calls == (fallover.ToolCall(id="t1", name="look", arguments='{"x": 1}'),)
    assert r.messages[3] == fallover.Message(
        role="tool", content="[tool error] bad", tool_call_id="t1"
    )
    assert (r.tool_choice, r.parallel_tool_calls) == ("look", False)
    assert r.reasoning == fallover.Reasoning(effort="low", budget_tokens=2000)
    assert (r.stop, r.user, r.max_tokens) == (["END"], "u1", 1000)


@pytest.mark.parametrize(
    ("status", "openai_type", "anthropic_type"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "authentication_error"),
        (404, "not_found_error", "not_found_error"),
        (413, "invalid_request_error", "request_too_large"),
        (429, "rate_limit_exceeded", "rate_limit_error"),
        (502, "server_error", "api_error"),
        (503, "server_error", "overloaded_error"),
        (504, "timeout", "timeout_error"),
    ],
)
def test_errors_in_each_protocols_shape(status: int, openai_type: str, anthropic_type: str) -> None:
    """Each status is written as the protocol's own error object and type."""
    o = json.loads(openai_server.encode_error(status, "why", code="c"))
    a = json.loads(anthropic_server.encode_error(status, "why"))
    assert o == {"error": {"message": "why", "type": openai_type, "param": None, "code": "c"}}
    assert a == {"type": "error", "error": {"type": anthropic_type, "message": "why"}}


SIGNED = msgspec.structs.replace(
    ANSWER,
    provider_state=fallover.ProviderState(
        protocol="anthropic",
        provider="anthropic",
        data={"blocks": [{"type": "thinking", "thinking": "Check...", "signature": "sig=="}]},
    ),
)


def _replayed(content: list[Any]) -> fallover.Message:
    """The assistant turn a client sends back with ``content``, as the gateway decodes it."""
    body = {
        "model": "pool",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sun"}],
            },
        ],
    }
    return anthropic_server.decode_request(json.dumps(body).encode()).request.messages[1]


def test_provider_state_rides_through_an_anthropic_client() -> None:
    """A member's provider state comes back unchanged when the client replays the answer."""
    message = AnthropicMessage.model_validate_json(
        anthropic_server.encode_response(SIGNED, id="msg_1")
    )
    assert message.content[-1].type == "redacted_thinking"
    replayed = _replayed([b.model_dump() for b in message.content])
    assert replayed.provider_state == SIGNED.provider_state
    assert replayed.tool_calls == SIGNED.tool_calls


def test_provider_state_rides_through_an_anthropic_stream() -> None:
    """A stream ends with the state block; the SDK's accumulated message hands it back."""
    encoder = anthropic_server.StreamEncoder(id="msg_1", model="pool")
    events = [*EVENTS[:-1], fallover.Completed(response=SIGNED)]
    raw = b"".join(encoder.event(e) for e in events)
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for _, data in _sse_data(raw):
        event = adapter.validate_json(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    replayed = _replayed([b.model_dump() for b in snapshot.content])
    assert replayed.provider_state == SIGNED.provider_state


def test_a_forged_state_block_is_a_400_naming_it() -> None:
    """A state block the gateway did not write is refused, naming where it is."""
    with pytest.raises(ValueError, match=r"messages\[1\]\.content\[0\]\.data"):
        _replayed([{"type": "redacted_thinking", "data": "fallover-state:@@@"}])
