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


def codec(provider: str = "openai", **kw: Any) -> OpenAICodec:
    return OpenAICodec(model="m", alias=f"{provider}/m", provider=provider, **kw)


def ask(text: str = "x", **kw: Any) -> f.ChatRequest:
    return f.ChatRequest(messages=[f.Message(role="user", content=text)], **kw)


def answer(*, sdk: bool = True, **over: Any) -> bytes:
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
    if sdk:
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


def feed_all(events: list[SSEEvent], provider: str = "openai") -> tuple[list[f.StreamEvent], Any]:
    dec = codec(provider).stream_decoder()
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
        "max_completion_tokens": 5,
        "temperature": 0.1,
        "stop": ["END"],
    }


def test_max_tokens_where_the_provider_documents_it() -> None:
    """OpenAI itself gets max_completion_tokens; providers documenting max_tokens get that."""
    assert (
        valid_body("openai", codec("deepseek").encode(ask(max_tokens=7), stream=False))[
            "max_tokens"
        ]
        == 7
    )
    body = valid_body("openai", codec("openai").encode(ask(max_tokens=7), stream=False))
    assert "max_tokens" not in body
    assert body["max_completion_tokens"] == 7


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
    """A tool loop: a question, two parallel calls, their results."""
    return [
        f.Message(role="system", content="You review code."),
        f.Message(role="user", content="Review a.py"),
        f.Message(
            role="assistant",
            content="Let me look.",
            tool_calls=[
                f.ToolCall(id="call_1", name="read_file", arguments='{"path": "a.py"}'),
                f.ToolCall(id="call_2", name="grep", arguments='{"q": "TODO"}'),
            ],
        ),
        f.Message(role="tool", tool_call_id="call_1", content="print(1)"),
        f.Message(role="tool", tool_call_id="call_2", content="no match"),
    ]


def test_roles_tool_calls_and_results() -> None:
    """Assistant tool calls and tool results are written as OpenAI messages."""
    req = f.ChatRequest(messages=agent_history(), tools=[READ, GREP])
    body = valid_body("openai", codec().encode(req, stream=False))
    assert body["messages"] == [
        {"role": "system", "content": "You review code."},
        {"role": "user", "content": "Review a.py"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "type": "function",
                    "id": "call_1",
                    "function": {"name": "read_file", "arguments": '{"path": "a.py"}'},
                },
                {
                    "type": "function",
                    "id": "call_2",
                    "function": {"name": "grep", "arguments": '{"q": "TODO"}'},
                },
            ],
        },
        {"role": "tool", "content": "print(1)", "tool_call_id": "call_1"},
        {"role": "tool", "content": "no match", "tool_call_id": "call_2"},
    ]


def test_assistant_turn_of_only_tool_calls_has_no_content() -> None:
    """A turn that is only tool calls sends no content field."""
    msgs = [
        f.Message(role="user", content="go"),
        f.Message(role="assistant", tool_calls=[f.ToolCall(id="c", name="grep")]),
        f.Message(role="tool", tool_call_id="c", content="x"),
    ]
    body = valid_body(
        "openai", codec().encode(f.ChatRequest(messages=msgs, tools=[GREP]), stream=False)
    )
    assert "content" not in body["messages"][1]


def test_images_as_data_and_url() -> None:
    """Image parts become image_url parts: a data URL for bytes, the URL as given otherwise."""
    msg = f.Message(
        role="user",
        content=[
            f.Text(text="What is this?"),
            f.Image(data=PNG, media_type="image/png"),
            f.Image(url="https://x.test/a.jpg"),
        ],
    )
    body = valid_body("openai", codec().encode(f.ChatRequest(messages=[msg]), stream=False))
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgpmYWtl"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
    ]


def test_tools_choice_and_parallel() -> None:
    """Tools, a named tool choice and parallel_tool_calls are written as OpenAI wants them."""
    req = ask(tools=[READ, GREP], tool_choice="grep", parallel_tool_calls=False)
    body = valid_body("openai", codec().encode(req, stream=False))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "read_file",
                "parameters": READ.parameters,
                "description": "Read a file",
            },
        },
        {"type": "function", "function": {"name": "grep", "parameters": GREP.parameters}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "grep"}}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice", ["none", "required"])
