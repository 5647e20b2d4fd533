"""AsyncRouter semantics (DESIGN section 3) with scripted members."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
from anyio import wait_all_tasks_blocked

import fallover as f
from fallover.testing import MockAnswer

from .conftest import FakeClock, ask


def ok(text: str = "fine") -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        return text

    return handler


def fail(exc: Exception) -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        raise exc

    return handler


def mock(
    alias: str,
    handler: Callable[[f.ChatRequest], Awaitable[MockAnswer]] | None = None,
    **kw: object,
) -> f.MockClient:
    return f.MockClient(handler or ok(alias), alias=alias, **kw)  # type: ignore[arg-type]


def router(*members: f.LLMClient, clock: FakeClock | None = None, **kw: object) -> f.AsyncRouter:
    store = f.MemoryCooldowns(clock=clock, sleep=clock.sleep) if clock else None
    return f.AsyncRouter(list(members), store=store, **kw)  # type: ignore[arg-type]


# -- order --------------------------------------------------------------------------


async def test_priority_uses_the_first_member() -> None:
    """Priority sends every call to the first healthy member."""
    a, b = mock("p/a"), mock("p/b")
    r = router(a, b)
    for _ in range(3):
        assert (await r.complete(ask())).text == "p/a"
    assert (len(a.requests), len(b.requests)) == (3, 0)


async def test_round_robin_rotates() -> None:
    """Round-robin starts each call at the next member."""
    members = [mock(f"p/{i}") for i in range(3)]
    r = router(*members, policy="round-robin")
    texts = [(await r.complete(ask())).text for _ in range(6)]
    assert texts == ["p/0", "p/1", "p/2"] * 2


def test_unknown_policy_lists_valid_ones() -> None:
    """A bad policy is a ValueError naming the choices."""
    with pytest.raises(ValueError, match="priority, round-robin, weighted or latency"):
        f.AsyncRouter([mock("p/a")], policy="fastest")  # type: ignore[arg-type]


def test_duplicate_members_are_refused() -> None:
    """Two members with one alias would share a park: refuse."""
    with pytest.raises(ValueError, match="duplicate"):
        f.AsyncRouter([mock("p/a"), mock("p/a")])


# -- verdicts ------------------------------------------------------------------------


async def test_bad_request_is_raised_and_backup_never_called() -> None:
    """A 400 is the request's fault: raised as is, nobody else asked, nothing parked."""
    a, b = mock("p/a", fail(f.BadRequest("bad", alias="p/a", status=400))), mock("p/b")
    r = router(a, b)
    with pytest.raises(f.BadRequest):
        await r.complete(ask())
    assert b.requests == []
    assert not r.store.has_parks()


async def test_content_filter_is_raised() -> None:
    """Content filtering is raised after one attempt."""
    a, b = mock("p/a", fail(f.ContentFiltered("no"))), mock("p/b")
    with pytest.raises(f.ContentFiltered):
        await router(a, b).complete(ask())
    assert b.requests == []


async def test_context_too_long_goes_to_a_larger_window() -> None:
    """ContextTooLong skips members whose window is not larger."""
    a = mock("p/a", fail(f.ContextTooLong("long")), context_window=8000)
    b = mock("p/b", context_window=8000)
    c = mock("p/c", context_window=128000)
    resp = await router(a, b, c).complete(ask())
    assert resp.alias == "p/c"
    assert b.requests == []
    assert [(x.alias, x.outcome) for x in resp.attempts] == [
        ("p/a", "error"),
        ("p/b", "skipped"),
        ("p/c", "ok"),
    ]


async def test_context_too_long_without_larger_window_is_raised() -> None:
    """With no larger declared window, ContextTooLong is raised."""
    a = mock("p/a", fail(f.ContextTooLong("long")), context_window=8000)
    b = mock("p/b")
    with pytest.raises(f.ContextTooLong):
        await router(a, b).complete(ask())
    assert b.requests == []


