"""`fallover serve` as a real process: SIGTERM drains, and workers share parks through Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import anyio
import openai
import pytest
from aiohttp import web

from fallover.testing import Fault, Scenario, Simulator

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """A `fallover serve` process and the lines it printed at startup."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def line(self, contains: str) -> str:
        """The next stderr line that contains ``contains``."""
        assert self.proc.stderr is not None
        with anyio.fail_after(30):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError(f"fallover serve exited before printing {contains!r}")
                text = raw.decode()
                if contains in text:
                    return text


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Run ``fallover serve --config F --port P [--workers N]``; killed at the end if still up."""
    procs: list[asyncio.subprocess.Process] = []

    async def start(config: str, *, workers: int = 1) -> Gateway:
        path = tmp_path / "fallover.toml"
        path.write_text(config)
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fallover",
            "serve",
            "--config",
            str(path),
            "--port",
            str(port),
            "--workers",
            str(workers),
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
            start_new_session=True,  # its workers share its process group, ended together
        )
        procs.append(proc)
        gw = Gateway(proc, port)
        for _ in range(workers):
            await gw.line("listening on http://")
        return gw

    yield start  # type: ignore[misc]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def _listen(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def test_sigterm_drains_in_flight_calls(start_gateway: Callable[..., object]) -> None:
    """On SIGTERM the call in flight finishes, new connections are refused, and it exits 0."""
    arrived, release = anyio.Event(), anyio.Event()

    async def upstream(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "finished"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream)
    runner, url = await _listen(app)
    try:
        gw = await start_gateway(  # type: ignore[operator]
            f'[providers.up]\nprotocol = "openai"\nbase_url = "{url}/v1"\nmodel = "m"\n'
            '[routing]\nname = "pool"\nmodels = [{ provider = "up" }]\n'
        )
        answers: list[str | None] = []
        async with (
            openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="k", max_retries=0) as client,
            anyio.create_task_group() as tg,
        ):

            async def call() -> None:
                r = await client.chat.completions.create(
                    model="pool", messages=[{"role": "user", "content": "x"}]
                )
                answers.append(r.choices[0].message.content)

            tg.start_soon(call)
            await arrived.wait()
            gw.proc.send_signal(signal.SIGTERM)
            await gw.line("draining 1 call")
            with anyio.fail_after(10):
                while not _refused(gw.port):  # the listening socket closes right after
                    await anyio.sleep(0.01)
            release.set()
        with anyio.fail_after(30):
            code = await gw.proc.wait()
        assert answers == ["finished"]
        assert code == 0
    finally:
        await runner.cleanup()


class RedisServer:
    """A throwaway redis-server on a loopback port."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server; a missing binary fails under FALLOVER_REQUIRE_REDIS=1."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("FALLOVER_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server is not installed but FALLOVER_REQUIRE_REDIS=1")
        pytest.skip("redis-server is not installed")
    server = RedisServer(binary, tmp_path)
    yield server
    server.proc.kill()
    server.proc.wait()


@pytest.mark.redis
async def test_two_workers_share_a_park_through_redis(
    start_gateway: Callable[..., object], redis_server: RedisServer
) -> None:
    """A member parked by one worker is skipped by the other: it is asked only once."""
    with anyio.fail_after(10):
        while not redis_server.ready():
            await anyio.sleep(0.02)
    scenario = Scenario(
        models={
            "model-a": Fault(fail_rate=1.0, fail_status=429, retry_after=60),
            "model-b": Fault(reply="from b"),
        }
    )
    async with Simulator(scenario) as sim:
        gw = await start_gateway(  # type: ignore[operator]
            f'[providers.sima]\nprotocol = "openai"\nbase_url = "{sim.base_url}/v1"\n'
            'model = "model-a"\n'
            f'[providers.simb]\nprotocol = "anthropic"\nbase_url = "{sim.base_url}"\n'
            'model = "model-b"\n'
            f'[routing]\nname = "review"\nstore = "{redis_server.url}"\n'
            'models = [{ provider = "sima" }, { provider = "simb" }]\n',
            workers=2,
        )
        body = {"model": "review", "messages": [{"role": "user", "content": "x"}]}
        # A fresh connection per request, so the kernel spreads them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
                assert resp.headers["x-fallover-alias"] == "simb/model-b"
                first = resp.headers["x-fallover-worker"]
            # Wait until the other worker reports the park it learned through Redis.
            with anyio.fail_after(10):
                while True:
                    async with session.get(f"{gw.url}/healthz") as resp:
                        health = await resp.json()
                    if str(health["pid"]) != first and "sima/model-a" in health["parked"].get(
                        "review", {}
                    ):
                        break
            workers = {first}
            for _ in range(200):
                async with session.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    assert resp.headers["x-fallover-alias"] == "simb/model-b"
                    workers.add(resp.headers["x-fallover-worker"])
                if len(workers) == 2:
                    break
        assert len(workers) == 2
        assert sim.requests_for("model-a") == 1
        gw.proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            assert await gw.proc.wait() == 0


def test_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    """Without client keys, `fallover serve` will not listen beyond loopback, and says why."""
    path = tmp_path / "fallover.toml"
    path.write_text(
        '[providers.up]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nmodel = "m"\n'
        '[server]\napi_keys_env = "GATEWAY_TEST_KEYS"\n'
    )
    env = {k: v for k, v in os.environ.items() if k != "GATEWAY_TEST_KEYS"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    done = subprocess.run(
        [sys.executable, "-m", "fallover", "serve", "--config", str(path), "--host", "0.0.0.0"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"refusing to listen on 0.0.0.0 without client keys: set $GATEWAY_TEST_KEYS" in (
        done.stderr
    )