def test_tool_choice_words(choice: str) -> None:
    """tool_choice "none" and "required" are sent as they are; "auto" is the default, unsent."""
    body = valid_body("openai", codec().encode(ask(tools=[GREP], tool_choice=choice), stream=False))
    assert body["tool_choice"] == choice
    assert "tool_choice" not in msgspec.json.decode(codec().encode(ask(tools=[GREP]), stream=False))


def test_strict_tool_schema_is_normalised() -> None:
    """A strict tool's schema is closed and every property required, nested ones too."""
    tool = f.Tool(
        name="post",
        strict=True,
        parameters={
            "type": "object",
            "properties": {
                "line": {"type": "integer"},
                "where": {"type": "object", "properties": {"path": {"type": "string"}}},
                "tags": {"type": "array", "items": {"type": "object", "properties": {"t": {}}}},
            },
        },
    )
    body = valid_body("openai", codec().encode(ask(tools=[tool]), stream=False))
    fn = body["tools"][0]["function"]
    assert fn["strict"] is True
    params = fn["parameters"]
    assert params["additionalProperties"] is False
    assert params["required"] == ["line", "where", "tags"]
    assert params["properties"]["where"]["additionalProperties"] is False
    assert params["properties"]["where"]["required"] == ["path"]
    assert params["properties"]["tags"]["items"]["required"] == ["t"]
    assert "required" not in tool.parameters  # the caller's schema is left alone


def test_json_schema_response_format() -> None:
    """JsonSchema becomes response_format json_schema, normalised for strict mode."""
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    rf = f.JsonSchema(name="verdict", schema=schema, description="d")
    body = valid_body("openai", codec().encode(ask(response_format=rf), stream=False))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "schema": {
                "type": "object",
                "properties": {"ok": {"type": "boolean"}},
                "additionalProperties": False,
                "required": ["ok"],
            },
            "strict": True,
            "description": "d",
        },
    }


def test_json_mode() -> None:
    """response_format "json" becomes json_object."""
    body = valid_body(
        "openai", codec().encode(ask("json please", response_format="json"), stream=False)
    )
    assert body["response_format"] == {"type": "json_object"}


def test_sampling_seed_user_stop() -> None:
    """top_p, seed, user and stop are sent as the protocol's fields."""
    req = ask(top_p=0.5, seed=7, user="u-1", stop="END")
    body = valid_body("openai", codec().encode(req, stream=True), stream=True)
    assert (body["top_p"], body["seed"], body["user"], body["stop"]) == (0.5, 7, "u-1", ["END"])


def test_more_stop_sequences_than_openai_takes_is_unfit() -> None:
    """OpenAI takes 4 stop sequences: a fifth makes the member unfit; DeepSeek takes them."""
    req = ask(stop=["a", "b", "c", "d", "e"])
    assert codec().unfit(req) == "openai takes at most 4 stop sequences, got 5"
    assert codec().unfit(ask(stop=["a", "b", "c", "d"])) is None
    assert codec("deepseek").unfit(req) is None


def test_plain_request_is_fit() -> None:
    """A plain request fits every dialect."""
    for provider in ("openai", "deepseek", "zhipu", "gemini", "custom"):
        assert codec(provider).unfit(ask()) is None