async def test_auth_failure_parks_long(clock: FakeClock) -> None:
    """AuthFailed parks the member for cooldown_max."""
    a, b = mock("p/a", fail(f.AuthFailed("key"))), mock("p/b")
    r = router(a, b, clock=clock, cooldown=5, cooldown_max=60)
    assert (await r.complete(ask())).alias == "p/b"
    assert r.store.remaining("p/a") == 60


async def test_transient_failures_park_with_doubling_backoff(clock: FakeClock) -> None:
    """Consecutive parks double from cooldown up to cooldown_max; success resets."""
    healthy = {"on": False}

    async def flaky(request: f.ChatRequest) -> MockAnswer:
        if healthy["on"]:
            return "back"
        raise f.ServerFailed("500")

    a, b = mock("p/a", flaky), mock("p/b")
    r = router(a, b, clock=clock, cooldown=5, cooldown_max=30)
    lengths = []
    for _ in range(5):
        await r.complete(ask())
        lengths.append(r.store.remaining("p/a"))
        clock.advance(100)
    assert lengths == [5, 10, 20, 30, 30]
    healthy["on"] = True
    assert (await r.complete(ask())).alias == "p/a"
    assert r.store.streak("p/a") == 0


async def test_retry_after_longer_than_backoff_wins(clock: FakeClock) -> None:
    """The park is the larger of Retry-After and the backoff."""
    a, b = mock("p/a", fail(f.RateLimited("429", retry_after=42))), mock("p/b")
    r = router(a, b, clock=clock)
    await r.complete(ask())
    assert r.store.remaining("p/a") == 42


async def test_unknown_exception_falls_over_and_parks(caplog: pytest.LogCaptureFixture) -> None:
    """A bug-like exception from a member falls over, parks, and is logged."""
    a, b = mock("p/a", fail(RuntimeError("boom"))), mock("p/b")
    r = router(a, b)
    assert (await r.complete(ask())).alias == "p/b"
    assert r.store.remaining("p/a") is not None
    assert "RuntimeError" in caplog.text


async def test_parked_members_are_never_tried_while_parked(clock: FakeClock) -> None:
    """Parked members are skipped (summarised in one attempt), never tried as a last resort."""
    a, b, c = mock("p/a"), mock("p/b"), mock("p/c")
    r = router(a, b, c, clock=clock)
    r.store.park("p/a", 50)
    r.store.park("p/b", 10)
    resp = await r.complete(ask())
    assert resp.alias == "p/c"
    assert (a.requests, b.requests) == ([], [])
    assert [(x.alias, x.outcome) for x in resp.attempts] == [
        ("p/a, p/b", "skipped"),
        ("p/c", "ok"),
    ]
    assert "2 parked (soonest back in 10.0s)" in (resp.attempts[0].error or "")


async def test_all_failed_lists_every_member_and_soonest_retry(clock: FakeClock) -> None:
    """AllModelsFailed names each member's error and the soonest recovery."""
    a = mock("p/a", fail(f.RateLimited("slow down", alias="p/a", status=429, retry_after=20)))
    b = mock("p/b", fail(f.ServerFailed("boom", alias="p/b", status=503)))
    r = router(a, b, clock=clock, cooldown=5, call_timeout=1)
    with pytest.raises(f.AllModelsFailed) as info:
        await r.complete(ask())
    err = info.value
    assert [(x.alias, x.status) for x in err.attempts] == [("p/a", 429), ("p/b", 503)]
    assert "p/a" in str(err) and "p/b" in str(err)
    assert err.retry_after == 5


async def test_callers_model_is_not_sent() -> None:
    """ChatRequest.model never reaches members; each answers as itself."""
    a = mock("p/a", fail(f.ServerFailed("x")))
    b = mock("q/b")
    req = f.ChatRequest(messages=ask().messages, model="provider-a-model")
    resp = await router(a, b).complete(req)
    assert resp.alias == "q/b" and resp.model == "b"


