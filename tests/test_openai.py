"""OpenAI chat completions on the wire."""

from __future__ import annotations

import anyio
import pytest

import fallover as f
from fallover.testing import Fault, MockTransport, Request, Response

from .conftest import SECRET, SimFactory, ask


def oa(base: str, **kw: object) -> f.OpenAIClient:
    return f.OpenAIClient(model="m", base_url=base + "/v1", api_key=SECRET, **kw)  # type: ignore[arg-type]


async def collect(c: f.LLMClient, **kw: object) -> list[f.StreamEvent]:
    with anyio.fail_after(10):
        return [e async for e in c.stream(ask(), **kw)]  # type: ignore[arg-type]


def over(answer: Response, **kw: object) -> tuple[f.OpenAIClient, MockTransport]:
    """A client at https://llm.test/v1 whose every request gets ``answer``."""
    transport = MockTransport(lambda r: answer)
    c = f.OpenAIClient(
        model="m",
        base_url="https://llm.test/v1",
        api_key=SECRET,
        transport=transport,
        **kw,  # type: ignore[arg-type]
    )
    return c, transport


async def test_request_shape_and_headers() -> None:
    """The body carries the client's model, messages and options; the key goes in Bearer."""
    payload = {
        "model": "m-2024",
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    c, transport = over(Response(json=payload), headers={"X-Team": "review"})
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
    (sent,) = transport.requests
    assert (sent.method, sent.url) == ("POST", "https://llm.test/v1/chat/completions")
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.headers["X-Team"] == "review"
    assert sent.json() == {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
        "max_completion_tokens": 5,
        "temperature": 0.1,
    }
    assert resp == f.ChatResponse(
        text="hi",
        model="m-2024",
        alias="openai/m",
        usage=f.Usage(input_tokens=3, output_tokens=1),
        finish_reason="stop",
    )


async def test_error_object_under_200() -> None:
    """An error object in a 200 body is classified, not parsed as an answer."""
    c, _ = over(
        Response(json={"error": {"type": "rate_limit_exceeded", "message": "slow"}}), max_retries=0
    )
    async with c:
        with pytest.raises(f.RateLimited):
            await c.complete(ask())


async def test_wrong_json_shape_is_malformed() -> None:
    """JSON without choices is MalformedResponse."""
    c, _ = over(Response(json={"answer": 42}), max_retries=0)
    async with c:
        with pytest.raises(f.MalformedResponse, match="wrong shape"):
            await c.complete(ask())


async def test_content_filter_with_no_content_is_content_filtered() -> None:
    """finish_reason content_filter with null content raises ContentFiltered, not an empty answer."""
    payload = {"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]}
    c, transport = over(Response(json=payload))
    async with c:
        with pytest.raises(f.ContentFiltered) as info:
            await c.complete(ask())
    assert info.value.code == "content_filter"
    assert len(transport.requests) == 1  # a request every model would refuse: no retry


async def test_content_filter_with_no_content_in_a_stream() -> None:
    """A stream that ends on content_filter with no text raises ContentFiltered."""
    sse = (
        b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"content_filter"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    c, _ = over(Response(headers={"Content-Type": "text/event-stream"}, content=sse))
    async with c:
        with pytest.raises(f.ContentFiltered):
            await collect(c)


async def test_a_partial_answer_cut_by_the_filter_is_kept() -> None:
    """Text followed by content_filter is an answer whose finish_reason says so."""
    payload = {"choices": [{"message": {"content": "Here is"}, "finish_reason": "content_filter"}]}
    c, _ = over(Response(json=payload))
    async with c:
        resp = await c.complete(ask())
    assert (resp.text, resp.finish_reason) == ("Here is", "content_filter")


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


async def test_stream_cut_restarts_on_the_same_member(waits: list[float]) -> None:
    """on_interrupt="restart" on a plain client starts over while retries allow."""
    first = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    whole = (
        first + b'data: {"choices":[{"delta":{"content":" b"},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    bodies = iter([first, whole])  # the first stream is cut after one chunk

    def handler(r: Request) -> Response:
        return Response(headers={"Content-Type": "text/event-stream"}, content=next(bodies))

    c = f.OpenAIClient(model="m", transport=MockTransport(handler), max_retries=1)
    async with c:
        events = await collect(c, on_interrupt="restart")
    assert [type(e).__name__ for e in events] == [
        "TextDelta",
        "Restarted",
        "TextDelta",
        "TextDelta",
        "Completed",
    ]
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.text == "a b"
    assert len(waits) == 1


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


async def test_idle_timeout_does_not_run_before_the_first_event(simulator: SimFactory) -> None:
    """A slow prefill longer than idle_timeout is fine while within first_token_timeout."""
    sim = await simulator(m=Fault(reply="a b", first_token_delay=0.4, keepalive=0.05))
    async with oa(sim.base_url, idle_timeout=0.1, first_token_timeout=5, max_retries=0) as c:
        events = await collect(c)
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.text == "a b"


async def test_first_token_timeout_defaults_to_the_attempt_timeout(simulator: SimFactory) -> None:
    """Without first_token_timeout, a stream waits for its first event as long as timeout."""
    sim = await simulator(m=Fault(first_token_delay=5, keepalive=0.02))
    async with oa(sim.base_url, timeout=0.3, max_retries=0) as c:
        with pytest.raises(f.ProviderTimeout, match="first_token_timeout"):
            await collect(c)
