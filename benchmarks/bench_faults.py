"""Conduct under faults at scale: cooldown efficiency, cancellation, load."""

from __future__ import annotations

import gc
import time
from typing import Any

import aiohttp
import anyio

import fallover as f

from ._common import REQ, Env, Figure, Goal, Stats, open_fds, rss_mib

SCENARIO = """
[models.turns429]
after = 100
statuses = [429]
repeat = true
latency = 0.005
[models.steady]
reply = "ok"
latency = 0.005
"""


class Watch:
    """A member wrapper that counts the calls started after its first 429 came back."""

    def __init__(self, inner: f.OpenAIClient) -> None:
        self.inner = inner
        self.first_429: float | None = None
        self.after = 0

    @property
    def alias(self) -> str:
        return self.inner.alias

    @property
    def context_window(self) -> int | None:
        return self.inner.context_window

    @property
    def capabilities(self) -> frozenset[str]:
        return self.inner.capabilities

    def unfit(self, request: f.ChatRequest) -> str | None:
        return self.inner.unfit(request)

    async def complete(self, request: f.ChatRequest) -> f.ChatResponse:
        if self.first_429 is not None:
            self.after += 1
        try:
            return await self.inner.complete(request)
        except f.RateLimited:
            if self.first_429 is None:
                self.first_429 = time.perf_counter()
            raise

    def stream(self, request: f.ChatRequest, **kw: Any) -> Any:
        return self.inner.stream(request, **kw)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def cooldown(env: Env) -> Figure:
    """A fan-out whose primary turns to 429s after 100 requests: who still gets sent there?"""
    total = env.n(1000, 200)
    after, walls = [], []
    async with aiohttp.ClientSession() as s:
        for _ in range(env.repeats):
            await s.post(env.base + "/_sim/reset")
            watch = Watch(env.client("turns429"))
            router = f.AsyncRouter([watch, env.client("steady")])
            async with router:
                start = time.perf_counter()
                results = await f.fan_out(router, [REQ] * total, concurrency=50)
                walls.append(time.perf_counter() - start)
            assert all(isinstance(r, f.ChatResponse) for r in results)
            after.append(float(watch.after))
    calls, wall = Stats.of(after), Stats.of(walls)
    return Figure(
        "cooldown",
        "Cooldown efficiency",
        f"{total} requests through `fan_out` at concurrency 50; the primary starts answering "
        "429 after 100 requests.",
        ["primary calls after its first 429 (median, max)", "wall time"],
        [[f"{calls.median:.0f}, {calls.max:.0f}", wall.ms()]],
        {"requests": total, "primary_calls_after_first_429": calls.json(), "wall_s": wall.json()},
        [Goal("calls sent to the primary after its first 429", calls.max, 0, unit="")],
    )


async def cancel(env: Env) -> Figure:
    """Calls in flight against a hanging primary, then the task group is cancelled."""
    total = env.n(1000, 100)
    times, leaked = [], []
    for _ in range(env.repeats):
        before = open_fds()
        router = f.AsyncRouter([env.client("hang"), env.client("backup")])
        started = 0

        async def one(router: f.AsyncRouter = router) -> None:
            nonlocal started
            started += 1
            await router.complete(REQ)

        async with router:
            async with anyio.create_task_group() as tg:
                for _ in range(total):
                    tg.start_soon(one)
                with anyio.fail_after(30):
                    while started < total:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.2)  # let the requests reach the server
                t0 = time.perf_counter()
                tg.cancel_scope.cancel()
            times.append(time.perf_counter() - t0)
        await anyio.sleep(0.05)
        leaked.append(float(open_fds() - before))
    back, fds = Stats.of(times), Stats.of(leaked)
    return Figure(
        "cancel",
        "Cancellation",
        f"{total} calls in flight against a hanging primary, then the task group is cancelled.",
        ["cancel → return", "extra fds after"],
        [[back.ms(), f"{fds.max:.0f}"]],
        {"calls": total, "cancel_to_return_s": back.json(), "extra_fds_after": fds.json()},
        [
            Goal("cancel → control back", back.max * 1e3, 100, unit=" ms"),
            Goal("sockets left open", fds.max, 0, unit=""),
        ],
    )


async def load(env: Env) -> Figure:
    """Ten thousand concurrent calls through one router."""
    total = env.n(10_000, 1000)
    walls, errors, peaks = [], [], []
    for _ in range(2 if env.quick else 3):
        gc.collect()
        before = peak = rss_mib()
        router = f.AsyncRouter([env.client("fast"), env.client("backup")])

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mib())
                await anyio.sleep(0.01)

        async with router, anyio.create_task_group() as tg:
            tg.start_soon(sample)
            start = time.perf_counter()
            results = await f.fan_out(router, [REQ] * total, concurrency=total)
            walls.append(time.perf_counter() - start)
            tg.cancel_scope.cancel()
        errors.append(float(sum(isinstance(r, Exception) for r in results)))
        peaks.append(peak - before)
    wall, errs, rss = Stats.of(walls), Stats.of(errors), Stats.of(peaks)
    return Figure(
        "load",
        "Load",
        f"{total:,} concurrent calls (`fan_out` with concurrency {total:,}) through one router.",
        ["wall time", "errors", "peak RSS growth"],
        [[wall.ms(), f"{errs.max:.0f}", f"{rss.median:.0f} MiB (max {rss.max:.0f})"]],
        {"calls": total, "wall_s": wall.json(), "errors": errs.json(), "rss_mib": rss.json()},
        [Goal("failed calls", errs.max, 0, unit="")],
    )


FIGURES = [cooldown, cancel, load]
