"""The transport beneath the clients: stream clocks, keep-alives, and the mock transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import fallover as f
import fallover.testing
from fallover.testing import MockTransport, Request, Response

from .conftest import ask

SSE = {"Content-Type": "text/event-stream"}


def chunk(text: str, finish: str | None = None) -> bytes:
    finish_json = f'"{finish}"' if finish else "null"
    return (
        f'data: {{"choices":[{{"delta":{{"content":"{text}"}},"finish_reason":{finish_json}}}]}}\n\n'
    ).encode()


def streaming(*parts: bytes, then_silence: bool = True) -> AsyncIterator[bytes]:
    """Send ``parts``, then stay silent until cancelled."""

    async def gen() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
        if then_silence:
            await anyio.sleep_forever()

    return gen()


def client(body: AsyncIterator[bytes], **kw: object) -> f.OpenAIClient:
    return f.OpenAIClient(
        model="m",
        transport=MockTransport(lambda r: Response(headers=SSE, content=body)),
        max_retries=0,
        **kw,  # type: ignore[arg-type]
    )


async def collect(c: f.LLMClient) -> list[f.StreamEvent]:
    with anyio.fail_after(5):
        return [e async for e in c.stream(ask())]


async def test_first_token_timeout_ignores_keepalives() -> None:
    """Comments before the first event do not extend the first-token deadline."""
    c = client(streaming(b": ping\n\n", b": ping\n\n"), first_token_timeout=0.05)
    with pytest.raises(f.ProviderTimeout, match="first_token_timeout"):
        await collect(c)


async def test_idle_timeout_after_the_first_event() -> None:
    """After an event, silence longer than idle_timeout is a stall."""
    c = client(streaming(chunk("a")), idle_timeout=0.05)
    with pytest.raises(f.StreamInterrupted) as info:
        await collect(c)
    assert info.value.partial_text == "a"
    assert isinstance(info.value.error, f.ProviderTimeout)
    assert "idle_timeout" in str(info.value.error)


async def test_keepalives_do_not_keep_a_stalled_stream_open() -> None:
    """Comments after the first event do not reset the idle clock."""

    async def pings() -> AsyncIterator[bytes]:
        yield chunk("a")
        while True:
            await anyio.sleep(0.01)
            yield b": keep-alive\n\n"

    c = client(pings(), idle_timeout=0.1)
    with pytest.raises(f.StreamInterrupted) as info:
        await collect(c)
    assert isinstance(info.value.error, f.ProviderTimeout)


async def test_a_late_trailer_after_the_finish_is_still_an_answer() -> None:
    """A finish reason and then silence: the answer is whole after a short grace."""
    c = client(streaming(chunk("a"), chunk(" b", "stop")))
    events = await collect(c)
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.text == "a b"


async def test_a_stream_without_its_end_is_never_a_success() -> None:
    """A body that ends with no finish and no terminal event is ConnectionFailed."""
    c = client(streaming(chunk("a"), then_silence=False))
    with pytest.raises(f.StreamInterrupted) as info:
        await collect(c)
    assert isinstance(info.value.error, f.ConnectionFailed)
    assert "terminal event" in str(info.value.error)


async def test_mock_transport_takes_async_handlers_and_records_requests() -> None:
    """An async handler is awaited; each request keeps method, url, headers and JSON body."""

    async def handler(r: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        return Response(json={"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})

    transport = MockTransport(handler)
    async with f.OpenAIClient(model="m", api_key="k-1", transport=transport) as c:
        resp = await c.complete(ask("hello"))
    assert resp.text == "ok"
    (sent,) = transport.requests
    assert sent.method == "POST"
    assert sent.json()["messages"] == [{"role": "user", "content": "hello"}]
    assert sent.headers["content-type"] == "application/json"
    assert "k-1" not in repr(sent)


async def test_mock_transport_refuses_what_is_not_a_response() -> None:
    """A handler that returns something else is a TypeError naming it, never a provider fault."""
    transport = MockTransport(lambda r: {"choices": []})  # type: ignore[arg-type, return-value]
    async with f.OpenAIClient(model="m", transport=transport) as c:
        with pytest.raises(TypeError, match=r"expected fallover\.testing\.Response"):
            await c.complete(ask())


def test_response_validates_its_arguments() -> None:
    """A bad status or body is refused at construction, naming the argument."""
    with pytest.raises(ValueError, match="status"):
        Response(1000)
    with pytest.raises(TypeError, match="content"):
        Response(200, content=42)  # type: ignore[arg-type]


async def test_set_testing_makes_waits_instant_and_records_them() -> None:
    """set_testing(True) as a context manager records the waits and restores real ones."""
    transport = MockTransport(lambda r: Response(503, headers={"Retry-After": "7"}))
    async with f.OpenAIClient(model="m", transport=transport, max_retries=2) as c:
        with (
            fallover.testing.set_testing(True) as waits,
            anyio.fail_after(2),
            pytest.raises(f.ServerFailed),
        ):
            await c.complete(ask())
    assert waits == [7.0, 7.0]
    assert len(transport.requests) == 3


def test_testing_names_are_public() -> None:
    """The testing kit's classes report their public module."""
    for cls in (MockTransport, Request, Response, fallover.testing.MockClient):
        assert cls.__module__ == "fallover.testing", cls


def thinking(text: str) -> bytes:
    return f'data: {{"choices":[{{"delta":{{"reasoning_content":"{text}"}}}}]}}\n\n'.encode()


async def test_reasoning_is_the_first_event_for_first_token_timeout() -> None:
    """A model thinking aloud past first_token_timeout is alive: its reasoning is an event."""

    async def slow_thinker() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield thinking("hmm")
            await anyio.sleep(0.05)
        yield chunk("done", "stop")
        yield b"data: [DONE]\n\n"

    c = client(slow_thinker(), first_token_timeout=0.1, idle_timeout=1)
    events = await collect(c)
    assert [type(e).__name__ for e in events[:2]] == ["ReasoningDelta", "ReasoningDelta"]
    assert isinstance(events[-1], f.Completed)
    assert events[-1].response.text == "done"
    assert events[-1].response.reasoning == "hmm" * 6


async def test_a_failure_after_reasoning_is_an_interruption() -> None:
    """The free fallover window ends at the first delta of any kind, reasoning included."""
    c = client(streaming(thinking("hmm"), then_silence=False))
    with pytest.raises(f.StreamInterrupted) as info:
        await collect(c)
    assert info.value.partial_text == ""
    assert isinstance(info.value.error, f.ConnectionFailed)
