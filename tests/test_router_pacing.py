"""Pacing, rate-limit headers, weighted and latency policies, hedging (docs/routing.md)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import anyio
import pytest

import fallover as f
from fallover.testing import MockAnswer, MockTransport, Request, Response

from .conftest import FakeClock, ask


def ok(text: str) -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        return text

    return handler


def mock(
    alias: str, handler: Callable[[f.ChatRequest], Awaitable[MockAnswer]] | None = None
) -> f.MockClient:
    return f.MockClient(handler or ok(alias), alias=alias)


def router(*members: f.LLMClient, clock: FakeClock, **kw: object) -> f.AsyncRouter:
    store = f.MemoryCooldowns(clock=clock, sleep=clock.sleep)
    return f.AsyncRouter(list(members), store=store, **kw)  # type: ignore[arg-type]


# -- pacing ------------------------------------------------------------------------------


async def test_member_at_its_rpm_is_not_sent_more(clock: FakeClock) -> None:
    """rpm=60 (paced at 90%: 0.9 a second) lets one request through: the next goes to the backup."""
    a, b = mock("p/a"), mock("p/b")
    r = router(a, b, clock=clock, limits={"p/a": f.Pace(rpm=60)})
    aliases = [(await r.complete(ask())).alias for _ in range(3)]
    assert aliases == ["p/a", "p/b", "p/b"]
    clock.advance(1.0)
    assert (await r.complete(ask())).alias == "p/b"  # 0.9 of a request is back, not one
    clock.advance(0.2)
    assert (await r.complete(ask())).alias == "p/a"


async def test_call_waits_for_capacity_within_its_budget(clock: FakeClock) -> None:
    """Every member at its limit: the call waits for capacity instead of failing."""
    a = mock("p/a")
    r = router(a, clock=clock, limits={"p/a": f.Pace(rpm=30)})  # paced at 90%: one per 2.2 s
    await r.complete(ask())
    start = clock.now
    assert (await r.complete(ask())).alias == "p/a"
    assert clock.now - start == pytest.approx(2 / 0.9)
    assert len(a.requests) == 2


async def test_capacity_beyond_the_budget_fails_at_once(clock: FakeClock) -> None:
    """A limit that frees up only after the budget: AllModelsFailed, nothing sent."""
    a = mock("p/a")
    r = router(a, clock=clock, limits={"p/a": f.Pace(rpm=6)}, call_timeout=1)  # one per 10 s
    await r.complete(ask())
    with pytest.raises(f.AllModelsFailed):
        await r.complete(ask())
    assert len(a.requests) == 1


async def test_tokens_per_minute_are_estimated_and_corrected(clock: FakeClock) -> None:
    """tpm counts the prompt before the call and the reported usage after it."""

    async def small_usage(request: f.ChatRequest) -> MockAnswer:
        usage = f.Usage(input_tokens=1, output_tokens=1)
        return f.ChatResponse(text="ok", model="a", alias="p/a", usage=usage)

    a, b = mock("p/a", small_usage), mock("p/b")
    r = router(a, b, clock=clock, limits={"p/a": f.Pace(tpm=6000)})  # paced at 90 a second
    half = ask("x" * 176)  # estimated at 45 tokens: half the second's allowance
    # Each answer reports 2 tokens used: the other 43 are given back at once, so a
    # third call fits where the estimates alone would have spent the allowance.
    assert [(await r.complete(half)).alias for _ in range(3)] == ["p/a"] * 3
    assert (await r.complete(ask("x" * 1000))).alias == "p/b"


def test_pace_refuses_nonsense() -> None:
    """A Pace needs positive whole numbers; limits must name members."""
    with pytest.raises(ValueError, match="rpm"):
        f.Pace(rpm=0)
    with pytest.raises(ValueError, match="p/zzz"):
        f.AsyncRouter([mock("p/a")], limits={"p/zzz": f.Pace(rpm=1)})


# -- the providers' rate-limit headers ------------------------------------------------------


def openai_member(headers: dict[str, str]) -> f.OpenAIClient:
    def handler(request: Request) -> Response:
        body = {
            "id": "c",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
        }
        return Response(200, headers=headers, json=body)

    return f.OpenAIClient(model="m", api_key="k", transport=MockTransport(handler))


async def test_openai_headers_saying_nothing_left_park_until_reset(clock: FakeClock) -> None:
    """x-ratelimit-remaining-requests: 0 parks the member until x-ratelimit-reset-requests."""
    a = openai_member({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"})
    r = router(a, mock("p/b"), clock=clock)
    assert (await r.complete(ask())).alias == "openai/m"  # the answer itself is kept
    assert r.store.remaining("openai/m") == pytest.approx(360)
    assert r.store.streak("openai/m") == 0  # not a failure
    assert (await r.complete(ask())).alias == "p/b"
    await r.aclose()


async def test_openai_headers_with_some_left_park_nothing(clock: FakeClock) -> None:
    """Remaining above zero is no reason to park."""
    a = openai_member({"x-ratelimit-remaining-tokens": "1200", "x-ratelimit-reset-tokens": "0.4s"})
    r = router(a, mock("p/b"), clock=clock)
    await r.complete(ask())
    assert not r.store.has_parks()
    await r.aclose()


async def test_anthropic_headers_saying_nothing_left_park_until_reset(clock: FakeClock) -> None:
    """anthropic-ratelimit-tokens-remaining: 0 parks until the RFC 3339 reset."""
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")

    def handler(request: Request) -> Response:
        body = {
            "id": "msg",
            "type": "message",
            "role": "assistant",
            "model": "c",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        headers = {
            "anthropic-ratelimit-tokens-remaining": "0",
            "anthropic-ratelimit-tokens-reset": reset,
        }
        return Response(200, headers=headers, json=body)

    a = f.AnthropicClient(model="c", api_key="k", transport=MockTransport(handler))
    r = router(a, mock("p/b"), clock=clock)
    await r.complete(ask())
    assert 25 < (r.store.remaining("anthropic/c") or 0) <= 30
    await r.aclose()


# -- policies ------------------------------------------------------------------------------


async def test_weighted_follows_the_weights() -> None:
    """weights 3:1 send about three quarters of the calls to the first member."""
    a, b = mock("p/a"), mock("p/b")
    r = f.AsyncRouter([a, b], policy="weighted", weights=[3, 1], rng=random.Random(7))
    for _ in range(4000):
        await r.complete(ask())
    share = len(a.requests) / 4000
    assert 0.73 <= share <= 0.77


def test_weights_must_match_the_members() -> None:
    """One positive weight per member."""
    with pytest.raises(ValueError, match="2 members"):
        f.AsyncRouter([mock("p/a"), mock("p/b")], policy="weighted", weights=[1])
    with pytest.raises(ValueError, match="weight of p/b"):
        f.AsyncRouter([mock("p/a"), mock("p/b")], policy="weighted", weights=[1, 0])


async def test_latency_prefers_the_faster_member_and_follows_a_change() -> None:
    """latency picks the member with the better recent time to first event."""
    a, b = mock("p/a"), mock("p/b")
    r = f.AsyncRouter([a, b], policy="latency", rng=random.Random(1))
    policy = r.policy
    for _ in range(5):
        policy.finished(a, 0.5)
        policy.finished(b, 0.05)
    picks = [(await r.complete(ask())).alias for _ in range(50)]
    assert picks.count("p/b") >= 45
    for _ in range(20):
        policy.finished(b, 2.0)  # b slows down
    picks = [(await r.complete(ask())).alias for _ in range(50)]
    assert picks.count("p/a") >= 45


async def test_latency_penalises_calls_in_flight() -> None:
    """A fast member with calls in flight yields to an idle one that is nearly as fast."""
    a, b = mock("p/a"), mock("p/b")
    r = f.AsyncRouter([a, b], policy="latency", rng=random.Random(3))
    policy = r.policy
    policy.finished(a, 0.10)
    policy.finished(b, 0.12)
    for _ in range(3):
        policy.started(a)
    order = policy.order([a, b])
    assert order[0] is b


# -- hedging -------------------------------------------------------------------------------


async def hang(request: f.ChatRequest) -> MockAnswer:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def test_hedge_asks_the_next_member_and_the_first_answer_wins() -> None:
    """A primary silent past hedge_after: the backup is asked too and its answer wins."""
    a, b = mock("p/a", hang), mock("p/b")
    r = f.AsyncRouter([a, b], hedge_after=0.01)
    with anyio.fail_after(5):
        resp = await r.complete(ask())
    assert resp.alias == "p/b"
    assert [(x.alias, x.outcome) for x in resp.attempts] == [("p/a", "error"), ("p/b", "ok")]
    assert "hedge" in (resp.attempts[0].error or "")
    assert not r.store.has_parks()  # the loser is cancelled, not parked


async def test_no_hedge_when_the_primary_answers_in_time() -> None:
    """A primary that answers before hedge_after: nobody else is asked."""
    a, b = mock("p/a"), mock("p/b")
    r = f.AsyncRouter([a, b], hedge_after=10)
    assert (await r.complete(ask())).alias == "p/a"
    assert b.requests == []


async def test_at_most_one_hedge_per_call() -> None:
    """Two silent members: the third is never asked; the budget ends the call."""
    a, b, c = mock("p/a", hang), mock("p/b", hang), mock("p/c")
    r = f.AsyncRouter([a, b, c], hedge_after=0.01, call_timeout=0.3)
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout) as info:
        await r.complete(ask())
    assert c.requests == []
    assert len(b.requests) == 1
    assert not r.store.has_parks()
    assert [x.alias for x in info.value.attempts] == ["p/a", "p/b"]


async def test_hedged_primary_failing_leaves_the_hedge_running() -> None:
    """The primary fails after the hedge started: it is parked, the hedge still answers."""
    release = anyio.Event()

    async def slow_then_fail(request: f.ChatRequest) -> MockAnswer:
        await release.wait()
        raise f.ServerFailed("boom", status=503)

    async def slow_ok(request: f.ChatRequest) -> MockAnswer:
        release.set()
        await anyio.sleep(0)
        return "late but fine"

    a, b = mock("p/a", slow_then_fail), mock("p/b", slow_ok)
    r = f.AsyncRouter([a, b], hedge_after=0.01)
    with anyio.fail_after(5):
        resp = await r.complete(ask())
    assert resp.alias == "p/b"
    assert r.store.remaining("p/a") is not None


async def test_config_fields_reach_the_router(tmp_path: object) -> None:
    """rpm, tpm, weight and hedge_after in the config are the router's limits, weights and hedge."""
    from pathlib import Path

    path = Path(str(tmp_path)) / "fallover.toml"
    path.write_text(
        """
[providers.a]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
model = "ma"
rpm = 60
tpm = 1000
[providers.b]
protocol = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key = "k"
model = "mb"
[routing]
policy = "weighted"
hedge_after = 0.5
models = [{ provider = "a", weight = 3 }, { provider = "b" }]
"""
    )
    path.chmod(0o600)
    r = f.build_client(f.load_config(path))
    assert isinstance(r, f.AsyncRouter)
    assert r.limits == {"a/ma": f.Pace(rpm=60, tpm=1000)}
    assert r.weights == (3.0, 1.0)
    assert r.hedge_after == 0.5
    await r.aclose()