@pytest.mark.parametrize(
    ("provider", "fields", "beyond"),
    [
        ("openai", {"reasoning_effort": "high"}, ()),
        ("gemini", {"reasoning_effort": "high"}, ()),
        ("ollama", {"reasoning_effort": "high"}, ()),
        ("custom", {"reasoning_effort": "high"}, ()),
        ("deepseek", {"reasoning_effort": "high", "thinking": {"type": "enabled"}}, ("thinking",)),
        ("ark", {"reasoning_effort": "high", "thinking": {"type": "enabled"}}, ("thinking",)),
        ("zhipu", {"thinking": {"type": "enabled"}}, ("thinking",)),
        ("moonshot", {"thinking": {"type": "enabled"}}, ("thinking",)),
        ("dashscope", {"enable_thinking": True}, ("enable_thinking",)),
        ("openrouter", {"reasoning": {"effort": "high"}}, ("reasoning",)),
        (
            "vllm",
            {"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": True}},
            ("chat_template_kwargs",),
        ),
    ],
)
def test_reasoning_switch_per_provider(
    provider: str, fields: dict[str, Any], beyond: tuple[str, ...]
) -> None:
    """Reasoning is asked for with each provider's documented switch."""
    req = ask(reasoning=f.Reasoning(effort="high"))
    body = valid_body("openai", codec(provider).encode(req, stream=False), beyond=beyond)
    added = {k: v for k, v in body.items() if k not in ("model", "messages")}
    assert added == fields


def test_reasoning_budget_where_the_provider_takes_one() -> None:
    """A token budget goes to the providers that take one (DashScope, OpenRouter)."""
    req = ask(reasoning=f.Reasoning(budget_tokens=2000))
    dash = msgspec.json.decode(codec("dashscope").encode(req, stream=False))
    assert (dash["enable_thinking"], dash["thinking_budget"]) == (True, 2000)
    router = msgspec.json.decode(codec("openrouter").encode(req, stream=False))
    assert router["reasoning"] == {"max_tokens": 2000}


def test_zhipu_takes_auto_tool_choice_only() -> None:
    """GLM takes tool_choice "auto" only: a forced choice is unfit, "none" sends no tools."""
    z = codec("zhipu")
    assert z.unfit(ask(tools=[GREP], tool_choice="required")) == (
        "zhipu takes tool_choice 'auto' only, got 'required'"
    )
    body = msgspec.json.decode(z.encode(ask(tools=[GREP], tool_choice="none"), stream=False))
    assert "tools" not in body
    assert "tool_choice" not in body


def test_reasoning_text_goes_back_where_the_provider_wants_it() -> None:
    """DeepSeek gets each assistant turn's reasoning back as reasoning_content; OpenAI does not."""
    msgs = [
        f.Message(role="user", content="q"),
        f.Message(
            role="assistant",
            reasoning="thought",
            tool_calls=[f.ToolCall(id="c", name="grep", arguments="{}")],
        ),
        f.Message(role="tool", tool_call_id="c", content="r"),
        f.Message(role="assistant", tool_calls=[f.ToolCall(id="d", name="grep", arguments="{}")]),
        f.Message(role="tool", tool_call_id="d", content="r"),
    ]
    req = f.ChatRequest(messages=msgs, tools=[GREP])
    deep = valid_body(
        "openai", codec("deepseek").encode(req, stream=False), beyond=("reasoning_content",)
    )
    assert deep["messages"][1]["reasoning_content"] == "thought"
    assert deep["messages"][3]["reasoning_content"] == ""
    plain = valid_body("openai", codec().encode(req, stream=False))
    assert "reasoning_content" not in plain["messages"][1]


# -- decoding whole answers ------------------------------------------------------------


def choice(message: dict[str, Any], finish: str | None = "stop") -> list[dict[str, Any]]:
    return [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}]


def test_decode_tool_calls() -> None:
    """Tool calls in an answer come back as ToolCalls, arguments as the model wrote them."""
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "read_file", "arguments": '{"path":"a"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "grep", "arguments": "{}"}},
    ]
    r = codec().decode(
        answer(choices=choice({"content": None, "tool_calls": calls}, "tool_calls")), status=200
    )
    assert r.text == ""
    assert r.finish_reason == "tool_calls"
    assert r.tool_calls == (
        f.ToolCall(id="call_1", name="read_file", arguments='{"path":"a"}'),
        f.ToolCall(id="call_2", name="grep", arguments="{}"),
    )
    assert r.message.tool_calls == r.tool_calls


