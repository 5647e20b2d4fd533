"""What the simulator answers: tool calls, reasoning, refusals, filters, JSON, token limits.

Every answer is read with the official SDKs and validated with their model classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fallover.testing import Fault, Scenario, Simulator, load_scenario

from .conftest import Recorder, SimFactory
from .sdk import HELLO, STREAM_EVENT, claude, oai, sse

READ_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "line": {"type": "integer"}},
    "required": ["path", "line"],
    "additionalProperties": False,
}
OPENAI_TOOLS: Any = [
    {"type": "function", "function": {"name": "read_file", "parameters": READ_SCHEMA}},
    {
        "type": "function",
        "function": {
            "name": "grep",
            "parameters": {
                "type": "object",
                "properties": {"pattern": {"type": "string"}},
                "required": ["pattern"],
            },
        },
    },
]
ANTHROPIC_TOOLS: Any = [
    {"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}
    for t in OPENAI_TOOLS
]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


# -- tool calls: OpenAI ----------------------------------------------------------------


async def test_openai_user_turn_with_tools_calls_the_first_tool(simulator: SimFactory) -> None:
    """Offered tools and a user turn, the model calls the first tool with schema-valid arguments."""
    sim = await simulator()
    async with oai(sim) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="m", messages=HELLO, tools=OPENAI_TOOLS
        )
    completion = ChatCompletion.model_validate(raw.http_response.json())
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "read_file"
    jsonschema.validate(json.loads(call.function.arguments), READ_SCHEMA)


async def test_openai_parallel_calls_stream_as_argument_fragments(simulator: SimFactory) -> None:
    """call_tools = ["*"] calls every tool at once, each streamed as argument fragments."""
    sim = await simulator(m=Fault(call_tools=["*"]))
    body = {"model": "m", "messages": HELLO, "tools": OPENAI_TOOLS}
    chunks = [
        ChatCompletionChunk.model_validate_json(d)
        for _, d in await sse(sim, "/v1/chat/completions", body)
        if d != "[DONE]"
    ]
    fragments: dict[int, list[str]] = {}
    for chunk in chunks:
        for delta in chunk.choices[0].delta.tool_calls or []:
            assert (delta.id is None) == (delta.index in fragments)  # the id comes first, once
            fragments.setdefault(delta.index, []).append(delta.function.arguments or "")  # type: ignore[union-attr]
    assert sorted(fragments) == [0, 1] and all(len(f) > 2 for f in fragments.values())
    async with (
        oai(sim) as client,
        client.chat.completions.stream(model="m", messages=HELLO, tools=OPENAI_TOOLS) as stream,
    ):
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["read_file", "grep"]
    assert [c.function.arguments for c in calls] == ["".join(fragments[i]) for i in (0, 1)]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_openai_agent_loop_answers_after_the_tool_result(simulator: SimFactory) -> None:
    """After tool_rounds tool turns, a tool result gets a text answer."""
    sim = await simulator(m=Fault(tool_rounds=2))
    messages: list[Any] = list(HELLO)
    finishes = []
    async with oai(sim) as client:
        for _ in range(3):
            completion = await client.chat.completions.create(
                model="m", messages=messages, tools=OPENAI_TOOLS
            )
            choice = completion.choices[0]
            finishes.append(choice.finish_reason)
            messages.append(choice.message.model_dump(exclude_none=True))
            for call in choice.message.tool_calls or []:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": "x = 1\n"})
    assert finishes == ["tool_calls", "tool_calls", "stop"]
    assert choice.message.content and choice.message.content.startswith("Simulated review of 1")


async def test_openai_tool_choice_is_obeyed(simulator: SimFactory) -> None:
    """tool_choice none answers in text; a named tool is the one called; no parallel, one call."""
    sim = await simulator(m=Fault(call_tools=["*"]))
    async with oai(sim) as client:
        none = await client.chat.completions.create(
            model="m", messages=HELLO, tools=OPENAI_TOOLS, tool_choice="none"
        )
        named = await client.chat.completions.create(
            model="m",
            messages=HELLO,
            tools=OPENAI_TOOLS,
            tool_choice={"type": "function", "function": {"name": "grep"}},
        )
        single = await client.chat.completions.create(
            model="m", messages=HELLO, tools=OPENAI_TOOLS, parallel_tool_calls=False
        )
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["grep"]
    assert len(single.choices[0].message.tool_calls or []) == 1


async def test_scripted_tool_arguments_are_sent(simulator: SimFactory) -> None:
    """tool_arguments fixes a tool's arguments; call_tools picks the tools by name."""
    args = {"pattern": "TODO"}
    sim = await simulator(m=Fault(call_tools=["grep"], tool_arguments={"grep": args}))
    async with oai(sim) as client:
        completion = await client.chat.completions.create(
            model="m", messages=HELLO, tools=OPENAI_TOOLS
        )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "grep" and json.loads(call.function.arguments) == args


