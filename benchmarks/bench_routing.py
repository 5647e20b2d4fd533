"""Routing under load: stale successes, all-parked pools, thousand-member pools.

Each figure runs fallover's router and, when it is installed, LiteLLM's Router
on the same workload against the same simulator, and counts what reached the
server from the simulator's own log.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import fallover as f
from fallover.testing import MockClient

from ._common import REQ, Env, Figure, Goal, Stats, per_call, ratio

SCENARIO = """
[models.slowfirst]
after = 1
statuses = [429]
repeat = true
retry_after = 30
latency = 0.3
[models.down2a]
down_for = 2
fail_status = 429
retry_after = 2
[models.down2b]
down_for = 2
fail_status = 429
retry_after = 2
[models.steady2]
reply = "ok"
[models.firstok]
after = 1
statuses = [429]
repeat = true
retry_after = 30
latency = 0.005
[models.rl20a]
reply = "ok"
limit_requests = 20
limit_window = 1.0
[models.rl20b]
reply = "ok"
limit_requests = 20
limit_window = 1.0
[models.tl20a]
reply = "ok"
limit_tokens = 20000
limit_window = 1.0
[models.tl20b]
reply = "ok"
limit_tokens = 20000
limit_window = 1.0
[models.tailed]
reply = "ok"
latency = 0.02
slow_rate = 0.05
slow_latency = 2.0
[models.steady50]
reply = "ok"
latency = 0.05
"""

MSGS = [{"role": "user", "content": "Review: def f(): return 1"}]


def _litellm(env: Env) -> Any | None:
    """LiteLLM's Router class, or None when LiteLLM is not installed (or in a quick run)."""
    if env.quick:
        return None
    try:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm
        from litellm import Router
    except ImportError:
        return None
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return Router


def _deployment(env: Env, name: str, model: str) -> dict[str, Any]:
    params = {"model": f"openai/{model}", "api_base": env.base + "/v1", "api_key": "sk-b"}
    return {"model_name": name, "litellm_params": params}


async def _log(env: Env) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(env.base + "/_sim/log") as r:
        entries: list[dict[str, Any]] = await r.json()
    return entries


def _after_first_429(log: list[dict[str, Any]], model: str, latency: float) -> int:
    """Requests to ``model`` that arrived after its first 429 had come back."""
    mine = [e for e in log if e["model"] == model]
    first = min((e["t"] for e in mine if e["status"] == 429), default=None)
    if first is None:
        return 0
    return sum(e["t"] > first + latency for e in mine)