def test_tool_calls_finished_with_stop_are_a_tool_call_finish() -> None:
    """A server that ends a tool-call turn with "stop" still reports finish tool_calls."""
    calls = [{"id": "c", "type": "function", "function": {"name": "grep", "arguments": "{}"}}]
    r = codec("gemini").decode(
        answer(choices=choice({"content": None, "tool_calls": calls})), status=200
    )
    assert r.finish_reason == "tool_calls"


def test_decode_refusal() -> None:
    """message.refusal comes back as refusal, with no text."""
    r = codec().decode(answer(choices=choice({"content": None, "refusal": "I can't."})), status=200)
    assert (r.text, r.refusal) == ("", "I can't.")


def test_content_filter_with_null_content() -> None:
    """A filtered answer with null content is an empty answer that finished content_filter."""
    r = codec().decode(answer(choices=choice({"content": None}, "content_filter")), status=200)
    assert (r.text, r.finish_reason) == ("", "content_filter")


def test_decode_reasoning_content_and_reasoning() -> None:
    """reasoning_content (DeepSeek, Qwen) and reasoning (OpenRouter, Ollama) come back as reasoning."""
    body = answer(choices=choice({"content": "4", "reasoning_content": "2+2"}))
    assert codec("deepseek").decode(body, status=200).reasoning == "2+2"
    body = answer(choices=choice({"content": "4", "reasoning": "2 and 2"}))
    assert codec("openrouter").decode(body, status=200).reasoning == "2 and 2"


def test_decode_usage_details() -> None:
    """Cached prompt tokens and reasoning tokens are reported."""
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 30,
        "total_tokens": 130,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    assert codec().decode(answer(usage=usage), status=200).usage == f.Usage(
        input_tokens=100, output_tokens=30, cache_read_tokens=64, reasoning_tokens=20
    )


def test_deepseek_cache_hits_are_cache_reads() -> None:
    """DeepSeek's prompt_cache_hit_tokens count as cache reads."""
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "total_tokens": 11,
        "prompt_cache_hit_tokens": 8,
    }
    r = codec("deepseek").decode(answer(usage=usage), status=200)
    assert r.usage is not None
    assert r.usage.cache_read_tokens == 8


# -- provider state --------------------------------------------------------------------

DETAILS = [{"type": "reasoning.encrypted", "data": "opaque", "index": 0}]


def test_openrouter_reasoning_details_replay_to_openrouter_only() -> None:
    """reasoning_details are kept as provider state and sent back to OpenRouter, not elsewhere."""
    body = answer(choices=choice({"content": "hi", "reasoning": "r", "reasoning_details": DETAILS}))
    r = codec("openrouter").decode(body, status=200)
    assert r.provider_state == f.ProviderState(
        protocol="openai", provider="openrouter", data={"reasoning_details": DETAILS}
    )
    req = f.ChatRequest(
        messages=[
            f.Message(role="user", content="q"),
            r.message,
            f.Message(role="user", content="more"),
        ]
    )
    back = msgspec.json.decode(codec("openrouter").encode(req, stream=False))
    assert back["messages"][1]["reasoning_details"] == DETAILS
    elsewhere = valid_body("openai", codec("openai").encode(req, stream=False))
    assert "reasoning_details" not in elsewhere["messages"][1]


def test_gemini_thought_signatures_replay_to_gemini_only() -> None:
    """A Gemini tool call's extra_content goes back on that call to Gemini, and nowhere else."""
    sig = {"google": {"thought_signature": "c2ln"}}
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "grep", "arguments": "{}"},
            "extra_content": sig,
        }
    ]
    r = codec("gemini").decode(
        answer(choices=choice({"content": None, "tool_calls": calls}, "tool_calls"), sdk=False),
        status=200,
    )
    assert r.provider_state is not None
    history = [
        f.Message(role="user", content="q"),
        r.message,
        f.Message(role="tool", tool_call_id="c1", content="x"),
    ]
    req = f.ChatRequest(messages=history, tools=[GREP])
    back = msgspec.json.decode(codec("gemini").encode(req, stream=False))
    assert back["messages"][1]["tool_calls"][0]["extra_content"] == sig
    other = valid_body("openai", codec("openrouter").encode(req, stream=False))
    assert "extra_content" not in other["messages"][1]["tool_calls"][0]


