"""Shared fixtures: a loopback simulator, scripted members, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

import fallover
from fallover.testing import Fault, Scenario, Simulator

SECRET = "sk-SENTINEL-do-not-leak-0123456789"


def ask(text: str = "Review this diff") -> fallover.ChatRequest:
    """A one-message request."""
    return fallover.ChatRequest(messages=[fallover.Message(role="user", content=text)])


class FakeClock:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


class Recorder:
    """Stands in for a client's sleep: records delays, sleeps for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def no_sleep(client: fallover.OpenAIClient | fallover.AnthropicClient) -> Recorder:
    rec = Recorder()
    client._sleep = rec
    return rec


class Capture:
    """A loopback server that records each request and answers with ``payload``."""

    def __init__(self) -> None:
        self.payload: object = {}
        self.status = 200
        self.requests: list[tuple[str, dict[str, str], object]] = []
        self.base_url = ""


@pytest.fixture
async def capture() -> AsyncIterator[Capture]:
    """Start a recording server; set ``capture.payload`` before calling it."""
    from aiohttp import web

    cap = Capture()

    async def handle(request: web.Request) -> web.Response:
        cap.requests.append((request.path, dict(request.headers), await request.json()))
        return web.json_response(cap.payload, status=cap.status)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    cap.base_url = f"http://127.0.0.1:{port}"
    yield cap
    await runner.cleanup()


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
