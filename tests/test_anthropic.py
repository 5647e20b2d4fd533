"""Anthropic messages on the wire."""

from __future__ import annotations

import anyio
import pytest

import fallover as f
from fallover.testing import Fault, MockTransport, Response

from .conftest import SECRET, SimFactory, ask


def an(base: str, **kw: object) -> f.AnthropicClient:
    return f.AnthropicClient(model="m", base_url=base, api_key=SECRET, **kw)  # type: ignore[arg-type]


async def collect(c: f.LLMClient) -> list[f.StreamEvent]:
    with anyio.fail_after(10):
        return [e async for e in c.stream(ask())]


async def test_request_shape_and_headers() -> None:
    """System messages go top-level; x-api-key and anthropic-version are sent."""
    payload = {
        "model": "m-1",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
    transport = MockTransport(lambda r: Response(json=payload))
    async with f.AnthropicClient(model="m", api_key=SECRET, transport=transport) as c:
        req = f.ChatRequest(
            messages=[
                f.Message(role="system", content="be brief"),
                f.Message(role="user", content="x"),
            ]
        )
        resp = await c.complete(req)
    (sent,) = transport.requests
    assert sent.url == "https://api.anthropic.com/v1/messages"
    assert sent.json() == {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 4096,
        "system": "be brief",
    }
    assert sent.headers["x-api-key"] == SECRET
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in sent.headers
    assert resp.text == "hi"
    assert resp.usage == f.Usage(input_tokens=5, output_tokens=1)
    assert resp.finish_reason == "stop"


async def test_a_refusal_with_no_text_is_content_filtered() -> None:
    """stop_reason refusal with no text raises ContentFiltered, not an empty answer."""
    payload = {"model": "m", "content": [], "stop_reason": "refusal"}
    transport = MockTransport(lambda r: Response(json=payload))
    async with f.AnthropicClient(model="m", transport=transport) as c:
        with pytest.raises(f.ContentFiltered):
            await c.complete(ask())


async def test_stream_events(simulator: SimFactory) -> None:
    """message_start/content_block_delta/message_delta/message_stop become text and usage."""
    sim = await simulator(m=Fault(reply="one two", model="claude-x"))
    async with an(sim.base_url) as c:
        events = await collect(c)
    assert [e.text for e in events if isinstance(e, f.TextDelta)] == ["one", " two"]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.model == "claude-x"
    assert done.response.usage == f.Usage(input_tokens=4, output_tokens=2)
    assert done.response.finish_reason == "stop"


async def test_missing_message_stop_is_an_error(simulator: SimFactory) -> None:
    """Without message_stop the stream is incomplete."""
    sim = await simulator(m=Fault(reply="one two", no_terminal=True))
    async with an(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.StreamInterrupted) as info:
            await collect(c)
    assert "message_stop" in str(info.value.error)


async def test_error_event_under_200(simulator: SimFactory) -> None:
    """event: error with overloaded_error under a 200 is ServerFailed."""
    sim = await simulator(m=Fault(reply="one two", error_after=0))
    async with an(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.ServerFailed, match="overloaded"):
            await collect(c)


async def test_overloaded_529(simulator: SimFactory) -> None:
    """529 overloaded_error is ServerFailed."""
    sim = await simulator(m=Fault(statuses=[529]))
    async with an(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.ServerFailed) as info:
            await c.complete(ask())
    assert info.value.code == "overloaded_error"