# -- streaming whole answers -----------------------------------------------------------


def tool_fragment(
    index: int, *, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    frag: dict[str, Any] = {"index": index}
    if id is not None:
        frag["id"] = id
        frag["type"] = "function"
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    if fn:
        frag["function"] = fn
    return frag


def test_stream_parallel_tool_calls_are_assembled() -> None:
    """Argument fragments of two calls arrive as ToolCallDeltas and are assembled at the end."""
    out, dec = feed_all(
        [
            chunk({"role": "assistant", "content": None}),
            chunk({"tool_calls": [tool_fragment(0, id="call_1", name="read_file", args="")]}),
            chunk({"tool_calls": [tool_fragment(0, args='{"pa')]}),
            chunk({"tool_calls": [tool_fragment(1, id="call_2", name="grep", args='{"q"')]}),
            chunk({"tool_calls": [tool_fragment(0, args='th": "a"}')]}),
            chunk({"tool_calls": [tool_fragment(1, args=': "x"}')]}),
            chunk({}, "tool_calls"),
            chunk(choices=[], usage=USAGE),
        ]
    )
    assert out == [
        f.ToolCallDelta(index=0, id="call_1", name="read_file"),
        f.ToolCallDelta(index=0, arguments='{"pa'),
        f.ToolCallDelta(index=1, id="call_2", name="grep", arguments='{"q"'),
        f.ToolCallDelta(index=0, arguments='th": "a"}'),
        f.ToolCallDelta(index=1, arguments=': "x"}'),
    ]
    r = dec.result()
    assert r.tool_calls == (
        f.ToolCall(id="call_1", name="read_file", arguments='{"path": "a"}'),
        f.ToolCall(id="call_2", name="grep", arguments='{"q": "x"}'),
    )
    assert r.finish_reason == "tool_calls"


def test_stream_reasoning_then_text() -> None:
    """reasoning_content deltas are ReasoningDeltas, before the answer's TextDeltas."""
    out, dec = feed_all(
        [
            chunk({"reasoning_content": "Think"}, sdk=False),
            chunk({"reasoning_content": "ing."}, sdk=False),
            chunk({"content": "Answer"}),
            chunk({}, "stop"),
            DONE,
        ],
        provider="deepseek",
    )
    assert out == [
        f.ReasoningDelta(text="Think"),
        f.ReasoningDelta(text="ing."),
        f.TextDelta(text="Answer"),
    ]
    assert (dec.result().reasoning, dec.result().text) == ("Thinking.", "Answer")


def test_stream_reasoning_field_of_openrouter() -> None:
    """OpenRouter's delta.reasoning is reasoning too."""
    out, _ = feed_all([chunk({"reasoning": "hmm"}, sdk=False)], provider="openrouter")
    assert out == [f.ReasoningDelta(text="hmm")]


def test_stream_refusal_and_usage_details() -> None:
    """A streamed refusal is assembled; usage keeps cached and reasoning tokens."""
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    out, dec = feed_all(
        [
            chunk({"refusal": "No"}),
            chunk({"refusal": "."}),
            chunk({}, "stop"),
            chunk(choices=[], usage=usage),
        ]
    )
    assert out == []
    r = dec.result()
    assert (r.text, r.refusal) == ("", "No.")
    assert r.usage == f.Usage(
        input_tokens=9, output_tokens=3, cache_read_tokens=4, reasoning_tokens=2
    )


def test_stream_gemini_signature_is_provider_state() -> None:
    """A streamed Gemini tool call's extra_content ends up in the provider state."""
    sig = {"google": {"thought_signature": "c2ln"}}
    frag = {**tool_fragment(0, id="c1", name="grep", args="{}"), "extra_content": sig}
    _, dec = feed_all(
        [chunk({"tool_calls": [frag]}, sdk=False), chunk({}, "stop")], provider="gemini"
    )
    assert dec.result().provider_state == f.ProviderState(
        protocol="openai", provider="gemini", data={"tool_calls": {"c1": sig}}
    )


def test_empty_stop_list_is_not_sent() -> None:
    """stop=[] asks for nothing, so no stop field is sent."""
    assert "stop" not in valid_body("openai", codec().encode(ask(stop=[]), stream=False))


def test_strict_is_left_out_where_the_provider_has_no_strict_mode() -> None:
    """GLM has no strict flag: the tool goes without it and its schema unchanged."""
    tool = f.Tool(name="read_file", parameters=READ.parameters, strict=True)
    body = msgspec.json.decode(codec("zhipu").encode(ask(tools=[tool]), stream=False))
    assert body["tools"][0]["function"] == {"name": "read_file", "parameters": READ.parameters}


def test_foreign_shaped_provider_state_is_ignored() -> None:
    """Provider state whose data is not what this codec wrote is sent as nothing."""
    state = f.ProviderState(protocol="openai", provider="gemini", data={"tool_calls": ["x"]})
    msgs = [
        f.Message(role="user", content="q"),
        f.Message(
            role="assistant", tool_calls=[f.ToolCall(id="c", name="grep")], provider_state=state
        ),
        f.Message(role="tool", tool_call_id="c", content="x"),
    ]
    body = msgspec.json.decode(
        codec("gemini").encode(f.ChatRequest(messages=msgs, tools=[GREP]), stream=False)
    )
    assert "extra_content" not in body["messages"][1]["tool_calls"][0]


# -- item 8 end to end: "" is not a finish --------------------------------------------


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + msgspec.json.encode(c) + b"\n\n" for c in chunks)