async def test_limits_announced_by_headers_are_learned(clock: FakeClock) -> None:
    """Headers saying one request is left: one more is sent, then the backup takes over."""
    a = openai_member(
        {
            "x-ratelimit-limit-requests": "10",
            "x-ratelimit-remaining-requests": "1",
            "x-ratelimit-reset-requests": "1s",
        }
    )
    r = router(a, mock("p/b"), clock=clock)
    aliases = [(await r.complete(ask())).alias for _ in range(3)]
    assert aliases == ["openai/m", "openai/m", "p/b"]
    assert not r.store.has_parks()
    await r.aclose()


async def test_a_hedge_that_rejects_the_request_raises_it_as_it_is() -> None:
    """The hedge answering 400 raises BadRequest itself (not wrapped), the primary cancelled."""

    async def bad(request: f.ChatRequest) -> MockAnswer:
        raise f.BadRequest("bad", status=400)

    a, b = mock("p/a", hang), mock("p/b", bad)
    r = f.AsyncRouter([a, b], hedge_after=0.01)
    with anyio.fail_after(5), pytest.raises(f.BadRequest):
        await r.complete(ask())
    assert not r.store.has_parks()


def streaming(*parts: str) -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        async def gen() -> AsyncIterator[str]:
            for p in parts:
                yield p

        return gen()

    return handler


async def test_stream_hedge_first_event_wins() -> None:
    """A stream whose member is silent past hedge_after: the hedge's first event wins."""
    a, b = mock("p/a", hang), mock("p/b", streaming("he", "llo"))
    r = f.AsyncRouter([a, b], hedge_after=0.01)
    with anyio.fail_after(5):
        events = [x async for x in r.stream(ask())]
    assert [type(x) for x in events] == [f.TextDelta, f.TextDelta, f.Completed]
    done = events[-1]
    assert isinstance(done, f.Completed) and done.response.text == "hello"
    assert [(x.alias, x.outcome) for x in done.response.attempts] == [
        ("p/a", "error"),
        ("p/b", "ok"),
    ]
    assert not r.store.has_parks()


async def test_stream_without_hedge_need_asks_one_member() -> None:
    """A stream whose member answers before hedge_after: nobody else is asked."""
    a, b = mock("p/a", streaming("fine")), mock("p/b")
    r = f.AsyncRouter([a, b], hedge_after=10)
    with anyio.fail_after(5):
        events = [x async for x in r.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed) and done.response.alias == "p/a"
    assert b.requests == []
