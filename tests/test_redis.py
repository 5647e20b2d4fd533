"""RedisCooldowns against a real redis-server that the tests start and kill."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.abc
import pytest

import fallover as f
from fallover import RedisCooldowns
from fallover._redact import redact_url

from .conftest import ask

pytestmark = pytest.mark.redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a loopback port."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)  # waiting for an external process to listen
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server; missing binary fails under FALLOVER_REQUIRE_REDIS=1."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("FALLOVER_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed but FALLOVER_REQUIRE_REDIS=1")
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    server.start()
    yield server
    server.stop()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for another process's effect to arrive (polling, bounded)."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


async def connected(*stores: RedisCooldowns) -> None:
    for s in stores:
        s.start()
    await until(lambda: all(s.connected for s in stores))


def primary_and_backup(
    store: RedisCooldowns, sent: list[str], limits: dict[str, f.Pace] | None = None
) -> f.AsyncRouter:
    """A pool of ``p/a`` (each call it takes noted in ``sent``) and ``p/b``, over ``store``."""

    async def primary(request: f.ChatRequest) -> str:
        sent.append("a")
        return "a"

    async def backup(request: f.ChatRequest) -> str:
        return "b"

    return f.AsyncRouter(
        [f.MockClient(primary, alias="p/a"), f.MockClient(backup, alias="p/b")],
        store=store,
        limits=limits,
    )


async def test_park_propagates_to_another_store(redis_server: RedisServer) -> None:
    """A park written by one store is honoured by another within a pub/sub hop."""
    a = RedisCooldowns(redis_server.url, pool="p")
    b = RedisCooldowns(redis_server.url, pool="p")
    other_pool = RedisCooldowns(redis_server.url, pool="q")
    try:
        await connected(a, b, other_pool)
        a.park("openai/m", 30)
        await until(lambda: b.remaining("openai/m") is not None)
        assert 28 < (b.remaining("openai/m") or 0) <= 30
        assert other_pool.remaining("openai/m") is None
    finally:
        for s in (a, b, other_pool):
            await s.aclose()


async def test_max_set_under_concurrent_writers(redis_server: RedisServer) -> None:
    """Many stores parking one member at once: the longest park wins everywhere."""
    stores = [RedisCooldowns(redis_server.url, pool="p") for _ in range(8)]
    try:
        await connected(*stores)
        for i, s in enumerate(stores):
            s.park("m", 10 + i * 5)  # 10 .. 45
        await until(lambda: all((s.remaining("m") or 0) > 40 for s in stores))
        import redis.asyncio as aioredis

        r = aioredis.from_url(redis_server.url)
        ttl = await r.pttl("fallover:p:park:m")
        await r.aclose()
        assert 40_000 < ttl <= 45_000  # Redis expires it by itself
    finally:
        for s in stores:
            await s.aclose()


async def test_mirror_loads_existing_parks_on_connect(redis_server: RedisServer) -> None:
    """A store that starts late loads parks already in Redis (pub/sub loss recovery)."""
    a = RedisCooldowns(redis_server.url, pool="p")
    try:
        await connected(a)
        a.park("m", 30)
        await until(lambda: a.pending == 0)
        late = RedisCooldowns(redis_server.url, pool="p")
        await connected(late)
        assert late.remaining("m") is not None
        await late.aclose()
    finally:
        await a.aclose()


async def test_probe_is_single_flight_across_stores(redis_server: RedisServer) -> None:
    """When a park expires everywhere, only one store wins the probe."""
    now = [1000.0]
    a = RedisCooldowns(redis_server.url, pool="p", clock=lambda: now[0])
    b = RedisCooldowns(redis_server.url, pool="p", clock=lambda: now[0])
    try:
        await connected(a, b)
        a.park("m", 5)
        await until(lambda: b.remaining("m") is not None)
        now[0] += 10
        assert a.remaining("m") is None and b.remaining("m") is None
        assert a.half_open("m") and b.half_open("m")
        won = [await a.begin_probe("m"), await b.begin_probe("m")]
        assert won == [True, False]
        a.succeeded("m", started=a.now())
        await until(lambda: not b.half_open("m"))
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_killed_and_restarted(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis dies: calls go on with local parks, one warning; it returns: sharing resumes."""
    caplog.set_level(logging.WARNING, logger="fallover")
    a = RedisCooldowns(redis_server.url, pool="p")
    b = RedisCooldowns(redis_server.url, pool="p")
    try:
        await connected(a, b)
        redis_server.stop()
        await until(lambda: not a.connected and not b.connected)
        for _ in range(50):
            a.park("m", 30)  # local parks keep working, nothing raises
        assert a.remaining("m") is not None
        failures = a.failures
        await until(lambda: a.failures >= failures + 3)  # several reconnects have failed
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 2  # one per store, not one per park or per retry
        redis_server.start()
        await until(lambda: a.connected and b.connected, timeout=20)
        await until(lambda: b.remaining("m") is not None)  # a's pending park was flushed
    finally:
        await a.aclose()
        await b.aclose()