# -- tool calls: Anthropic -------------------------------------------------------------


async def test_anthropic_tool_use_streams_input_json_and_assembles(simulator: SimFactory) -> None:
    """Parallel tool_use blocks stream as input_json_delta; the SDK assembles their input."""
    sim = await simulator(m=Fault(call_tools=["*"]))
    body = {"model": "m", "max_tokens": 500, "messages": HELLO, "tools": ANTHROPIC_TOOLS}
    events = [
        STREAM_EVENT.validate_json(d)
        for n, d in await sse(sim, "/v1/messages", body)
        if n != "ping"
    ]
    partial = [e for e in events if e.type == "content_block_delta"]
    assert partial and all(e.delta.type == "input_json_delta" for e in partial)
    async with (
        claude(sim) as client,
        client.messages.stream(
            model="m", max_tokens=500, messages=HELLO, tools=ANTHROPIC_TOOLS
        ) as stream,
    ):
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [b.name for b in uses] == ["read_file", "grep"]
    jsonschema.validate(uses[0].input, READ_SCHEMA)
    assert uses[0].id != uses[1].id and uses[0].id.startswith("toolu_")


async def test_anthropic_agent_loop_answers_after_tool_results(simulator: SimFactory) -> None:
    """A user turn of tool_result blocks gets a text answer; disable_parallel_tool_use holds."""
    sim = await simulator(m=Fault(call_tools=["*"]))
    async with claude(sim) as client:
        first = await client.messages.create(
            model="m",
            max_tokens=500,
            messages=HELLO,
            tools=ANTHROPIC_TOOLS,
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        )
        [use] = [b for b in first.content if b.type == "tool_use"]
        result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "a\nb\n"}
        second = await client.messages.create(
            model="m",
            max_tokens=500,
            messages=[
                *HELLO,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ],
            tools=ANTHROPIC_TOOLS,
        )
    Message.model_validate(second.model_dump())
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    assert second.content[0].text.startswith("Simulated review of 2 lines")


# -- reasoning -------------------------------------------------------------------------


async def test_openai_reasoning_content_comes_before_the_text(simulator: SimFactory) -> None:
    """reasoning streams as reasoning_content deltas before content, and is in the message."""
    sim = await simulator(m=Fault(reasoning="First I look. Then I answer."))
    raw = await sse(sim, "/v1/chat/completions", {"model": "m", "messages": HELLO})
    deltas = [ChatCompletionChunk.model_validate_json(d).choices[0].delta for _, d in raw[:-1]]
    kinds = [
        "r" if (d.model_extra or {}).get("reasoning_content") else "t" if d.content else ""
        for d in deltas
    ]
    order = "".join(kinds)
    assert order.startswith("rrrrrr") and order.rstrip("t").endswith("r") and "t" in order
    reasoning = "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas)
    assert reasoning == "First I look. Then I answer."
    async with oai(sim) as client:
        completion = await client.chat.completions.create(model="m", messages=HELLO)
    assert (completion.choices[0].message.model_extra or {})["reasoning_content"] == reasoning
    assert completion.usage is not None
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 6


