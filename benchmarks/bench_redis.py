"""Shared cooldowns through Redis: how fast a park travels and what a call pays for it."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import anyio

import fallover as f
from fallover.testing import MockClient

from ._common import REQ, Env, Figure, Goal, Stats, per_call, ratio, skipped, stop

TITLE = "Shared cooldowns through Redis"


def _redis_store() -> Any:
    from fallover import RedisCooldowns

    return RedisCooldowns


async def redis(env: Env) -> Figure:
    """Park propagation between two stores, and per-call cost against the memory store."""
    binary = shutil.which("redis-server")
    if binary is None:
        return skipped("redis", TITLE, "redis-server is not installed")
    try:
        store_cls = _redis_store()
    except ImportError:
        return skipped("redis", TITLE, "the redis package is not installed")
    n = env.n(3000, 200)
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            a, b = store_cls(url, pool="bench"), store_cls(url, pool="bench")
            a.start()
            b.start()
            with anyio.fail_after(20):
                while not (a.connected and b.connected):
                    await anyio.sleep(0.01)
            hops = []
            for i in range(max(20, n // 10)):
                key = f"m/{i}"
                start = time.perf_counter()
                a.park(key, 30)
                while b.remaining(key) is None:
                    await asyncio.sleep(0)
                hops.append(time.perf_counter() - start)

            async def answer(request: f.ChatRequest) -> str:
                return "ok"

            def pool(store: Any) -> f.AsyncRouter:
                members = [MockClient(answer, alias="m/a"), MockClient(answer, alias="m/b")]
                return f.AsyncRouter(members, store=store)

            local, mirrored = pool(None), pool(b)
            memory = await per_call(lambda: local.complete(REQ), n, env.repeats)
            shared = await per_call(lambda: mirrored.complete(REQ), n, env.repeats)
            await a.aclose()
            await b.aclose()
        finally:
            stop(proc)
    hop = Stats.of(hops)
    return Figure(
        "redis",
        TITLE,
        "A park made by one store reaches another (own connections, local redis-server) in "
        "one pub/sub hop; calls read only the local mirror.",
        ["park propagation", "per call, memory store", "per call, Redis store"],
        [[hop.ms(), memory.us(), shared.us()]],
        {"propagation_s": hop.json(), "memory": memory.json(), "redis": shared.json()},
        [Goal("per call, Redis store ÷ memory store", ratio(shared, memory), 1.1)],
    )


FIGURES = [redis]