def ollama_chunk(text: str) -> dict[str, Any]:
    """An intermediate chunk as Ollama, SGLang and LocalAI send it: finish_reason ""."""
    return {
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": ""}],
    }


async def test_a_stream_cut_after_empty_finish_reasons_is_not_completed() -> None:
    """A body that ends mid-answer after finish_reason "" chunks fails; it is not Completed."""
    from fallover.testing import MockTransport, Response

    body = sse(ollama_chunk("Half an "), ollama_chunk("answer"))
    transport = MockTransport(lambda r: Response(content=body))
    async with f.OpenAIClient(model="m", transport=transport, max_retries=0) as c:
        with pytest.raises(f.StreamInterrupted) as info:
            async for _ in c.stream(ask()):
                pass
    assert info.value.partial_text == "Half an answer"
    assert isinstance(info.value.error, f.ConnectionFailed)


async def test_empty_finish_reasons_then_a_real_one_complete() -> None:
    """The same stream with a real finish at the end is Completed with the whole text."""
    from fallover.testing import MockTransport, Response

    finish = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = sse(ollama_chunk("Whole "), ollama_chunk("answer"), finish) + b"data: [DONE]\n\n"
    transport = MockTransport(lambda r: Response(content=body))
    async with f.OpenAIClient(model="m", transport=transport) as c:
        events = [e async for e in c.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert (done.response.text, done.response.finish_reason) == ("Whole answer", "stop")


@pytest.mark.slow
async def test_a_pause_after_empty_finish_reasons_is_waited_out() -> None:
    """A 1.5 s pause mid-answer after finish_reason "" chunks is not taken for the end."""
    import anyio

    from fallover.testing import MockTransport, Response

    finish = {"model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}

    async def body() -> Any:
        yield sse(ollama_chunk("Before the pause, "))
        await anyio.sleep(1.5)  # the server thinking, not a synchronisation
        yield sse(ollama_chunk("after it."), finish) + b"data: [DONE]\n\n"

    transport = MockTransport(lambda r: Response(content=body()))
    async with f.OpenAIClient(model="m", transport=transport) as c:
        with anyio.fail_after(10):
            events = [e async for e in c.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.text == "Before the pause, after it."
