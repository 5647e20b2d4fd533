"""Hostile providers: endless bodies, trickles, leaks under fault storms, secrets at DEBUG."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web

import fallover as f
from fallover.testing import Fault

from .conftest import SECRET, SimFactory, ask

MiB = 1024 * 1024


@pytest.fixture
async def hostile() -> AsyncIterator[str]:
    """A server whose endpoints misbehave on purpose."""

    async def endless_json(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b" " * MiB
        for _ in range(1024):  # 1 GiB offered; the client must stop long before
            await resp.write(chunk)
        return resp

    async def endless_sse_line(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: ")
        chunk = b"x" * MiB
        for _ in range(1024):
            await resp.write(chunk)
        return resp

    async def endless_text(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        piece = b'data: {"choices":[{"delta":{"content":"' + b"y" * 60_000 + b'"}}]}\n\n'
        for _ in range(1024 * MiB // len(piece)):
            await resp.write(piece)
        return resp

    async def trickle_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        while True:
            await resp.write(b" ")
            await asyncio.sleep(0.01)

    routes = {
        "/json/v1/chat/completions": endless_json,
        "/sse/v1/chat/completions": endless_sse_line,
        "/text/v1/chat/completions": endless_text,
        "/trickle/v1/chat/completions": trickle_body,
    }
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def client_tasks() -> int:
    """Tasks on our side; the in-process simulator's handler tasks wind down on their own."""
    return len(_client_tasks())


def _client_tasks() -> list[str]:
    names = []
    for t in asyncio.all_tasks():
        code = getattr(t.get_coro(), "cr_code", None)
        if code is None or "aiohttp/web_" not in code.co_filename:
            names.append(repr(t.get_coro()))
    return names


async def drain(c: f.OpenAIClient, stream: bool) -> None:
    if stream:
        async for _ in c.stream(ask()):
            pass
    else:
        await c.complete(ask())


@pytest.mark.parametrize(
    ("path", "stream", "limit"),
    [
        ("json", False, "max_body_bytes"),
        ("sse", True, "max_line_bytes"),
        ("text", True, "max_body_bytes"),
    ],
)
async def test_a_gigabyte_offered_memory_stays_bounded(
    hostile: str, path: str, stream: bool, limit: str
) -> None:
    """1 GiB bodies, lines or streams fail at their cap with small RSS growth."""
    gc.collect()
    before = rss_mib()
    async with f.OpenAIClient(model="m", base_url=f"{hostile}/{path}/v1", max_retries=0) as c:
        with (
            anyio.fail_after(30),
            pytest.raises((f.MalformedResponse, f.StreamInterrupted)) as info,
        ):
            await drain(c, stream)
    err = info.value.error if isinstance(info.value, f.StreamInterrupted) else info.value
    assert isinstance(err, f.MalformedResponse) and limit in str(err)
    gc.collect()
    assert rss_mib() - before < 200  # the defaults bound it near 32 MiB, not 1 GiB


async def test_a_body_that_never_ends_is_a_timeout(hostile: str) -> None:
    """A body trickled forever is cut by the attempt timeout."""
    async with f.OpenAIClient(
        model="m", base_url=f"{hostile}/trickle/v1", timeout=0.3, max_retries=0
    ) as c:
        with anyio.fail_after(5), pytest.raises(f.ProviderTimeout):
            await c.complete(ask())


async def test_no_leaks_after_fault_storms_and_cancel_storms(simulator: SimFactory) -> None:
    """2000 calls over mixed faults plus cancel storms leave no fds, tasks or warnings behind."""
    sim = await simulator(
        m429=Fault(fail_rate=0.5, fail_status=429, retry_after=0),
        m503=Fault(fail_rate=0.5, fail_status=503),
        reset=Fault(fail_rate=0.0, reset=True),
        html=Fault(fail_rate=0.5, fail_status=502, html=True),
        m500=Fault(statuses=[500, 200], repeat=True),
        slow=Fault(latency=0.05),
        hang=Fault(hang=True),
    )
    gc.collect()
    fds_before = len(os.listdir("/proc/self/fd"))
    tasks_before = client_tasks()

    def pool(*models: str) -> f.AsyncRouter:
        return f.AsyncRouter(
            [
                f.OpenAIClient(model=m, base_url=sim.base_url + "/v1", api_key=SECRET, timeout=2)
                for m in models
            ],
            cooldown=0.01,
            cooldown_max=0.02,
        )

    router = pool("m429", "m503", "reset", "html", "m500", "slow")
    async with router:
        results = await f.fan_out(router, [ask()] * 2000, concurrency=100)
    assert sum(isinstance(r, f.ChatResponse) for r in results) == 2000

    for _ in range(3):  # cancel storms: hundreds in flight, then cancelled
        storm = pool("hang", "slow")
        async with storm:
            with anyio.move_on_after(0.3):
                await f.fan_out(storm, [ask()] * 300, concurrency=300)

    await asyncio.sleep(0)  # let aiohttp's close callbacks run
    gc.collect()
    assert client_tasks() == tasks_before, _client_tasks()[:5]
    assert len(os.listdir("/proc/self/fd")) <= fds_before


async def test_key_never_logged_at_debug_under_every_fault(
    simulator: SimFactory, caplog: pytest.LogCaptureFixture, waits: list[float]
) -> None:
    """With DEBUG logging and every fault exercised, the key appears in nothing."""
    caplog.set_level(logging.DEBUG)
    faults = {
        "s401": Fault(statuses=[401]),
        "s429": Fault(statuses=[429, 429], retry_after=0),
        "s500": Fault(statuses=[500], repeat=True),
        "reset": Fault(reset=True),
        "trunc": Fault(truncate=True),
        "html": Fault(statuses=[503], html=True),
        "cut": Fault(stream_cut_after=1),
        "bad": Fault(malformed_after=1),
        "err": Fault(error_after=1),
        "hang": Fault(hang=True),
    }
    sim = await simulator(**faults)
    seen: list[str] = []
    for name in faults:
        for protocol in ("openai", "anthropic"):
            cls = f.OpenAIClient if protocol == "openai" else f.AnthropicClient
            base = sim.base_url + ("/v1" if protocol == "openai" else "")
            c = cls(model=name, base_url=base, api_key=SECRET, timeout=0.3, max_retries=1)
            seen.append(repr(c))
            async with c:
                for streaming in (False, True):
                    try:
                        if streaming:
                            async for _ in c.stream(ask()):
                                pass
                        else:
                            await c.complete(ask())
                    except f.FalloverError as exc:
                        link: BaseException | None = exc
                        while link is not None:
                            seen += [str(link), repr(link), repr(link.args)]
                            link = link.__cause__ or link.__context__
    seen += [r.getMessage() for r in caplog.records]
    seen += [str(r.args) for r in caplog.records]
    assert len(seen) > 40
    assert not [s for s in seen if SECRET in s]
