"""The router under the classic faults, on a real loopback server.

Pool: a faulty OpenAI-protocol primary and a healthy Anthropic-protocol backup,
primary ``max_retries=2``. Retry sleeps are recorded instead of slept, so the
delays are asserted exactly; timeouts are real and short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

import fallover as f
from fallover.testing import Fault, Simulator

from .conftest import InstantBackoff, SimFactory, ask

_open: list[f.AsyncRouter] = []


@pytest.fixture(autouse=True)
async def _close_routers() -> AsyncIterator[None]:
    """Close every router a test built (warnings are errors: nothing may leak)."""
    yield
    while _open:
        await _open.pop().aclose()


def track(r: f.AsyncRouter) -> f.AsyncRouter:
    _open.append(r)
    return r


def pool(sim: Simulator, **primary: object) -> tuple[f.AsyncRouter, InstantBackoff]:
    opts: dict[str, object] = {"max_retries": 2, **primary}
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1", api_key="k", **opts)  # type: ignore[arg-type]
    b = f.AnthropicClient(model="backup", base_url=sim.base_url, api_key="k")
    rec = InstantBackoff()
    return track(f.AsyncRouter([a, b], call_timeout=10)), rec


async def complete(r: f.AsyncRouter) -> f.ChatResponse:
    with anyio.fail_after(10):
        return await r.complete(ask())


async def test_429_with_retry_after_is_retried_after_it(simulator: SimFactory) -> None:
    """429 with Retry-After: 2 → the primary is retried after 2 s and answers."""
    sim = await simulator(primary=Fault(statuses=[429], retry_after=2))
    r, rec = pool(sim)
    resp = await complete(r)
    assert resp.alias == "openai/primary"
    assert rec.delays == [2.0]
    assert sim.requests_for("primary") == 2


async def test_persistent_429_backs_off_then_falls_over(simulator: SimFactory) -> None:
    """Persistent 429 → jittered backoff, at most 3 primary attempts, then the backup."""
    sim = await simulator(primary=Fault(statuses=[429], repeat=True))
    r, rec = pool(sim)
    resp = await complete(r)
    assert resp.alias == "anthropic/backup"
    assert sim.requests_for("primary") == 3
    assert len(rec.delays) == 2 and 0.25 <= rec.delays[0] <= 0.5 and 0.5 <= rec.delays[1] <= 1.0
    assert sum(rec.delays) < 3
    assert r.store.remaining("openai/primary") is not None
    # The next call skips the parked primary without asking it.
    await complete(r)
    assert sim.requests_for("primary") == 3


async def test_500_once_is_retried_on_the_same_member(simulator: SimFactory) -> None:
    """One 500 → the same member is retried and answers."""
    sim = await simulator(primary=Fault(statuses=[500]))
    r, _ = pool(sim)
    assert (await complete(r)).alias == "openai/primary"
    assert sim.requests_for("backup") == 0


async def test_persistent_503_goes_to_the_backup(simulator: SimFactory) -> None:
    """503 forever → the backup answers within the budget."""
    sim = await simulator(primary=Fault(statuses=[503], repeat=True))
    r, _ = pool(sim)
    assert (await complete(r)).alias == "anthropic/backup"


async def test_reset_before_headers_is_answered(simulator: SimFactory) -> None:
    """A primary that drops connections → answered by the backup."""
    sim = await simulator(primary=Fault(reset=True))
    r, _ = pool(sim)
    assert (await complete(r)).alias == "anthropic/backup"


async def test_silent_provider_gets_one_attempt(simulator: SimFactory) -> None:
    """A hanging primary: one attempt, cut at its timeout, then the backup."""
    sim = await simulator(primary=Fault(hang=True))
    r, rec = pool(sim, timeout=0.3)
    start = anyio.current_time()
    resp = await complete(r)
    assert resp.alias == "anthropic/backup"
    assert sim.requests_for("primary") == 1
    assert rec.delays == []
    assert anyio.current_time() - start < 0.3 + 2.0
    assert r.store.remaining("openai/primary") is not None


async def test_slow_first_token_hands_over(simulator: SimFactory) -> None:
    """A slow first token → the first-token timeout hands the stream to the backup."""
    sim = await simulator(primary=Fault(first_token_delay=5))
    r, _ = pool(sim, first_token_timeout=0.2)
    with anyio.fail_after(5):
        events = [e async for e in r.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed) and done.response.alias == "anthropic/backup"
    assert not any(isinstance(e, f.Restarted) for e in events)


@pytest.mark.parametrize(
    "fault",
    [
        Fault(stream_cut_after=2),
        Fault(stall_after=2),
        Fault(malformed_after=2),
        Fault(no_terminal=True, no_finish=True),
    ],
    ids=["cut", "stall", "malformed", "no-terminal"],
)
async def test_broken_streams_restart_into_a_whole_answer(
    simulator: SimFactory, fault: Fault
) -> None:
    """Cut, stalled, malformed or unterminated streams never 'succeed' truncated."""
    sim = await simulator(primary=fault)
    r, _ = pool(sim, idle_timeout=0.2)
    with anyio.fail_after(5):
        events = [e async for e in r.stream(ask(), on_interrupt="restart")]
    assert sum(isinstance(e, f.Restarted) for e in events) == 1
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.alias == "anthropic/backup"
    after = events[[type(e) for e in events].index(f.Restarted) + 1 : -1]
    assert "".join(e.text for e in after if isinstance(e, f.TextDelta)) == done.response.text


async def test_missing_done_with_finish_reason_is_prompt(simulator: SimFactory) -> None:
    """No [DONE] after finish_reason and usage → finalised at once with usage."""
    sim = await simulator(primary=Fault(no_terminal=True))
    r, _ = pool(sim, idle_timeout=30)
    with anyio.fail_after(3):
        events = [e async for e in r.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed)
    assert done.response.alias == "openai/primary" and done.response.usage is not None


async def test_context_length_goes_to_a_larger_member(simulator: SimFactory) -> None:
    """Context length → one attempt, then a member with a larger window."""
    sim = await simulator(primary=Fault(context_window=1))
    a = f.OpenAIClient(
        model="primary", base_url=sim.base_url + "/v1", context_window=8000, max_retries=2
    )
    b = f.AnthropicClient(model="backup", base_url=sim.base_url, context_window=200000)
    r = track(f.AsyncRouter([a, b]))
    resp = await complete(r)
    assert resp.alias == "anthropic/backup"
    assert sim.requests_for("primary") == 1


async def test_content_filter_is_raised_after_one_attempt(simulator: SimFactory) -> None:
    """Content filter → one attempt, raised, backup untouched."""
    sim = await simulator(primary=Fault(statuses=[400], error_type="content_policy_violation"))
    r, _ = pool(sim)
    with pytest.raises(f.ContentFiltered):
        await complete(r)
    assert sim.requests_for("primary") == 1 and sim.requests_for("backup") == 0


async def test_outage_then_recovery(simulator: SimFactory) -> None:
    """Primary down for a while: every call served; primary back within a few cooldowns."""
    sim = await simulator(primary=Fault(down_for=0.6))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1")
    b = f.AnthropicClient(model="backup", base_url=sim.base_url)
    r = track(f.AsyncRouter([a, b], cooldown=0.1, cooldown_max=0.2))
    served: list[str] = []
    with anyio.fail_after(10):
        while len(served) < 3 or served[-1] != "openai/primary":
            served.append((await r.complete(ask())).alias)
            await anyio.sleep(0.02)  # pacing the caller, not synchronising
    assert "anthropic/backup" in served
    assert served[-1] == "openai/primary"
    assert sim.requests_for("primary") < 15  # parked most of the outage, not hammered


async def test_failed_over_answer_reports_backup_model_and_usage(simulator: SimFactory) -> None:
    """The answer names the backup's reported model and its usage."""
    sim = await simulator(
        primary=Fault(statuses=[503], repeat=True), backup=Fault(model="claude-reported")
    )
    r, _ = pool(sim)
    resp = await complete(r)
    assert resp.model == "claude-reported"
    assert resp.usage is not None and resp.usage.output_tokens > 0