async def _reset(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        await s.post(env.base + "/_sim/reset")


async def _fan(call: Callable[[], Awaitable[object]], total: int, concurrency: int) -> list[bool]:
    """Run ``call`` ``total`` times, ``concurrency`` at once; True per call that answered."""
    import anyio

    ok: list[bool] = []
    limiter = anyio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            try:
                await call()
            except Exception:
                ok.append(False)
            else:
                ok.append(True)

    async with anyio.create_task_group() as tg:
        for _ in range(total):
            tg.start_soon(one)
    return ok


class HeldFirst:
    """A member whose first success reaches the router 300 ms late (after the 429s)."""

    def __init__(self, inner: f.OpenAIClient) -> None:
        self.inner = inner
        self.first = True
        self.alias = inner.alias
        self.context_window = inner.context_window
        self.capabilities = inner.capabilities

    def unfit(self, request: f.ChatRequest) -> str | None:
        return self.inner.unfit(request)

    async def complete(self, request: f.ChatRequest) -> f.ChatResponse:
        import anyio

        first, self.first = self.first, False
        response = await self.inner.complete(request)
        if first:
            await anyio.sleep(0.3)
        return response

    def stream(self, request: f.ChatRequest, **kw: Any) -> Any:
        return self.inner.stream(request, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> HeldFirst:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def stale_success(env: Env) -> Figure:
    """A primary that answers its first request slowly, then only 429 (Retry-After: 30)."""
    total, concurrency = env.n(1000, 200), 50
    Router = _litellm(env)
    ours: list[float] = []
    theirs: list[float] = []
    ours_after: list[float] = []
    theirs_after: list[float] = []
    for _ in range(env.repeats):
        await _reset(env)
        router = f.AsyncRouter([env.client("slowfirst"), env.client("steady2")])
        async with router:
            await _fan(lambda r=router: r.complete(REQ), total, concurrency)
        log = await _log(env)
        ours.append(float(sum(e["model"] == "slowfirst" for e in log)))
        ours_after.append(float(_after_first_429(log, "slowfirst", 0.3)))
        if Router is not None:
            await _reset(env)
            ll = Router(
                model_list=[
                    _deployment(env, "primary", "slowfirst"),
                    _deployment(env, "backup", "steady2"),
                ],
                fallbacks=[{"primary": ["backup"]}],
                num_retries=0,
                allowed_fails=0,
                cooldown_time=30,
            )
            await _fan(lambda r=ll: r.acompletion(model="primary", messages=MSGS), total, 50)
            log = await _log(env)
            theirs.append(float(sum(e["model"] == "slowfirst" for e in log)))
            theirs_after.append(float(_after_first_429(log, "slowfirst", 0.3)))
    held: list[float] = []
    for _ in range(env.repeats):
        await _reset(env)
        router = f.AsyncRouter([HeldFirst(env.client("firstok")), env.client("steady2")])
        async with router:
            await _fan(lambda r=router: r.complete(REQ), total, concurrency)
        sent = sum(e["model"] == "firstok" for e in await _log(env))
        held.append(float(max(0, sent - concurrency)))  # beyond the wave already in flight
    mine, mine_after, late = Stats.of(ours), Stats.of(ours_after), Stats.of(held)
    rows = [["fallover", f"{mine.median:.0f} (max {mine.max:.0f})", f"{mine_after.max:.0f}"]]
    data: dict[str, Any] = {
        "requests": total,
        "concurrency": concurrency,
        "fallover": {"primary": mine.json(), "after_first_429": mine_after.json()},
        "fallover_success_after_the_429s": {"beyond_the_first_wave": late.json()},
    }
    if theirs:
        other, other_after = Stats.of(theirs), Stats.of(theirs_after)
        rows.append(
            [
                "LiteLLM Router",
                f"{other.median:.0f} (max {other.max:.0f})",
                f"{other_after.max:.0f}",
            ]
        )
        data["litellm"] = {"primary": other.json(), "after_first_429": other_after.json()}
    rows.append(
        [
            "fallover, first success held until after the 429s (client side)",
            "—",
            f"{late.max:.0f} beyond the first wave",
        ]
    )
    return Figure(
        "stale_success",
        "A slow success does not unpark",
        f"{total} requests at concurrency {concurrency}; the primary answers its first "
        "request after 300 ms and every later one 429 with Retry-After: 30. Requests that "
        "reached the primary (the first wave is already in flight when the 429s come back)."
        + (
            ""
            if theirs
            else " LiteLLM is not installed (or the run is quick): its column is missing."
        ),
        ["router", "requests reaching the primary", "sent after its first 429 came back (max)"],
        rows,
        data,
        [
            Goal("primary requests sent after its first 429 came back", mine_after.max, 0, unit=""),
            Goal(
                "primary requests beyond the first wave, the success landing after the 429s",
                late.max,
                0,
                unit="",
            ),
        ],
    )


async def all_parked(env: Env) -> Figure:
    """Two members that both answer 429 (Retry-After: 2) for two seconds, then recover."""
    total, concurrency = env.n(100, 40), 20
    Router = _litellm(env)
    per_call_ours: list[float] = []
    answered_ours: list[float] = []
    per_call_theirs: list[float] = []
    answered_theirs: list[float] = []
    walls: list[float] = []
    for _ in range(env.repeats):
        await _reset(env)
        router = f.AsyncRouter([env.client("down2a"), env.client("down2b")], call_timeout=10)
        async with router:
            start = time.perf_counter()
            ok = await _fan(lambda r=router: r.complete(REQ), total, concurrency)
            walls.append(time.perf_counter() - start)
        sent = sum(e["model"] in ("down2a", "down2b") for e in await _log(env))
        per_call_ours.append(sent / total)
        answered_ours.append(float(sum(ok)))
        if Router is not None:
            await _reset(env)
            ll = Router(
                model_list=[
                    _deployment(env, "primary", "down2a"),
                    _deployment(env, "backup", "down2b"),
                ],
                fallbacks=[{"primary": ["backup"]}],
                num_retries=0,
                timeout=10,
            )
            ok = await _fan(
                lambda r=ll: r.acompletion(model="primary", messages=MSGS), total, concurrency
            )
            sent = sum(e["model"] in ("down2a", "down2b") for e in await _log(env))
            per_call_theirs.append(sent / total)
            answered_theirs.append(float(sum(ok)))
    per, answered, wall = Stats.of(per_call_ours), Stats.of(answered_ours), Stats.of(walls)
    rows = [["fallover", f"{per.median:.2f}", f"{answered.min:.0f} of {total}", wall.ms()]]
    data: dict[str, Any] = {
        "calls": total,
        "concurrency": concurrency,
        "fallover": {"requests_per_call": per.json(), "answered": answered.json()},
        "wall_s": wall.json(),
    }
    if per_call_theirs:
        tp, ta = Stats.of(per_call_theirs), Stats.of(answered_theirs)
        rows.append(["LiteLLM Router", f"{tp.median:.2f}", f"{ta.min:.0f} of {total}", "—"])
        data["litellm"] = {"requests_per_call": tp.json(), "answered": ta.json()}
    first_wave = 2 * concurrency / total
    return Figure(
        "all_parked",
        "An all-parked pool waits instead of hammering",
        f"{total} calls at concurrency {concurrency}, `call_timeout=10`; both members answer "
        "429 with Retry-After: 2 for two seconds, then recover. Upstream requests per call, "
        f"and calls answered. The first wave ({concurrency} calls, each meeting both members "
        f"before either 429 is back) costs {first_wave:.2f} requests per call of the total by "
        "itself; every later call sends one request, after the recovery."
        + (
            ""
            if per_call_theirs
            else " LiteLLM is not installed (or the run is quick): its row is missing."
        ),
        ["router", "upstream requests per call", "answered (min)", "wall time"],
        rows,
        data,
        [
            Goal("upstream requests per call", per.max, 1.05),
            Goal("calls answered", answered.min, total, better="higher", unit=""),
        ],
    )


async def parked_1000(env: Env) -> Figure:
    """A thousand-member pool with 999 parked beside a healthy two-member pool (no HTTP)."""
    n = env.n(3000, 200)

    async def answer(request: f.ChatRequest) -> str:
        return "ok"

    two = f.AsyncRouter([MockClient(answer, alias="m/a"), MockClient(answer, alias="m/b")])
    members = [MockClient(answer, alias=f"m/{i:04d}") for i in range(1000)]
    big = f.AsyncRouter(members)
    for m in members[:-1]:
        big.store.park(m.alias, 3600)
    small = await per_call(lambda: two.complete(REQ), n, env.repeats)
    parked = await per_call(lambda: big.complete(REQ), n, env.repeats)
    attempts = len((await big.complete(REQ)).attempts)
    return Figure(
        "parked_1000",
        "A thousand members, 999 parked",
        "Scripted members (no HTTP): the router's own work per call when only the last of "
        "1,000 members is live, beside a healthy pool of two.",
        ["pool", "per call", "attempts on each answer"],
        [
            ["2 members, healthy", small.us(), "1"],
            ["1000 members, 999 parked", parked.us(), str(attempts)],
        ],
        {"two": small.json(), "parked_1000": parked.json(), "attempts": attempts},
        [
            Goal("1000 with 999 parked ÷ 2 healthy, per call", ratio(parked, small), 2.0),
            Goal("attempts on each answer", float(attempts), 2, unit=""),
        ],
    )


async def _paced_run(
    env: Env, models: tuple[str, str], total: int, request: f.ChatRequest, **router: Any
) -> tuple[float, int]:
    """Wall time and 429s received for ``total`` calls at concurrency 50 through fallover."""
    await _reset(env)
    r = f.AsyncRouter([env.client(models[0]), env.client(models[1])], call_timeout=120, **router)
    async with r:
        start = time.perf_counter()
        await _fan(lambda: r.complete(request), total, 50)
        wall = time.perf_counter() - start
    log = await _log(env)
    return wall, sum(e["status"] == 429 and e["model"] in models for e in log)


async def _paced_litellm(
    env: Env, Router: Any, models: tuple[str, str], total: int, content: str, **limits: int
) -> tuple[float, int, int]:
    """The same through LiteLLM's Router, usage-based routing with the same limits."""
    await _reset(env)
    ll = Router(
        model_list=[
            {
                **_deployment(env, "pool", m),
                "litellm_params": {**_deployment(env, "pool", m)["litellm_params"], **limits},
            }
            for m in models
        ],
        routing_strategy="usage-based-routing-v2",
        num_retries=0,
    )
    msgs = [{"role": "user", "content": content}]
    start = time.perf_counter()
    ok = await _fan(lambda: ll.acompletion(model="pool", messages=msgs), total, 50)
    wall = time.perf_counter() - start
    log = await _log(env)
    return wall, sum(e["status"] == 429 and e["model"] in models for e in log), sum(ok)


async def pacing(env: Env) -> Figure:
    """Two members limited to 20 requests a second each: 400 calls at concurrency 50."""
    total = env.n(400, 80)
    Router = _litellm(env)
    # Two members, 20 requests (or 20,000 tokens, counted by the simulator as a
    # prompt's characters / 4) a second each.
    by_requests = total / 40
    short = REQ
    long_text = "Review this file:\n" + "x = 1\n" * 1000  # about 1,500 tokens
    long = f.ChatRequest(messages=[f.Message(role="user", content=long_text)])
    rows: list[list[str]] = []
    data: dict[str, Any] = {"calls": total}
    goals: list[Goal] = []
    cases: list[tuple[str, tuple[str, str], f.ChatRequest, dict[str, Any], dict[str, int]]] = [
        (
            "rpm limits known (rpm = 1200)",
            ("rl20a", "rl20b"),
            short,
            {"limits": {"openai/rl20a": f.Pace(rpm=1200), "openai/rl20b": f.Pace(rpm=1200)}},
            {"rpm": 1200},
        ),
        ("limits announced only by headers", ("rl20a", "rl20b"), short, {}, {}),
        (
            "token limit, long prompts (tpm = 1.2M)",
            ("tl20a", "tl20b"),
            long,
            {
                "limits": {
                    "openai/tl20a": f.Pace(tpm=1_200_000),
                    "openai/tl20b": f.Pace(tpm=1_200_000),
                }
            },
            {"tpm": 1_200_000},
        ),
    ]
    for label, models, request, ours_kw, theirs_kw in cases:
        ideal = by_requests
        if models[0].startswith("tl"):
            ideal = total * (len(long_text) // 4 + 1) / 40_000
        wall, errors = await _paced_run(env, models, total, request, **ours_kw)
        row = [label, f"{errors}", f"{wall / ideal:.2f}×"]
        entry: dict[str, Any] = {"ideal_s": ideal, "fallover": {"429s": errors, "wall_s": wall}}
        if Router is not None:
            content = request.messages[0].content
            assert isinstance(content, str)
            twall, terrors, tok = await _paced_litellm(
                env, Router, models, total, content, **theirs_kw
            )
            row += [f"{terrors}", f"{twall / ideal:.2f}×", f"{tok} of {total}"]
            entry["litellm"] = {"429s": terrors, "wall_s": twall, "answered": tok}
        else:
            row += ["—", "—", "—"]
        rows.append(row)
        data[label] = entry
        goals.append(Goal(f"429s received, {label}", float(errors), 0, unit=""))
        goals.append(Goal(f"wall ÷ ideal, {label}", wall / ideal, 1.2))
    return Figure(
        "pacing",
        "Pacing: not earning the 429",
        f"{total} calls at concurrency 50 over two members each limited by the simulator to 20 "
        "requests (or 20,000 tokens) a second; the ideal wall time is what those limits allow "
        f"({by_requests:.1f} s by requests). LiteLLM's Router "
        "uses usage-based routing with the same limits."
        + (
            ""
            if Router is not None
            else " LiteLLM is not installed (or the run is quick): its columns are empty."
        ),
        [
            "case",
            "fallover 429s",
            "fallover wall ÷ ideal",
            "LiteLLM 429s",
            "LiteLLM wall ÷ ideal",
            "LiteLLM answered",
        ],
        rows,
        data,
        goals,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def hedging(env: Env) -> Figure:
    """A heavy-tailed primary (5% of calls take 2 s, else 20 ms) and a 50 ms backup."""
    total = env.n(400, 60)
    rows: list[list[str]] = []
    data: dict[str, Any] = {"calls": total}
    p99s: dict[float, float] = {}
    extra: dict[float, float] = {}
    for hedge in (0.0, 0.2):
        await _reset(env)
        r = f.AsyncRouter([env.client("tailed"), env.client("steady50")], hedge_after=hedge)
        times: list[float] = []

        async def timed(r: f.AsyncRouter = r, times: list[float] = times) -> None:
            start = time.perf_counter()
            await r.complete(REQ)
            times.append(time.perf_counter() - start)

        async with r:
            await _fan(timed, total, 20)
        sent = sum(e["model"] in ("tailed", "steady50") for e in await _log(env))
        p50, p99 = _percentile(times, 0.5), _percentile(times, 0.99)
        p99s[hedge], extra[hedge] = p99, (sent - total) / total
        label = "off" if hedge == 0 else f"hedge_after = {hedge:g}"
        rows.append([label, f"{p50 * 1e3:.0f} ms", f"{p99 * 1e3:.0f} ms", f"{extra[hedge]:.1%}"])
        data[label] = {"p50_s": p50, "p99_s": p99, "extra_requests": extra[hedge]}
    return Figure(
        "hedging",
        "Hedging the tail",
        f"{total} calls at concurrency 20; the primary answers in 20 ms, but 5% of its calls "
        "take 2 s; the backup answers in 50 ms.",
        ["hedging", "p50", "p99", "extra upstream requests"],
        rows,
        data,
        [
            Goal("p99 with hedge_after = 0.2", p99s[0.2], 0.5, unit=" s"),
            Goal("extra upstream requests (share of calls)", extra[0.2] * 100, 10, unit="%"),
        ],
    )


async def policies(env: Env) -> Figure:
    """weighted 3:1 over 4,000 calls; latency finding and following the faster member."""
    import random

    import anyio

    n = env.n(4000, 400)

    async def answer(request: f.ChatRequest) -> str:
        return "ok"

    a, b = MockClient(answer, alias="m/a"), MockClient(answer, alias="m/b")
    weighted = f.AsyncRouter([a, b], policy="weighted", weights=[3, 1], rng=random.Random())
    hits = 0
    for _ in range(n):
        hits += (await weighted.complete(REQ)).alias == "m/a"
    share = hits / n

    delays = {"m/slow": 0.004, "m/fast": 0.001}

    def timed(alias: str) -> MockClient:
        async def answer(request: f.ChatRequest) -> str:
            await anyio.sleep(delays[alias])
            return alias

        return MockClient(answer, alias=alias)

    lat = f.AsyncRouter([timed("m/slow"), timed("m/fast")], policy="latency")
    first = [(await lat.complete(REQ)).alias for _ in range(200)]
    to_fast = first.count("m/fast") / len(first)
    delays["m/fast"] = 0.008  # the fast member slows down past the other
    after = [(await lat.complete(REQ)).alias for _ in range(200)]
    followed = next(
        (i for i in range(len(after)) if after[i : i + 20].count("m/slow") >= 18), len(after)
    )
    return Figure(
        "policies",
        "weighted and latency policies",
        f"Scripted members (no HTTP). `weighted` with weights 3:1 over {n:,} calls; `latency` "
        "over two members answering in 4 ms and 1 ms, then the 1 ms one slows to 8 ms.",
        ["policy", "measured"],
        [
            ["weighted 3:1: share to the first", f"{share:.1%}"],
            ["latency: share to the faster, first 200 calls", f"{to_fast:.1%}"],
            ["latency: calls until it follows the change", f"{followed}"],
        ],
        {"weighted_share": share, "latency_to_fast": to_fast, "latency_follow_calls": followed},
        [
            Goal("weighted share − 75%, in points", abs(share - 0.75) * 100, 2, unit=""),
            Goal("latency share to the faster", to_fast * 100, 90, better="higher", unit="%"),
            Goal("calls until latency follows a change", float(followed), 200, unit=""),
        ],
    )


FIGURES = [stale_success, all_parked, parked_1000, pacing, hedging, policies]
