"""The hot path: what a call, a fallover, a stream chunk and a pool size cost."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

import fallover as f
from fallover.testing import MockClient

from ._common import REQ, Env, Figure, Goal, Stats, per_call, ratio

SCENARIO = """
[models.fast]
reply = "ok"
[models.backup]
reply = "ok"
[models.e503]
statuses = [503]
repeat = true
[models.e429]
statuses = [429]
repeat = true
[models.reset]
reset = true
[models.hang]
hang = true
[models.long]
reply = "{long}"
""".format(long=" ".join(["word"] * 500))
CHUNKS = 500


async def cost(env: Env) -> Figure:
    """Per-call cost: raw aiohttp, the plain client, and a router of two, on loopback."""
    url = env.base + "/v1/chat/completions"
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "x"}]})
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    data: dict[str, Any] = {}
    rows: list[list[str]] = []
    goals: list[Goal] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def raw() -> None:
            async with session.post(url, data=body, headers=headers) as r:
                assert json.loads(await r.read())["choices"][0]["message"]["content"]

        adapter = env.client("fast")
        router = f.AsyncRouter([env.client("fast"), env.client("backup")])
        async with adapter, router:
            for mode, conc, n in (
                ("sequential", 1, env.n(300, 20)),
                ("concurrency 100", 100, env.n(2000, 200)),
            ):
                r = await per_call(raw, n, env.repeats, conc)
                a = await per_call(lambda: adapter.complete(REQ), n, env.repeats, conc)
                ro = await per_call(lambda: router.complete(REQ), n, env.repeats, conc)
                data[mode] = {"raw_aiohttp": r.json(), "adapter": a.json(), "router": ro.json()}
                rows.append([mode, r.us(), a.us(), ro.us()])
                goals += [
                    Goal(f"client ÷ raw aiohttp, {mode}", ratio(a, r), 1.15),
                    Goal(f"router ÷ client, {mode}", ratio(ro, a), 1.05),
                ]
    return Figure(
        "cost",
        "Per-call cost",
        "A POST and its JSON answer: raw aiohttp, `OpenAIClient.complete`, and "
        "`AsyncRouter.complete` over two healthy members.",
        ["mode", "raw aiohttp", "client", "router"],
        rows,
        data,
        goals,
    )


async def fallover_latency(env: Env) -> Figure:
    """A faulty primary and a healthy backup; every call pays the whole fallover."""
    n = env.n(150, 10)
    healthy = f.AsyncRouter([env.client("fast"), env.client("backup")])
    async with healthy:
        base = await per_call(lambda: healthy.complete(REQ), n, env.repeats)
    rows = [["healthy", base.ms(), "1.00×"]]
    data: dict[str, Any] = {"healthy": base.json()}
    goals: list[Goal] = []
    for fault, label, kw in (
        ("e503", "503 at once", {}),
        ("e429", "429 at once", {}),
        ("reset", "reset before headers", {}),
        ("hang", "hangs until its 0.2 s timeout", {"timeout": 0.2}),
    ):
        # Parks of a microsecond: each call finds the primary live again, probes it and
        # pays the whole fallover, over warm connections like the healthy baseline.
        router = f.AsyncRouter(
            [env.client(fault, **kw), env.client("backup")], cooldown=1e-6, cooldown_max=1e-6
        )

        async def call(router: f.AsyncRouter = router) -> None:
            resp = await router.complete(REQ)
            assert resp.alias == "openai/backup", resp

        async with router:
            s = await per_call(call, n if fault != "hang" else max(3, n // 20), env.repeats)
        data[fault] = {**s.json(), "vs_healthy": ratio(s, base)}
        rows.append([label, s.ms(), f"{ratio(s, base):.2f}×"])
        if fault == "e503":
            goals.append(Goal("503 fallover ÷ healthy call", ratio(s, base), 1.6))
    return Figure(
        "fallover",
        "Fallover latency",
        "A faulty primary and a healthy backup; parks last a microsecond, so every call "
        "tries the primary and pays the whole fallover.",
        ["primary", "per call", "÷ healthy"],
        rows,
        data,
        goals,
    )


async def stream_chunks(env: Env) -> Figure:
    """Per-chunk cost of a 500-chunk stream: raw aiohttp lines, the client, a router."""
    url = env.base + "/v1/chat/completions"
    body = json.dumps(
        {"model": "long", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}
    n = env.n(40, 4)

    async with aiohttp.ClientSession() as session:

        async def raw() -> None:
            async with session.post(url, data=body, headers=headers) as r:
                count = 0
                async for line in r.content:
                    count += line.startswith(b"data: {")
                assert count >= CHUNKS

        adapter = env.client("long")
        router = f.AsyncRouter([env.client("long"), env.client("backup")])

        async def consume(client: f.LLMClient) -> None:
            count = 0
            async for event in client.stream(REQ):
                count += isinstance(event, f.TextDelta)
            assert count >= CHUNKS - 1

        async with adapter, router:
            r = await per_call(raw, n, env.repeats)
            a = await per_call(lambda: consume(adapter), n, env.repeats)
            ro = await per_call(lambda: consume(router), n, env.repeats)
    per = {
        k: Stats(v.min / CHUNKS, v.median / CHUNKS, v.max / CHUNKS)
        for k, v in (("raw", r), ("client", a), ("router", ro))
    }
    return Figure(
        "stream",
        "Stream cost per chunk",
        f"A {CHUNKS}-chunk OpenAI stream read whole; time per chunk (includes the server's "
        "own per-chunk work, the same in every column).",
        ["raw aiohttp lines", "client.stream", "router.stream (call_timeout on)"],
        [[per["raw"].us(), per["client"].us(), per["router"].us()]],
        {k: v.json() for k, v in per.items()},
        [Goal("router ÷ client per chunk", ratio(ro, a), 1.1)],
    )


async def scale(env: Env) -> Figure:
    """The router's own work per call (scripted members, no HTTP) by pool size."""
    n = env.n(3000, 200)

    async def answer(request: f.ChatRequest) -> str:
        return "ok"

    direct = MockClient(answer, alias="m/direct")
    base = await per_call(lambda: direct.complete(REQ), n, env.repeats)
    rows: list[list[str]] = []
    data: dict[str, Any] = {"direct_mock": base.json()}
    two: Stats | None = None
    thousand: Stats | None = None
    for size in (1, 10, 100, 1000):
        members = [MockClient(answer, alias=f"m/{i}") for i in range(size)]
        pr = f.AsyncRouter(members)
        prio = await per_call(lambda r=pr: r.complete(REQ), n, env.repeats)
        rr = f.AsyncRouter(members, policy="round-robin")
        robin = await per_call(lambda r=rr: r.complete(REQ), n, env.repeats)
        cost_us = (prio.median - base.median) * 1e6
        data[str(size)] = {"priority": prio.json(), "round_robin": robin.json(), "cost_us": cost_us}
        rows.append([str(size), prio.us(), robin.us(), f"{cost_us:.1f} µs"])
        if size == 10:
            two = prio
        if size == 1000:
            thousand = prio
    assert two is not None
    assert thousand is not None
    return Figure(
        "scale",
        "Scale",
        f"Scripted members (no HTTP): the router's own work per call. Direct "
        f"`MockClient.complete`: {base.us()}.",
        ["members", "priority", "round-robin", "routing cost"],
        rows,
        data,
        [Goal("1000 members ÷ 10 members, healthy", ratio(thousand, two), 1.2)],
    )


FIGURES = [cost, fallover_latency, stream_chunks, scale]
