"""The simulator refuses, with a 400, the requests the real APIs refuse."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from .conftest import SimFactory
from .sdk import HELLO, claude, oai

CALL: Any = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
USE: Any = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
RESULT: Any = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}


@pytest.mark.parametrize(
    ("messages", "extra", "says"),
    [
        ([], {}, "too short"),
        (HELLO, {"temperature": 2.5}, "temperature"),
        ([*HELLO, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}], {}, "role 'tool'"),
        (
            [*HELLO, {"role": "assistant", "tool_calls": [CALL]}, *HELLO],
            {},
            "did not have response messages: call_1",
        ),
        (
            [
                *HELLO,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_2", "content": "ok"},
            ],
            {},
            "role 'tool'",
        ),
    ],
    ids=["no-messages", "temperature", "orphan-result", "unanswered-call", "wrong-id"],
)
async def test_openai_refuses_what_the_api_refuses(
    simulator: SimFactory, messages: Any, extra: dict[str, Any], says: str
) -> None:
    """Malformed conversations and out-of-range settings get the API's 400."""
    sim = await simulator()
    async with oai(sim) as client:
        with pytest.raises(openai.BadRequestError, match=says):
            await client.chat.completions.create(
                model="m", messages=messages, extra_body=extra or None
            )


@pytest.mark.parametrize(
    ("messages", "extra", "says"),
    [
        ([], {}, "at least one message"),
        (HELLO, {"temperature": 1.5}, "temperature"),
        ([{"role": "system", "content": "be brief"}, *HELLO], {}, "messages.0.role"),
        (
            [*HELLO, {"role": "assistant", "content": [USE]}, *HELLO],
            {},
            "without `tool_result` blocks immediately after: toolu_1",
        ),
        (
            [*HELLO, {"role": "assistant", "content": "hi"}, {"role": "user", "content": [RESULT]}],
            {},
            "unexpected `tool_use_id`",
        ),
        (HELLO, {"thinking": {"type": "enabled", "budget_tokens": 2048}}, "budget_tokens"),
        (HELLO, {"thinking": {"type": "enabled", "budget_tokens": 100}}, "1024"),
    ],
    ids=[
        "no-messages",
        "temperature",
        "system-role",
        "unanswered-use",
        "orphan-result",
        "budget-over-max",
        "budget-too-small",
    ],
)
async def test_anthropic_refuses_what_the_api_refuses(
    simulator: SimFactory, messages: Any, extra: dict[str, Any], says: str
) -> None:
    """Malformed conversations, out-of-range settings and bad thinking budgets get a 400."""
    sim = await simulator()
    async with claude(sim) as client:
        with pytest.raises(anthropic.BadRequestError, match=says):
            await client.messages.create(
                model="m", max_tokens=2000, messages=messages, extra_body=extra or None
            )


async def test_anthropic_needs_max_tokens(simulator: SimFactory) -> None:
    """A Messages request without max_tokens is refused, as the API refuses it."""
    sim = await simulator()
    async with claude(sim) as client:
        with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
            await client.post(
                "/v1/messages", cast_to=object, body={"model": "m", "messages": HELLO}
            )


async def test_a_well_formed_tool_loop_passes_both_checks(simulator: SimFactory) -> None:
    """Answered calls in both protocols are accepted and answered."""
    sim = await simulator()
    async with oai(sim) as client:
        done = await client.chat.completions.create(
            model="m",
            messages=[
                *HELLO,
                {"role": "assistant", "tool_calls": [CALL]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            ],
        )
    async with claude(sim) as client:
        message = await client.messages.create(
            model="m",
            max_tokens=100,
            messages=[
                *HELLO,
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": [RESULT]},
            ],
        )
    assert done.choices[0].message.content and message.content[0].type == "text"