async def test_attempts_record_the_fallover() -> None:
    """The response says who answered and what failed before."""
    a = mock("p/a", fail(f.RateLimited("429", status=429)))
    resp = await router(a, mock("p/b")).complete(ask())
    assert resp.alias == "p/b"
    assert [(x.alias, x.outcome, x.status) for x in resp.attempts] == [
        ("p/a", "error", 429),
        ("p/b", "ok", None),
    ]
    assert "RateLimited" in (resp.attempts[0].error or "")


async def test_nested_pools() -> None:
    """A router is an LLMClient: pools nest and attempts flow up."""
    inner = f.AsyncRouter([mock("p/a", fail(f.ServerFailed("x"))), mock("p/b")], name="inner")
    outer = f.AsyncRouter([inner, mock("p/c")])
    resp = await outer.complete(ask())
    assert resp.alias == "p/b"
    assert [x.alias for x in resp.attempts] == ["p/a", "p/b"]


# -- half-open probe ----------------------------------------------------------------


async def test_exactly_one_of_100_concurrent_calls_probes(clock: FakeClock) -> None:
    """After a park expires, one call probes; 99 others skip to the backup."""
    release = anyio.Event()
    probes = 0

    async def recovering(request: f.ChatRequest) -> MockAnswer:
        nonlocal probes
        probes += 1
        await release.wait()
        return "recovered"

    a, b = mock("p/a", recovering), mock("p/b")
    r = router(a, b, clock=clock)
    r.store.park("p/a", 5)
    clock.advance(6)
    results: list[str] = []

    async def call() -> None:
        results.append((await r.complete(ask())).alias)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(call)
            await wait_all_tasks_blocked()
            assert probes == 1
            assert results.count("p/b") == 99
            release.set()
    assert probes == 1
    assert results.count("p/a") == 1
    assert (await r.complete(ask())).alias == "p/a"  # live again


async def test_failed_probe_parks_longer(clock: FakeClock) -> None:
    """A probe that fails parks the member again with a longer cooldown."""
    a, b = mock("p/a", fail(f.ServerFailed("x"))), mock("p/b")
    r = router(a, b, clock=clock, cooldown=5)
    await r.complete(ask())
    assert r.store.remaining("p/a") == 5
    clock.advance(6)
    await r.complete(ask())
    assert r.store.remaining("p/a") == 10
    assert len(a.requests) == 2


# -- budgets and cancellation ----------------------------------------------------------


async def hang(request: f.ChatRequest) -> MockAnswer:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


async def test_call_timeout_raises_routing_timeout_and_parks_nothing() -> None:
    """When the budget runs out mid-attempt, RoutingTimeout names it; nothing is parked."""
    a, b = mock("p/a", fail(f.ServerFailed("x"))), mock("p/b", hang)
    r = router(a, b, call_timeout=0.1)
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout) as info:
        await r.complete(ask())
    assert [(x.alias, x.outcome) for x in info.value.attempts] == [
        ("p/a", "error"),
        ("p/b", "error"),
    ]
    assert "call_timeout" in (info.value.attempts[-1].error or "")
    assert r.store.remaining("p/b") is None
    assert r.store.remaining("p/a") is not None


async def test_cancel_during_attempt_propagates_untouched() -> None:
    """Cancelling the caller mid-attempt: no fallover, nothing parked."""
    started = anyio.Event()

    async def slow(request: f.ChatRequest) -> MockAnswer:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    a, b = mock("p/a", slow), mock("p/b")
    r = router(a, b)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(r.complete, ask())
            await started.wait()
            tg.cancel_scope.cancel()
    assert b.requests == []
    assert not r.store.has_parks()


async def test_cancel_before_call() -> None:
    """A call made in an already-cancelled scope reaches no member."""
    a = mock("p/a")
    r = router(a, mock("p/b"))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await r.complete(ask())
    assert scope.cancelled_caught
    assert a.requests == []


async def test_cancel_between_attempts() -> None:
    """A cancel arriving after one member failed stops the walk there."""
    scope = anyio.CancelScope()

    async def fail_and_cancel(request: f.ChatRequest) -> MockAnswer:
        scope.cancel()
        raise f.ServerFailed("x")

    a, b = mock("p/a", fail_and_cancel), mock("p/b", hang)
    r = router(a, b)
    with scope:
        await r.complete(ask())
    assert b.requests == []
    assert r.store.remaining("p/b") is None