async def test_router_with_redis_store_across_processes(redis_server: RedisServer) -> None:
    """Two OS processes share one pool: a park made in one is skipped in the other."""
    script = textwrap.dedent(f"""
        import asyncio, fallover

        async def boom(request):
            raise fallover.RateLimited("429", status=429, retry_after=60)

        async def main():
            store = fallover.RedisCooldowns({redis_server.url!r}, pool="shared")
            router = fallover.AsyncRouter(
                [fallover.MockClient(boom, alias="p/a"), fallover.MockClient(lambda r: asyncio.sleep(0, "ok"), alias="p/b")],
                store=store,
            )
            resp = await router.complete(fallover.ChatRequest(messages=[fallover.Message(role="user", content="x")]))
            assert resp.alias == "p/b", resp
            while store.pending:
                await asyncio.sleep(0.01)
            await router.aclose()
            print("parked")

        asyncio.run(main())
    """)
    called: list[str] = []
    store = RedisCooldowns(redis_server.url, pool="shared")
    router = primary_and_backup(store, called)
    try:
        await connected(store)
        done = await anyio.run_process([sys.executable, "-c", script], check=False)
        assert done.returncode == 0, done.stderr.decode()
        assert b"parked" in done.stdout
        await until(lambda: store.remaining("p/a") is not None)
        resp = await router.complete(ask())
        assert resp.alias == "p/b"
        assert called == []
    finally:
        await router.aclose()


def test_credentials_never_in_repr_or_logs() -> None:
    """A password in the URL is redacted from reprs."""
    url = "redis://user:hunter2-secret@127.0.0.1:1/0"
    assert "hunter2" not in redact_url(url)
    assert "hunter2" not in repr(RedisCooldowns(url, pool="p"))


async def test_config_builds_a_redis_store(redis_server: RedisServer, tmp_path: Path) -> None:
    """routing.store = redis://... selects RedisCooldowns named after the pool."""
    cfg = tmp_path / "fallover.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        [providers.local]
        protocol = "openai"
        base_url = "http://127.0.0.1:9/v1"
        [routing]
        models = [{{ provider = "local", model = "a" }}, {{ provider = "local", model = "b" }}]
        store = "{redis_server.url}"
        name = "review-pool"
    """)
    )
    client = f.build_client(f.load_config(cfg))
    assert isinstance(client, f.AsyncRouter)
    assert isinstance(client.store, RedisCooldowns) and client.store.pool == "review-pool"
    await client.aclose()


async def test_a_new_process_sees_existing_parks_on_its_first_call(
    redis_server: RedisServer,
) -> None:
    """A store created after a park was written honours it on its very first call."""
    writer = RedisCooldowns(redis_server.url, pool="shared")
    try:
        await connected(writer)
        writer.park("p/a", 30)
        await until(lambda: writer.pending == 0)
    finally:
        await writer.aclose()
    called: list[str] = []
    fresh = RedisCooldowns(redis_server.url, pool="shared")
    router = primary_and_backup(fresh, called)
    try:
        with anyio.fail_after(5):
            resp = await router.complete(ask())
        assert resp.alias == "p/b"
        assert called == []
    finally:
        await router.aclose()


async def test_a_silent_redis_does_not_hold_the_first_call() -> None:
    """Redis accepting connections but never answering: the first call goes on with local parks."""

    async def accept(stream: anyio.abc.SocketStream) -> None:
        async with stream:  # keep it open, say nothing; closed when the test ends
            await anyio.sleep_forever()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    store = RedisCooldowns(f"redis://127.0.0.1:{port}/0", pool="p", first_load_timeout=0.2)

    async def answer(request: f.ChatRequest) -> str:
        return "a"

    router = f.AsyncRouter(
        [f.MockClient(answer, alias="p/a"), f.MockClient(answer, alias="p/b")], store=store
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        try:
            with anyio.fail_after(5):
                resp = await router.complete(ask())
            assert resp.alias == "p/a"
            assert not store.connected
        finally:
            await router.aclose()
            tg.cancel_scope.cancel()
    await listener.aclose()


async def test_rate_limits_are_shared_by_every_process_of_the_pool(
    redis_server: RedisServer,
) -> None:
    """Two stores pacing one member at rpm=600 share its 9 requests a second (90%) between them."""
    sent: list[str] = []

    def pool() -> f.AsyncRouter:
        store = RedisCooldowns(redis_server.url, pool="paced", wall=lambda: 1_000_000.0)
        return primary_and_backup(store, sent, limits={"p/a": f.Pace(rpm=600)})

    one, two = pool(), pool()
    try:
        with anyio.fail_after(10):
            while len(sent) < 9:  # leases arrive in the background: keep asking
                await one.complete(ask())
                await two.complete(ask())
                await anyio.sleep(0.01)
            for _ in range(50):
                await one.complete(ask())
                await two.complete(ask())
                await anyio.sleep(0.001)
        assert len(sent) == 9  # one second's allowance, for both processes together
    finally:
        await one.aclose()
        await two.aclose()
