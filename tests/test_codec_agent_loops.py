"""The codecs end to end: agent loops through real clients, a router and the simulator.

The simulator refuses what the real APIs refuse (a tool result without its call,
a thinking block whose signature changed), so a loop that finishes is a loop whose
every request was well formed for the member it went to.
"""

from __future__ import annotations

import anyio
import msgspec
import pytest

import fallover as f
from fallover.testing import Fault

from .conftest import SimFactory

TOOLS = [
    f.Tool(
        name="read_file",
        parameters={"type": "object", "properties": {"path": {"type": "string"}}},
    ),
    f.Tool(name="grep", parameters={"type": "object", "properties": {"q": {"type": "string"}}}),
]
THINK = f.Reasoning(effort="low")


def openai(sim_url: str, model: str, **kw: object) -> f.OpenAIClient:
    return f.OpenAIClient(model=model, base_url=sim_url + "/v1", api_key="k", **kw)  # type: ignore[arg-type]


def anthropic(sim_url: str, model: str, **kw: object) -> f.AnthropicClient:
    return f.AnthropicClient(model=model, base_url=sim_url, api_key="k", **kw)  # type: ignore[arg-type]


def results(resp: f.ChatResponse) -> list[f.Message]:
    return [
        f.Message(role="tool", tool_call_id=c.id, content=f"{c.name} ok") for c in resp.tool_calls
    ]


async def agent(
    client: f.LLMClient, history: list[f.Message], *, reasoning: f.Reasoning | None = None
) -> list[f.ChatResponse]:
    """Run the loop until a turn has no tool calls; every answer, in order."""
    answers: list[f.ChatResponse] = []
    with anyio.fail_after(20):
        for _ in range(5):
            req = f.ChatRequest(messages=history, tools=TOOLS, reasoning=reasoning)
            resp = await client.complete(req)
            answers.append(resp)
            history = [*history, resp.message, *results(resp)]
            if not resp.tool_calls:
                return answers
    raise AssertionError("the loop did not finish")


def ask() -> list[f.Message]:
    return [f.Message(role="user", content="Review a.py")]


async def test_openai_tool_turn_finishes_on_anthropic(simulator: SimFactory) -> None:
    """Parallel calls answered over the OpenAI protocol; after a fallover Claude finishes the loop."""
    sim = await simulator(
        primary=Fault(call_tools=["*"], after=1, fail_rate=1.0), backup=Fault(call_tools=["*"])
    )
    router = f.AsyncRouter([openai(sim.base_url, "primary"), anthropic(sim.base_url, "backup")])
    async with router:
        answers = await agent(router, ask())
    first, last = answers[0], answers[-1]
    assert (first.alias, len(first.tool_calls)) == ("openai/primary", 2)
    assert last.alias == "anthropic/backup"
    assert last.text
    assert last.finish_reason == "stop"


async def test_anthropic_tool_turn_finishes_on_openai(simulator: SimFactory) -> None:
    """Parallel calls answered by Claude; after a fallover an OpenAI-protocol member finishes."""
    sim = await simulator(
        primary=Fault(call_tools=["*"], after=1, fail_rate=1.0), backup=Fault(call_tools=["*"])
    )
    router = f.AsyncRouter([anthropic(sim.base_url, "primary"), openai(sim.base_url, "backup")])
    async with router:
        answers = await agent(router, ask())
    first, last = answers[0], answers[-1]
    assert (first.alias, len(first.tool_calls)) == ("anthropic/primary", 2)
    assert last.alias == "openai/backup"
    assert last.text


async def test_thinking_goes_back_signed_to_its_member(simulator: SimFactory) -> None:
    """A thinking tool turn is replayed to the same member with its signature, which it checks."""
    sim = await simulator(claude=Fault(call_tools=["grep"], reasoning="Look at the loop."))
    async with anthropic(sim.base_url, "claude", max_retries=0) as client:
        first = await client.complete(f.ChatRequest(messages=ask(), tools=TOOLS, reasoning=THINK))
        assert first.reasoning
        assert first.provider_state is not None
        history = [*ask(), first.message, *results(first)]
        second = await client.complete(
            f.ChatRequest(messages=history, tools=TOOLS, reasoning=THINK)
        )
        assert second.text
        # The control: the same turn with its signature changed is refused.
        data = msgspec.json.decode(msgspec.json.encode(first.provider_state.data))
        data["blocks"][0]["signature"] = "forged"
        forged = msgspec.structs.replace(
            first.message, provider_state=msgspec.structs.replace(first.provider_state, data=data)
        )
        with pytest.raises(f.BadRequest, match="signature"):
            await client.complete(
                f.ChatRequest(
                    messages=[*ask(), forged, *results(first)], tools=TOOLS, reasoning=THINK
                )
            )


async def test_thinking_is_dropped_after_a_fallover(simulator: SimFactory) -> None:
    """After Claude's thinking turn the loop falls over; the next member gets the turn unsigned."""
    sim = await simulator(
        claude=Fault(call_tools=["grep"], reasoning="Look.", after=1, fail_rate=1.0),
        gpt=Fault(call_tools=["grep"]),
    )
    router = f.AsyncRouter([anthropic(sim.base_url, "claude"), openai(sim.base_url, "gpt")])
    async with router:
        answers = await agent(router, ask(), reasoning=THINK)
    assert answers[0].alias == "anthropic/claude"
    assert answers[0].provider_state is not None
    assert {a.alias for a in answers[1:]} == {"openai/gpt"}
    assert answers[-1].text


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_three_seconds_of_reasoning_beat_a_one_second_first_token_timeout(
    simulator: SimFactory, protocol: str
) -> None:
    """A stream that reasons for 3 s under first_token_timeout=1 succeeds, nothing parked."""
    sim = await simulator(thinker=Fault(reasoning="Step by step.", thinking=3.0), backup=Fault())
    build = openai if protocol == "openai" else anthropic
    router = f.AsyncRouter(
        [build(sim.base_url, "thinker", first_token_timeout=1.0), build(sim.base_url, "backup")]
    )
    request = f.ChatRequest(messages=ask(), reasoning=THINK)
    async with router:
        with anyio.fail_after(20):
            events = [e async for e in router.stream(request)]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.alias == f"{protocol}/thinker"
    assert done.response.reasoning
    assert isinstance(events[0], f.ReasoningDelta)
    assert sim.requests_for("backup") == 0