async def test_cancel_releases_a_held_probe(clock: FakeClock) -> None:
    """A probing call that is cancelled gives the probe back."""
    a, b = mock("p/a", hang), mock("p/b")
    r = router(a, b, clock=clock)
    r.store.park("p/a", 1)
    clock.advance(2)
    with anyio.move_on_after(0.05):
        await r.complete(ask())
    assert await r.store.begin_probe("p/a") is True


# -- streams -----------------------------------------------------------------------


def pieces(
    *parts: str, then: Exception | None = None
) -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        async def gen() -> AsyncIterator[str]:
            for p in parts:
                yield p
            if then is not None:
                raise then

        return gen()

    return handler


async def events_of(r: f.AsyncRouter, **kw: object) -> list[f.StreamEvent]:
    with anyio.fail_after(5):
        return [e async for e in r.stream(ask(), **kw)]  # type: ignore[arg-type]


async def test_stream_falls_over_freely_before_text() -> None:
    """A failure before the first TextDelta falls over silently."""
    a = mock("p/a", pieces(then=f.ServerFailed("x")))
    b = mock("p/b", pieces("he", "llo"))
    events = await events_of(router(a, b))
    assert [type(e) for e in events] == [f.TextDelta, f.TextDelta, f.Completed]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.alias == "p/b" and done.response.text == "hello"
    assert [x.outcome for x in done.response.attempts] == ["error", "ok"]


async def test_stream_interrupted_after_text() -> None:
    """After text, on_interrupt="error" raises StreamInterrupted with the partial text."""
    a = mock("p/a", pieces("par", "tial", then=f.ConnectionFailed("cut")))
    b = mock("p/b")
    r = router(a, b)
    with pytest.raises(f.StreamInterrupted) as info:
        await events_of(r)
    assert info.value.partial_text == "partial"
    assert isinstance(info.value.error, f.ConnectionFailed)
    assert b.requests == []
    assert r.store.remaining("p/a") is not None


async def test_stream_restart_streams_afresh_from_the_next_member() -> None:
    """on_interrupt="restart" yields Restarted then a whole answer from the next member."""
    a = mock("p/a", pieces("par", then=f.ConnectionFailed("cut")))
    b = mock("p/b", pieces("whole ", "answer"))
    events = await events_of(router(a, b), on_interrupt="restart")
    assert [type(e).__name__ for e in events] == [
        "TextDelta",
        "Restarted",
        "TextDelta",
        "TextDelta",
        "Completed",
    ]
    restarted = events[1]
    assert isinstance(restarted, f.Restarted) and restarted.alias == "p/a"
    done = events[-1]
    assert isinstance(done, f.Completed) and done.response.text == "whole answer"
    # never a prefill: b saw only the caller's messages
    assert b.requests[0].messages == ask().messages


async def test_stream_call_timeout() -> None:
    """A stream that outlives call_timeout raises RoutingTimeout."""
    r = router(mock("p/a", hang), mock("p/b"), call_timeout=0.1)
    with pytest.raises(f.RoutingTimeout):
        await events_of(r)
    assert r.store.remaining("p/a") is None


async def test_stream_exhaustion() -> None:
    """Every member failing before text, parked beyond the budget, is AllModelsFailed."""
    r = router(
        mock("p/a", pieces(then=f.ServerFailed("x"))),
        mock("p/b", pieces(then=f.ServerFailed("y"))),
        call_timeout=1,
    )
    with pytest.raises(f.AllModelsFailed):
        await events_of(r)


async def test_aclose_closes_members() -> None:
    """Closing the router closes every member."""
    a, b = mock("p/a"), mock("p/b")
    async with router(a, b):
        pass
    assert a.closed and b.closed


async def test_repr_shows_configuration() -> None:
    """The repr lists members and policy."""
    assert "p/a" in repr(router(mock("p/a"), mock("p/b"))) and "priority" in repr(
        router(mock("p/a"))
    )


