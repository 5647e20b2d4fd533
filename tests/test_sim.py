"""The simulator: each scripted fault, the control endpoints, scenario files."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import anyio
import pytest

import fallover as f
from fallover.testing import Fault, Scenario, Simulator, load_scenario

from .conftest import SimFactory, ask


async def post(
    sim: Simulator, model: str, *, stream: bool = False
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            sim.base_url + "/v1/chat/completions",
            json={
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
                "stream": stream,
            },
        ) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_status_sequence_then_healthy(simulator: SimFactory) -> None:
    """statuses play in order, then the model is healthy; repeat cycles them."""
    sim = await simulator(
        once=Fault(statuses=[429, 503]), loop=Fault(statuses=[500, 200], repeat=True)
    )
    assert [(await post(sim, "once"))[0] for _ in range(3)] == [429, 503, 200]
    assert [(await post(sim, "loop"))[0] for _ in range(4)] == [500, 200, 500, 200]


async def test_retry_after_headers(simulator: SimFactory) -> None:
    """Retry-After and retry-after-ms are sent on failures."""
    sim = await simulator(m=Fault(statuses=[429], retry_after=3, retry_after_ms=1500))
    status, headers, _ = await post(sim, "m")
    assert status == 429 and headers["Retry-After"] == "3" and headers["retry-after-ms"] == "1500"


async def test_error_type_and_html(simulator: SimFactory) -> None:
    """error_type sets the body's type; html serves a page instead."""
    sim = await simulator(
        q=Fault(statuses=[429], error_type="insufficient_quota"), h=Fault(statuses=[502], html=True)
    )
    assert b"insufficient_quota" in (await post(sim, "q"))[2]
    status, headers, body = await post(sim, "h")
    assert (
        status == 502
        and headers["Content-Type"].startswith("text/html")
        and body.startswith(b"<html>")
    )


async def test_down_for_window() -> None:
    """down_for fails requests until the window passes, then answers."""
    async with Simulator(Scenario(models={"m": Fault(down_for=0.3)})) as sim:
        assert (await post(sim, "m"))[0] == 503
        with anyio.fail_after(5):
            while (await post(sim, "m"))[0] != 200:
                await anyio.sleep(0.05)  # waiting out the scripted window
        assert sim.log[-1]["fault"] == "ok"


async def test_fail_rate_is_seeded() -> None:
    """fail_rate draws from a seeded generator: the same scenario fails the same requests."""
    runs = []
    for _ in range(2):
        async with Simulator(
            Scenario(models={"m": Fault(fail_rate=0.5, fail_status=429)}, seed=3)
        ) as sim:
            runs.append([(await post(sim, "m"))[0] for _ in range(20)])
    assert runs[0] == runs[1] and 0 < runs[0].count(429) < 20


async def test_after_keeps_the_first_requests_healthy(simulator: SimFactory) -> None:
    """after=N serves N healthy requests before the fault starts."""
    sim = await simulator(m=Fault(after=2, statuses=[429], repeat=True))
    assert [(await post(sim, "m"))[0] for _ in range(4)] == [200, 200, 429, 429]


async def test_latency_and_token_delay(simulator: SimFactory) -> None:
    """latency delays headers; token_delay spaces the chunks."""
    sim = await simulator(m=Fault(latency=0.2, reply="a b c", token_delay=0.1))
    async with f.OpenAIClient(model="m", base_url=sim.base_url + "/v1") as c:
        start = time.monotonic()
        events = [e async for e in c.stream(ask())]
        assert time.monotonic() - start >= 0.4
    assert events[-1] == f.Completed(response=events[-1].response)  # type: ignore[union-attr]


async def test_log_and_reset_endpoints(simulator: SimFactory) -> None:
    """The log records each request without keys; reset clears it and the counters."""
    sim = await simulator(m=Fault(statuses=[429]))
    await post(sim, "m")
    async with aiohttp.ClientSession() as s:
        async with s.get(sim.base_url + "/_sim/log") as resp:
            log = await resp.json()
        assert log[0]["model"] == "m" and log[0]["status"] == 429 and log[0]["auth"] is False
        assert set(log[0]) == {"seq", "t", "model", "protocol", "stream", "status", "fault", "auth"}
        async with s.post(sim.base_url + "/_sim/reset") as resp:
            assert resp.status == 200
        async with s.get(sim.base_url + "/_sim/health") as resp:
            assert (await resp.json())["ok"] is True
    assert sim.requests_for("m") == 0 and not sim.log
    assert (await post(sim, "m"))[0] == 429  # the sequence starts again


async def test_context_window_fault(simulator: SimFactory) -> None:
    """A prompt over context_window gets a context-length error both protocols classify."""
    sim = await simulator(m=Fault(context_window=1))
    for c in (
        f.OpenAIClient(model="m", base_url=sim.base_url + "/v1", max_retries=0),
        f.AnthropicClient(model="m", base_url=sim.base_url, max_retries=0),
    ):
        async with c:
            with pytest.raises(f.ContextTooLong):
                await c.complete(ask("a long prompt " * 10))


async def test_anthropic_needs_its_version_header(simulator: SimFactory) -> None:
    """Like the real API, /v1/messages refuses a request without anthropic-version."""
    sim = await simulator()
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            sim.base_url + "/v1/messages", json={"model": "m", "messages": [], "max_tokens": 5}
        ) as resp,
    ):
        assert resp.status == 400


def test_scenario_file_errors_name_file_and_key(tmp_path: Path) -> None:
    """A bad scenario file is a ConfigError naming the file and key."""
    bad = tmp_path / "s.toml"
    bad.write_text("[models.m]\nlatency = -1\n")
    with pytest.raises(f.ConfigError) as info:
        load_scenario(bad)
    assert info.value.path == str(bad) and info.value.key == "models.m.latency"
    bad.write_text("[models.m]\nlatnecy = 1\n")
    with pytest.raises(f.ConfigError, match="latnecy"):
        load_scenario(bad)


def test_binds_loopback_by_default() -> None:
    """The simulator listens on 127.0.0.1 unless told otherwise."""
    assert Simulator().host == "127.0.0.1"


def test_public_names_report_the_public_module() -> None:
    """Simulator, Scenario and Fault name fallover.testing in reprs and tracebacks."""
    assert {cls.__module__ for cls in (Simulator, Scenario, Fault)} == {"fallover.testing"}
    assert repr(Fault(latency=1.0)) == "Fault(latency=1.0)"