async def test_call_budget_over_a_real_member_timeout(simulator: SimFactory) -> None:
    """call_timeout shorter than the member's own timeout: RoutingTimeout, nothing parked."""
    sim = await simulator(primary=Fault(hang=True))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1", timeout=30)
    b = f.AnthropicClient(model="backup", base_url=sim.base_url)
    r = track(f.AsyncRouter([a, b], call_timeout=0.2))
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout) as info:
        await r.complete(ask())
    assert [x.alias for x in info.value.attempts] == ["openai/primary"]
    assert not r.store.has_parks()
    assert sim.requests_for("backup") == 0


async def test_member_timeout_inside_call_budget(simulator: SimFactory) -> None:
    """A member timeout shorter than the budget parks the member and falls over."""
    sim = await simulator(primary=Fault(hang=True))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1", timeout=0.1)
    b = f.AnthropicClient(model="backup", base_url=sim.base_url)
    r = track(f.AsyncRouter([a, b], call_timeout=5))
    resp = await complete(r)
    assert resp.alias == "anthropic/backup"
    assert r.store.remaining("openai/primary") is not None


async def test_outer_cancel_over_real_members(simulator: SimFactory) -> None:
    """An outer anyio scope cancelling a routed HTTP call: cancelled, nothing parked."""
    sim = await simulator(primary=Fault(hang=True))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1", timeout=30)
    b = f.AnthropicClient(model="backup", base_url=sim.base_url)
    r = track(f.AsyncRouter([a, b], call_timeout=60))
    with anyio.fail_after(5), anyio.move_on_after(0.2) as scope:
        await r.complete(ask())
    assert scope.cancelled_caught
    assert not r.store.has_parks()
    assert sim.requests_for("backup") == 0


async def test_pool_member_fails_fast_and_is_not_changed(simulator: SimFactory) -> None:
    """In a pool a member without max_retries does not retry; building the pool changes nothing."""
    sim = await simulator(primary=Fault(statuses=[500]))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1")
    b = f.AnthropicClient(model="backup", base_url=sim.base_url)
    r = track(f.AsyncRouter([a, b]))
    assert a.max_retries == 5
    assert (await complete(r)).alias == "anthropic/backup"
    assert sim.requests_for("primary") == 1
    assert a.max_retries == 5


async def test_stream_hedge_over_real_members(simulator: SimFactory) -> None:
    """A real primary slow to its first token: the hedge's stream wins and the loser is released."""
    sim = await simulator(primary=Fault(first_token_delay=5))
    a = f.OpenAIClient(model="primary", base_url=sim.base_url + "/v1", api_key="k")
    b = f.AnthropicClient(model="backup", base_url=sim.base_url, api_key="k")
    r = track(f.AsyncRouter([a, b], hedge_after=0.1, call_timeout=10))
    with anyio.fail_after(5):
        events = [x async for x in r.stream(ask())]
    done = events[-1]
    assert isinstance(done, f.Completed) and done.response.alias == "anthropic/backup"
    assert "".join(x.text for x in events if isinstance(x, f.TextDelta)) == done.response.text
    assert not r.store.has_parks()
    assert sim.requests_for("primary") == 1