async def test_anthropic_thinking_is_signed_and_replays(simulator: SimFactory) -> None:
    """With thinking enabled, a signed thinking block streams first; replayed intact it is accepted."""
    sim = await simulator(m=Fault(reasoning="Check the edge cases."))
    async with claude(sim) as client:
        async with client.messages.stream(
            model="m", max_tokens=2000, thinking=THINKING, messages=HELLO
        ) as stream:
            types = [
                (e.type, getattr(getattr(e, "delta", None), "type", None)) async for e in stream
            ]
            final = await stream.get_final_message()
        thinking = final.content[0]
        assert thinking.type == "thinking" and thinking.thinking == "Check the edge cases."
        assert ("content_block_delta", "thinking_delta") in types
        assert ("content_block_delta", "signature_delta") in types and thinking.signature
        history: Any = [
            *HELLO,
            {"role": "assistant", "content": final.content},
            {"role": "user", "content": "And now?"},
        ]
        again = await client.messages.create(
            model="m", max_tokens=2000, thinking=THINKING, messages=history
        )
        assert again.content[0].type == "thinking"
        history[1]["content"][0] = {**thinking.model_dump(), "signature": "forged"}
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            await client.messages.create(
                model="m", max_tokens=2000, thinking=THINKING, messages=history
            )


async def test_anthropic_thinks_only_when_asked() -> None:
    """Without `thinking` in the request, Claude sends no thinking block, as the real API."""
    recorder = Recorder()
    sim = Simulator(Scenario(models={"m": Fault(reasoning="hidden", thinking=5)}), sleep=recorder)
    async with sim, claude(sim) as client:
        message = await client.messages.create(model="m", max_tokens=100, messages=HELLO)
    assert [b.type for b in message.content] == ["text"] and recorder.delays == []


async def test_thinking_phase_spreads_reasoning_over_its_seconds() -> None:
    """thinking = N sends reasoning deltas every thinking_interval for N seconds, then text."""
    recorder = Recorder()
    scenario = Scenario(models={"m": Fault(thinking=3, thinking_interval=0.5)})
    async with Simulator(scenario, sleep=recorder) as sim:
        raw = await sse(
            sim,
            "/v1/messages",
            {"model": "m", "max_tokens": 4000, "thinking": THINKING, "messages": HELLO},
        )
        non_stream = Recorder()
        sim_plain = Simulator(scenario, sleep=non_stream)
        async with sim_plain, claude(sim_plain) as client:
            await client.messages.create(
                model="m", max_tokens=4000, thinking=THINKING, messages=HELLO
            )
    events = [STREAM_EVENT.validate_json(d) for n, d in raw if n != "ping"]
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    thinking = deltas.count("thinking_delta")
    assert thinking >= 6 and deltas.index("text_delta") > deltas.index("signature_delta")
    assert recorder.delays == [pytest.approx(3 / thinking)] * thinking
    assert sum(non_stream.delays) == pytest.approx(3)


# -- refusals, filters, JSON, limits -------------------------------------------------------


async def test_refusal_in_both_protocols(simulator: SimFactory) -> None:
    """OpenAI sets message.refusal with no content; Anthropic stops with stop_reason refusal."""
    sim = await simulator(m=Fault(refusal="I can't help with that."))
    async with oai(sim) as client:
        plain = await client.chat.completions.create(model="m", messages=HELLO)
        async with client.chat.completions.stream(model="m", messages=HELLO) as stream:
            refusal_deltas = [e.delta async for e in stream if e.type == "refusal.delta"]
            streamed = await stream.get_final_completion()
    assert plain.choices[0].message.refusal == "I can't help with that."
    assert plain.choices[0].message.content is None and plain.choices[0].finish_reason == "stop"
    assert (
        "".join(refusal_deltas) == streamed.choices[0].message.refusal == "I can't help with that."
    )
    async with claude(sim) as client:
        message = await client.messages.create(model="m", max_tokens=100, messages=HELLO)
    assert message.stop_reason == "refusal" and message.content == []
    assert message.stop_details is not None
    assert message.stop_details.explanation == "I can't help with that."


