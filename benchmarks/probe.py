"""Hot-path probe run in a subprocess against a given fallover source tree.

    PYTHONPATH=<that tree's src> python benchmarks/probe.py BASE_URL N REPEATS
    PYTHONPATH=<that tree's src> python benchmarks/probe.py --in-flight client|router BASE_URL N

Uses only the API that every release has (OpenAIClient, AsyncRouter, ChatRequest,
Message, TextDelta), so the same probe measures the current code and v0.1 side by
side in one run. Prints one JSON object: the best of the repeats, in seconds (on
a shared machine interference only ever adds time). The figures with
100 calls in flight are this process's CPU time per call: there the client
competes with the simulator for the machine's cores, and its own CPU is what
the code decides.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Awaitable, Callable

import fallover as f

REQ = f.ChatRequest(messages=[f.Message(role="user", content="Review: def f(): return 1")])


async def best(fn: Callable[[], Awaitable[object]], n: int, repeats: int) -> float:
    for _ in range(min(n, 20)):
        await fn()
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter() - start) / n)
    return min(samples)


async def cpu_in_flight(
    fn: Callable[[], Awaitable[object]], n: int, repeats: int, workers: int = 100
) -> float:
    """This process's CPU seconds per call with ``workers`` calls in flight."""

    async def worker(calls: int) -> None:
        for _ in range(calls):
            await fn()

    per_worker = max(1, n // workers)
    await asyncio.gather(*(worker(1) for _ in range(workers)))  # open the connections
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.process_time()
        await asyncio.gather(*(worker(per_worker) for _ in range(workers)))
        samples.append((time.process_time() - start) / (per_worker * workers))
    return min(samples)


async def main(base: str, n: int, repeats: int) -> dict[str, float]:
    def client(model: str) -> f.OpenAIClient:
        return f.OpenAIClient(model=model, base_url=base + "/v1", api_key="sk-bench")

    adapter = client("fast")
    router = f.AsyncRouter([client("fast"), client("backup")])
    failing = f.AsyncRouter([client("e503"), client("backup")], cooldown=1e-6, cooldown_max=1e-6)
    streamer = client("long")
    streaming_router = f.AsyncRouter([client("long"), client("backup")])

    async def drain(c: object) -> None:
        async for _ in c.stream(REQ):  # type: ignore[attr-defined]
            pass

    out: dict[str, float] = {}
    async with adapter, router, failing, streamer, streaming_router:
        out["client"] = await best(lambda: adapter.complete(REQ), n, repeats)
        out["router"] = await best(lambda: router.complete(REQ), n, repeats)
        out["fallover_503"] = await best(lambda: failing.complete(REQ), n, repeats)
        out["client_c100"] = await cpu_in_flight(lambda: adapter.complete(REQ), 10 * n, repeats)
        out["router_c100"] = await cpu_in_flight(lambda: router.complete(REQ), 10 * n, repeats)
        out["stream_client"] = await best(lambda: drain(streamer), max(2, n // 10), repeats)
        out["stream_router"] = await best(lambda: drain(streaming_router), max(2, n // 10), repeats)
    return out


async def in_flight(which: str, base: str, n: int) -> None:
    """Make ``n`` calls, 100 at a time, and nothing else: run under valgrind, the
    difference between two sizes is the instructions one call costs."""

    def client(model: str) -> f.OpenAIClient:
        return f.OpenAIClient(model=model, base_url=base + "/v1", api_key="sk-bench")

    caller: f.OpenAIClient | f.AsyncRouter = (
        client("fast") if which == "client" else f.AsyncRouter([client("fast"), client("backup")])
    )

    async def worker(calls: int) -> None:
        for _ in range(calls):
            await caller.complete(REQ)

    async with caller:
        await asyncio.gather(*(worker(1) for _ in range(100)))  # open the connections
        await asyncio.gather(*(worker(max(1, n // 100)) for _ in range(100)))


if __name__ == "__main__":
    if sys.argv[1] == "--in-flight":
        asyncio.run(in_flight(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