async def test_healthy_calls_park_nothing() -> None:
    """Healthy calls leave the parks table empty (the fast path stays fast)."""
    r = router(mock("p/a"), mock("p/b"))
    for _ in range(3):
        await r.complete(ask())
    assert not r.store.has_parks() and r.store.streak("p/a") == 0


async def test_aclose_closes_every_member_even_if_one_fails() -> None:
    """A member that fails to close does not leave the others open."""

    a, b = mock("p/a"), mock("p/b")

    async def boom() -> None:
        raise RuntimeError("close failed")

    a.aclose = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="close failed"):
        await router(a, b).aclose()
    assert b.closed


# -- misuse ---------------------------------------------------------------------------


async def test_closed_router_raises_runtime_error_and_parks_nothing() -> None:
    """complete() after aclose() is misuse: RuntimeError, no member asked, nothing parked."""
    a, b = mock("p/a"), mock("p/b")
    r = router(a, b)
    await r.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await r.complete(ask())
    assert (a.requests, b.requests) == ([], [])
    assert not r.store.has_parks()


async def test_closed_router_stream_raises_runtime_error() -> None:
    """stream() after aclose() is misuse too."""
    r = router(mock("p/a"), mock("p/b"))
    await r.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await events_of(r)
    assert not r.store.has_parks()


def test_queries_start_nothing() -> None:
    """has_parks() and remaining() outside an event loop neither fail nor start anything."""
    r = router(mock("p/a"), mock("p/b"))
    assert r.store.has_parks() is False
    assert r.store.remaining("p/a") is None


# -- capabilities ----------------------------------------------------------------------


