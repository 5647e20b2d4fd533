"""OpenAI chat completions on the wire."""

from __future__ import annotations

import anyio
import pytest

import fallover as f
from fallover.testing import Fault

from .conftest import SECRET, Capture, SimFactory, ask


def oa(base: str, **kw: object) -> f.OpenAIClient:
    return f.OpenAIClient(model="m", base_url=base + "/v1", api_key=SECRET, **kw)  # type: ignore[arg-type]


async def collect(c: f.LLMClient, **kw: object) -> list[f.StreamEvent]:
    with anyio.fail_after(10):
        return [e async for e in c.stream(ask(), **kw)]  # type: ignore[arg-type]


async def test_request_shape_and_headers(capture: Capture) -> None:
    """The body carries the client's model, messages and options; the key goes in Bearer."""
    capture.payload = {
        "model": "m-2024",
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    c = oa(capture.base_url, headers={"X-Team": "review"})
    async with c:
        req = f.ChatRequest(
            messages=[
                f.Message(role="system", content="be brief"),
                f.Message(role="user", content="x"),
            ],
            model="ignored-by-nobody",
            max_tokens=5,
            temperature=0.1,
        )
        resp = await c.complete(req)
    ((path, headers, sent),) = capture.requests
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["X-Team"] == "review"
    assert sent == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
        "max_tokens": 5,
        "temperature": 0.1,
    }
    assert resp == f.ChatResponse(
        text="hi",
        model="m-2024",
        alias="openai/m",
        usage=f.Usage(input_tokens=3, output_tokens=1),
        finish_reason="stop",
    )


async def test_error_object_under_200(capture: Capture) -> None:
    """An error object in a 200 body is classified, not parsed as an answer."""
    capture.payload = {"error": {"type": "rate_limit_exceeded", "message": "slow"}}
    async with oa(capture.base_url, max_retries=0) as c:
        with pytest.raises(f.RateLimited):
            await c.complete(ask())


async def test_wrong_json_shape_is_malformed(capture: Capture) -> None:
    """JSON without choices is MalformedResponse."""
    capture.payload = {"answer": 42}
    async with oa(capture.base_url, max_retries=0) as c:
        with pytest.raises(f.MalformedResponse, match="wrong shape"):
            await c.complete(ask())


async def test_stream_asks_for_usage_and_reports_it(simulator: SimFactory) -> None:
    """A stream ends with Completed carrying text, usage and finish_reason."""
    sim = await simulator(m=Fault(reply="one two three"))
    async with oa(sim.base_url) as c:
        events = await collect(c)
    assert [e.text for e in events if isinstance(e, f.TextDelta)] == ["one", " two", " three"]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.text == "one two three"
    assert done.response.usage == f.Usage(input_tokens=4, output_tokens=3)
    assert done.response.finish_reason == "stop"


async def test_missing_done_with_finish_reason_is_complete(simulator: SimFactory) -> None:
    """No [DONE] but a finish_reason and usage: finalised, with usage."""
    sim = await simulator(m=Fault(reply="a b", no_terminal=True))
    async with oa(sim.base_url, idle_timeout=30) as c:
        with anyio.fail_after(3):
            events = await collect(c)
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.usage is not None


async def test_missing_done_and_finish_is_an_error(simulator: SimFactory) -> None:
    """A stream with neither [DONE] nor finish_reason is never a success."""
    sim = await simulator(m=Fault(reply="a b", no_terminal=True, no_finish=True))
    async with oa(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.StreamInterrupted) as info:
            await collect(c)
    assert info.value.partial_text == "a b"
    assert isinstance(info.value.error, f.ConnectionFailed)


async def test_mid_stream_error_object(simulator: SimFactory) -> None:
    """An error object mid-stream is classified and interrupts the stream."""
    sim = await simulator(m=Fault(reply="a b c", error_after=1))
    async with oa(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.StreamInterrupted) as info:
            await collect(c)
    assert isinstance(info.value.error, f.ServerFailed)
    assert info.value.partial_text == "a"


async def test_malformed_chunk(simulator: SimFactory) -> None:
    """A chunk that is not JSON is MalformedResponse."""
    sim = await simulator(m=Fault(reply="a b", malformed_after=0))
    async with oa(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.MalformedResponse):
            await collect(c)


async def test_stream_cut_restarts_on_the_same_member(simulator: SimFactory) -> None:
    """on_interrupt="restart" on a plain client starts over while retries allow."""
    sim = await simulator(m=Fault(reply="a b c", statuses=[200], stream_cut_after=1))
    sim.scenario.models["n"] = Fault(reply="a b c")
    c = oa(sim.base_url, max_retries=1)
    c._sleep = lambda s: anyio.sleep(0)  # type: ignore[method-assign]
    async with c:
        # First attempt cuts after one chunk; the model switch makes the retry healthy.
        c.model = "m"
        events: list[f.StreamEvent] = []
        with anyio.fail_after(10):
            async for e in c.stream(ask(), on_interrupt="restart"):
                events.append(e)
                if isinstance(e, f.Restarted):
                    c.model = "n"
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["TextDelta", "Restarted"]
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.text == "a b c"


async def test_first_token_timeout(simulator: SimFactory) -> None:
    """A slow first token is a ProviderTimeout, keep-alives notwithstanding."""
    sim = await simulator(m=Fault(first_token_delay=5, keepalive=0.02))
    async with oa(sim.base_url, first_token_timeout=0.2, max_retries=0) as c:
        with pytest.raises(f.ProviderTimeout, match="first_token_timeout"):
            await collect(c)


async def test_stall_mid_stream(simulator: SimFactory) -> None:
    """Silence after text longer than idle_timeout interrupts the stream."""
    sim = await simulator(m=Fault(reply="a b c", stall_after=1, keepalive=0.02))
    async with oa(sim.base_url, idle_timeout=0.2, max_retries=0) as c:
        with pytest.raises(f.StreamInterrupted) as info:
            await collect(c)
    assert isinstance(info.value.error, f.ProviderTimeout)


async def test_stream_error_status_before_text(simulator: SimFactory) -> None:
    """A 429 on a stream request raises RateLimited itself (no text yet)."""
    sim = await simulator(m=Fault(statuses=[429]))
    async with oa(sim.base_url, max_retries=0) as c:
        with pytest.raises(f.RateLimited):
            await collect(c)
