"""Shared fixtures: a loopback simulator, scripted members, a fake clock."""

from __future__ import annotations

import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from aiohttp import web

import fallover
import fallover.testing
from fallover.testing import Fault, Scenario, Simulator

SECRET = "sk-SENTINEL-do-not-leak-0123456789"


def ask(text: str = "Review this diff") -> fallover.ChatRequest:
    """A one-message request."""
    return fallover.ChatRequest(messages=[fallover.Message(role="user", content=text)])


class FakeClock:
    """A monotonic clock that only moves when told, or when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Virtual sleep: the clock jumps by ``seconds`` (a store's ``sleep=``)."""
        import anyio.lowlevel

        self.slept.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


SimFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def simulator() -> AsyncIterator[SimFactory]:
    """Start simulators on loopback: ``sim = await simulator(model=Fault(...))``."""
    started: list[Simulator] = []

    async def start(**models: Fault) -> Simulator:
        sim = Simulator(Scenario(models=dict(models)))
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.close()


@pytest.fixture(autouse=True)
def _real_backoff() -> Iterator[None]:
    """Every test starts and ends with real backoff waits, whatever it switched on."""
    with fallover.testing.set_testing(False):
        yield


@pytest.fixture
def waits() -> Iterator[list[float]]:
    """Backoff waits are instant in this test; the list holds the waits asked for, in order."""
    with fallover.testing.set_testing(True) as asked:
        yield asked


class InstantBackoff:
    """Makes every backoff wait instant for the rest of the test; ``delays`` records them."""

    def __init__(self) -> None:
        self.delays: list[float] = fallover.testing.set_testing(True).waits


class Recorder:
    """Stands in for a sleep (the simulator's): records delays, sleeps for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def config_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No provider keys, no config file to find: HOME is tmp/home, the cwd tmp/work."""
    from fallover._config import PRESETS

    names = [p.key_env for p in PRESETS.values() if p.key_env]
    names += [p.base_url_env for p in PRESETS.values() if p.base_url_env]
    for var in [*names, "FALLOVER_CONFIG", "XDG_CONFIG_HOME"]:
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


class Upstream:
    """A loopback OpenAI-compatible server that records each request's headers and body."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """Serve one plain chat completion answer to every request, on loopback."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    up = Upstream(f"http://127.0.0.1:{sock.getsockname()[1]}/v1")

    async def answer(request: web.Request) -> web.Response:
        up.requests.append((dict(request.headers), await request.json()))
        message = {"role": "assistant", "content": "ok"}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [choice],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    yield up
    await runner.cleanup()


async def interrupt_when(
    proc: anyio.abc.Process, ready: Callable[[], bool]
) -> tuple[int, float, str, str]:
    """Press Ctrl-C in ``proc`` once ``ready()``: its exit status, seconds to exit, stdout, stderr.

    A child that outlives a failed assertion is killed, never left behind.
    """
    try:
        with anyio.fail_after(30):
            while not ready():
                await anyio.sleep(0.02)  # waiting on another process's requests
        proc.send_signal(signal.SIGINT)
        start = anyio.current_time()
        with anyio.fail_after(10):
            code = await proc.wait()
        elapsed = anyio.current_time() - start
        assert proc.stdout is not None and proc.stderr is not None
        out = (await proc.stdout.receive()).decode()
        err = (await proc.stderr.receive()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.aclose()
    return code, elapsed, out, err
