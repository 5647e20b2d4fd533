"""Official SDK clients pointed at a simulator, and a raw SSE reader, for the tests."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import openai
import pydantic
from anthropic.types import RawMessageStreamEvent

from fallover.testing import Simulator

HELLO: Any = [{"role": "user", "content": "Say hello"}]
STREAM_EVENT: pydantic.TypeAdapter[RawMessageStreamEvent] = pydantic.TypeAdapter(
    RawMessageStreamEvent
)


def oai(sim: Simulator, **kw: Any) -> openai.AsyncOpenAI:
    """An OpenAI SDK client on the simulator: no retries and short timeouts unless asked."""
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return openai.AsyncOpenAI(api_key="sk-test", base_url=sim.base_url + "/v1", **kw)


def claude(sim: Simulator, **kw: Any) -> anthropic.AsyncAnthropic:
    """An Anthropic SDK client on the simulator: no retries and short timeouts unless asked."""
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=sim.base_url, **kw)


async def sse(sim: Simulator, path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """POST ``body`` with ``stream: true`` and return the raw (event, data) pairs."""
    headers = {"anthropic-version": "2023-06-01"}
    events: list[tuple[str, str]] = []
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim.base_url + path, json={**body, "stream": True}, headers=headers) as resp,
    ):
        text = (await resp.read()).decode()
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", ""), fields["data"]))
    return events