async def test_content_filter_has_no_content(simulator: SimFactory) -> None:
    """A filtered answer: finish_reason content_filter with null content; Anthropic refuses."""
    sim = await simulator(m=Fault(content_filter=True))
    raw = await sse(sim, "/v1/chat/completions", {"model": "m", "messages": HELLO})
    chunks = [ChatCompletionChunk.model_validate_json(d) for _, d in raw[:-1]]
    assert all(not c.choices[0].delta.content for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    async with oai(sim) as client:
        plain = await client.chat.completions.create(model="m", messages=HELLO)
    assert plain.choices[0].finish_reason == "content_filter"
    assert plain.choices[0].message.content is None
    async with claude(sim) as client:
        message = await client.messages.create(model="m", max_tokens=100, messages=HELLO)
    assert message.stop_reason == "refusal" and message.content == []


async def test_json_schema_answers_validate(simulator: SimFactory) -> None:
    """A JSON schema response format gets an answer valid against that schema, both protocols."""
    sim = await simulator()
    schema = {
        "type": "object",
        "properties": {
            "findings": {"type": "array", "items": READ_SCHEMA},
            "severity": {"enum": ["low", "high"]},
        },
        "required": ["findings", "severity"],
    }
    async with oai(sim) as client:
        completion = await client.chat.completions.create(
            model="m",
            messages=HELLO,
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)
    async with claude(sim) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=500,
            messages=HELLO,
            output_config={"format": {"type": "json_schema", "schema": schema}},
        )
    assert message.content[0].type == "text"
    jsonschema.validate(json.loads(message.content[0].text), schema)


async def test_max_tokens_cuts_the_answer(simulator: SimFactory) -> None:
    """An answer longer than max_tokens stops there with finish length / max_tokens."""
    sim = await simulator(m=Fault(reply="one two three four five"))
    async with oai(sim) as client:
        completion = await client.chat.completions.create(
            model="m", messages=HELLO, max_completion_tokens=2
        )
    assert completion.choices[0].message.content == "one two"
    assert completion.choices[0].finish_reason == "length"
    async with claude(sim) as client:
        message = await client.messages.create(model="m", max_tokens=3, messages=HELLO)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


async def test_stop_sequences_end_the_text(simulator: SimFactory) -> None:
    """The text ends before the earliest stop sequence; Anthropic names the sequence."""
    sim = await simulator(m=Fault(reply="one two three four"))
    async with oai(sim) as client:
        completion = await client.chat.completions.create(
            model="m", messages=HELLO, stop=["four", " three"]
        )
    assert completion.choices[0].message.content == "one two"
    assert completion.choices[0].finish_reason == "stop"
    async with (
        claude(sim) as client,
        client.messages.stream(
            model="m", max_tokens=100, messages=HELLO, stop_sequences=["two"]
        ) as stream,
    ):
        message = await stream.get_final_message()
    assert message.content[0].type == "text" and message.content[0].text == "one "
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "two"


async def test_after_keeps_the_answer_shape(simulator: SimFactory) -> None:
    """During `after`, faults are off but reasoning and tool settings still describe the model."""
    sim = await simulator(m=Fault(after=1, statuses=[503], reasoning="hmm"))
    async with oai(sim) as client:
        first = await client.chat.completions.create(model="m", messages=HELLO)
    assert (first.choices[0].message.model_extra or {})["reasoning_content"] == "hmm"
    assert [e["status"] for e in sim.log] == [200]


def test_answer_keys_load_from_a_scenario_file(tmp_path: Path) -> None:
    """The answer keys are scenario-file keys, validated like the rest."""
    path = tmp_path / "s.toml"
    path.write_text(
        '[models.agent]\ncall_tools = ["*"]\ntool_rounds = 2\nreasoning = "hmm"\n'
        'thinking = 3.0\n[models.agent.tool_arguments.grep]\npattern = "TODO"\n'
        '[models.prude]\nrefusal = "no"\n[models.filtered]\ncontent_filter = true\n'
    )
    scenario = load_scenario(path)
    agent = scenario.fault("agent")
    assert agent.tool_arguments == {"grep": {"pattern": "TODO"}} and agent.thinking == 3.0
    assert scenario.fault("prude").refusal == "no" and scenario.fault("filtered").content_filter


async def test_null_options_read_as_absent(simulator: SimFactory) -> None:
    """tool_choice: null and a json_schema without a schema still get an answer."""
    sim = await simulator()
    body = {
        "model": "m",
        "messages": HELLO,
        "tools": OPENAI_TOOLS,
        "tool_choice": None,
        "response_format": {"type": "json_schema", "json_schema": None},
    }
    chunks = await sse(sim, "/v1/chat/completions", body)
    last = ChatCompletionChunk.model_validate_json(chunks[-2][1])
    assert last.choices[0].finish_reason == "tool_calls"