class Limited:
    """A member that lacks some capabilities: a MockClient behind a narrower ``unfit``."""

    def __init__(self, inner: f.MockClient, capabilities: frozenset[str]) -> None:
        self.inner = inner
        self._capabilities = capabilities
        self.alias = inner.alias
        self.context_window = inner.context_window

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    def unfit(self, request: f.ChatRequest) -> str | None:
        missing = request.needs - self._capabilities
        return f"cannot take {', '.join(sorted(missing))}" if missing else None

    async def complete(self, request: f.ChatRequest) -> f.ChatResponse:
        return await self.inner.complete(request)

    def stream(
        self, request: f.ChatRequest, *, on_interrupt: str = "error"
    ) -> AsyncIterator[f.StreamEvent]:
        return self.inner.stream(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Limited:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def with_tools() -> f.ChatRequest:
    tool = f.Tool(name="read_file", description="Read a file", parameters={"type": "object"})
    return f.ChatRequest(messages=ask().messages, tools=[tool])


async def test_member_without_a_capability_is_skipped_with_the_reason() -> None:
    """A request needing tools skips a member without them; the attempt says why."""
    a = mock("p/a")
    b = mock("p/b")
    r = router(Limited(a, frozenset()), b)  # type: ignore[arg-type]
    resp = await r.complete(with_tools())
    assert resp.alias == "p/b" and a.requests == []
    assert [(x.alias, x.outcome, x.error) for x in resp.attempts] == [
        ("p/a", "skipped", "cannot take tools"),
        ("p/b", "ok", None),
    ]


async def test_no_member_can_take_it_raises_unsupported_sending_nothing() -> None:
    """When no member has what the request needs, Unsupported names the need; nothing is sent."""
    a, b = mock("p/a"), mock("p/b")
    r = router(Limited(a, frozenset({"vision"})), Limited(b, frozenset()))  # type: ignore[arg-type]
    with pytest.raises(f.Unsupported, match="no member can take tools") as info:
        await r.complete(with_tools())
    assert "p/a: cannot take tools" in str(info.value)
    assert (a.requests, b.requests) == ([], [])
    assert not r.store.has_parks()


# -- newer news (stale successes and failures) -----------------------------------------


async def test_stale_success_does_not_unpark(clock: FakeClock) -> None:
    """A success whose attempt began before the member was parked leaves the park in place."""
    slow_started = anyio.Event()
    release = anyio.Event()

    async def primary(request: f.ChatRequest) -> MockAnswer:
        if request.messages[0].content == "slow":
            slow_started.set()
            await release.wait()
            return "slow answer"
        raise f.RateLimited("429", status=429, retry_after=30)

    a, b = mock("p/a", primary), mock("p/b")
    r = router(a, b, clock=clock)
    results: list[str] = []

    async def slow() -> None:
        results.append((await r.complete(ask("slow"))).alias)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            await slow_started.wait()
            clock.advance(0.1)
            assert (await r.complete(ask("fast"))).alias == "p/b"  # parks p/a for 30 s
            clock.advance(0.2)
            release.set()
    assert results == ["p/a"]
    assert r.store.remaining("p/a") == pytest.approx(29.8)
    assert (await r.complete(ask("next"))).alias == "p/b"


async def test_failures_in_flight_together_park_once(clock: FakeClock) -> None:
    """Twenty requests in flight when a member starts failing park it once, not twenty times."""
    gate = anyio.Event()

    async def throttled(request: f.ChatRequest) -> MockAnswer:
        await gate.wait()
        raise f.RateLimited("429", status=429, retry_after=2)

    a, b = mock("p/a", throttled), mock("p/b")
    r = router(a, b, clock=clock, cooldown=5, cooldown_max=60)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(r.complete, ask())
            await wait_all_tasks_blocked()
            clock.advance(0.01)
            gate.set()
    assert len(a.requests) == 20
    assert r.store.remaining("p/a") == pytest.approx(5 - 0.0, abs=0.02)
    assert r.store.streak("p/a") == 1


# -- all parked --------------------------------------------------------------------------


async def test_all_parked_beyond_the_budget_fails_at_once_sending_nothing(
    clock: FakeClock,
) -> None:
    """Every member parked past the budget: AllModelsFailed with retry_after, nothing sent."""
    a, b = mock("p/a"), mock("p/b")
    r = router(a, b, clock=clock, call_timeout=10)
    r.store.park("p/a", 50)
    r.store.park("p/b", 20)
    with pytest.raises(f.AllModelsFailed) as info:
        await r.complete(ask())
    assert info.value.retry_after == 20
    assert (a.requests, b.requests) == ([], [])
    assert clock.slept == []


async def test_all_parked_waits_for_the_soonest_then_probes_it(clock: FakeClock) -> None:
    """Every member parked within the budget: the call waits for the soonest and asks it."""
    a, b = mock("p/a"), mock("p/b")
    r = router(a, b, clock=clock, call_timeout=10)
    r.store.park("p/a", 50)
    r.store.park("p/b", 3)
    resp = await r.complete(ask())
    assert resp.alias == "p/b"
    assert clock.now == 1003.0
    assert (len(a.requests), len(b.requests)) == (0, 1)
    assert r.store.remaining("p/b") is None and not r.store.half_open("p/b")


async def test_waiting_calls_follow_one_probe(clock: FakeClock) -> None:
    """A hundred calls waiting on an all-parked pool send one probe, then all are answered."""
    release = anyio.Event()

    async def recovering(request: f.ChatRequest) -> MockAnswer:
        await release.wait()
        return "back"

    a, b = mock("p/a", recovering), mock("p/b", fail(f.ServerFailed("down")))
    # Real waits on a fake clock: only the probe's outcome can wake the followers.
    store = f.MemoryCooldowns(clock=clock)
    r = f.AsyncRouter([a, b], store=store, call_timeout=30)
    store.park("p/a", 2)
    store.park("p/b", 60)
    clock.advance(3)
    results: list[str] = []

    async def call() -> None:
        results.append((await r.complete(ask())).alias)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(call)
            await wait_all_tasks_blocked()
            assert len(a.requests) == 1  # the probe; 99 calls follow it
            release.set()
    assert results == ["p/a"] * 100
    assert len(a.requests) == 100 and b.requests == []


async def test_failed_probe_sends_the_waiting_calls_back_to_waiting(clock: FakeClock) -> None:
    """When the probe fails, the waiters do not pile onto the member: it is parked again."""
    calls = 0

    async def still_down(request: f.ChatRequest) -> MockAnswer:
        nonlocal calls
        calls += 1
        raise f.RateLimited("429", status=429)

    a = mock("p/a", still_down)
    r = router(a, clock=clock, call_timeout=12, cooldown=5, cooldown_max=60)
    r.store.park("p/a", 1)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(lambda: _swallow(r.complete(ask())))
    # probes at t+1 (park 10: streak 2 after the manual park) then t+11 (park 20): past the budget
    assert calls == 2


async def _swallow(call: Awaitable[object]) -> None:
    with pytest.raises(f.AllModelsFailed):
        await call


async def test_unusable_parks_are_not_waited_for(clock: FakeClock) -> None:
    """A member parked for auth or quota is not waited for: AllModelsFailed at once."""
    a = mock("p/a", fail(f.AuthFailed("bad key", status=401)))
    b = mock("p/b", fail(f.QuotaExhausted("no credit", status=402)))
    r = router(a, b, clock=clock, call_timeout=600, cooldown_max=60)
    with pytest.raises(f.AllModelsFailed):
        await r.complete(ask())
    assert clock.slept == []
    assert (len(a.requests), len(b.requests)) == (1, 1)


async def test_thousand_member_pool_summarises_parked_skips(clock: FakeClock) -> None:
    """999 parked members are one skipped Attempt, not 999."""
    members = [mock(f"p/{i:04d}") for i in range(1000)]
    r = router(*members, clock=clock)
    for m in members[:-1]:
        r.store.park(m.alias, 30)
    for _ in range(3):
        resp = await r.complete(ask())
        assert resp.alias == "p/0999"
        assert len(resp.attempts) == 2
        skipped = resp.attempts[0]
        assert skipped.outcome == "skipped"
        assert skipped.alias == "p/0000, p/0001, p/0002 and 996 more"
        assert skipped.error == "999 parked (soonest back in 30.0s)"


# -- the call budget over a stream -------------------------------------------------------


def text_then_hang(*parts: str) -> Callable[[f.ChatRequest], Awaitable[MockAnswer]]:
    async def handler(request: f.ChatRequest) -> MockAnswer:
        async def gen() -> AsyncIterator[str]:
            for p in parts:
                yield p
            await anyio.sleep_forever()

        return gen()

    return handler


async def test_stream_budget_runs_out_mid_stream() -> None:
    """A member that goes silent after text, past call_timeout: RoutingTimeout, not parked."""
    r = router(mock("p/a", text_then_hang("par", "tial")), mock("p/b"), call_timeout=0.2)
    got: list[f.StreamEvent] = []
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout) as info:
        async for event in r.stream(ask()):
            got.append(event)
    assert [type(x) for x in got] == [f.TextDelta, f.TextDelta]
    assert "call_timeout" in (info.value.attempts[-1].error or "")
    assert not r.store.has_parks()


async def test_stream_budget_runs_out_while_the_caller_holds_a_chunk() -> None:
    """The budget ending between chunks stops the stream at the next read; nothing parked."""
    r = router(mock("p/a", pieces("one", "two", "three")), mock("p/b"), call_timeout=0.1)
    got: list[str] = []
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout):
        async for event in r.stream(ask()):
            if isinstance(event, f.TextDelta):
                got.append(event.text)
                await anyio.sleep(0.3)  # the caller's own slow work on the chunk
    assert got == ["one"]
    assert not r.store.has_parks()


async def test_outer_cancel_mid_stream_is_not_taken_for_the_budget() -> None:
    """Cancelling the caller mid-stream propagates; the budget's timer never swallows it."""
    r = router(mock("p/a", text_then_hang("x")), mock("p/b"), call_timeout=60)
    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async for _event in r.stream(ask()):
                scope.cancel()
        assert scope.cancelled_caught
    assert not r.store.has_parks()
