"""What every adapter shares: transport faults, timeouts, limits, retries, secrets.

Each test runs against both wire protocols on a real loopback simulator.
"""

from __future__ import annotations

import inspect
import logging

import aiohttp
import anyio
import msgspec
import pytest

import fallover as f
from fallover._providers._base import BaseClient, backoff_delay, map_transport_error
from fallover.testing import Fault

from .conftest import SECRET, SimFactory, ask, no_sleep

PROTOCOLS = ["openai", "anthropic"]


def client(protocol: str, base: str, model: str = "m", **kw: object) -> BaseClient:
    if protocol == "openai":
        return f.OpenAIClient(model=model, base_url=base + "/v1", api_key=SECRET, **kw)  # type: ignore[arg-type]
    return f.AnthropicClient(model=model, base_url=base, api_key=SECRET, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def fails_with(c: BaseClient, cls: type[Exception]) -> Exception:
    async with c:
        with anyio.fail_after(10), pytest.raises(cls) as info:
            await c.complete(ask())
    return info.value


async def test_refused_connection(protocol: str) -> None:
    """A refused connection is ConnectionFailed naming the member."""
    with anyio.fail_after(5):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()
    err = await fails_with(
        client(protocol, f"http://127.0.0.1:{port}", max_retries=0), f.ConnectionFailed
    )
    assert "cannot connect" in str(err)
    assert err.alias == f"{protocol}/m"  # type: ignore[attr-defined]


async def test_reset_before_headers(protocol: str, simulator: SimFactory) -> None:
    """A connection dropped before headers is ConnectionFailed."""
    sim = await simulator(m=Fault(reset=True))
    await fails_with(client(protocol, sim.base_url, max_retries=0), f.ConnectionFailed)


async def test_truncated_body(protocol: str, simulator: SimFactory) -> None:
    """Half a body then a drop is ConnectionFailed, never a success."""
    sim = await simulator(m=Fault(truncate=True))
    await fails_with(client(protocol, sim.base_url, max_retries=0), f.ConnectionFailed)


async def test_html_error_page(protocol: str, simulator: SimFactory) -> None:
    """An HTML 502 page is ServerFailed with the status."""
    sim = await simulator(m=Fault(statuses=[502], html=True))
    err = await fails_with(client(protocol, sim.base_url, max_retries=0), f.ServerFailed)
    assert err.status == 502  # type: ignore[attr-defined]
    assert "HTML" in str(err)


async def test_html_under_200_is_malformed(protocol: str, simulator: SimFactory) -> None:
    """A 200 whose body is not the protocol's JSON is MalformedResponse."""
    sim = await simulator(m=Fault(reply="x"))
    c = client(protocol, sim.base_url, max_retries=0)
    c._parse = lambda body: msgspec.json.decode(b"<html>", type=dict)  # type: ignore[method-assign]
    await fails_with(c, f.MalformedResponse)


async def test_hang_is_a_provider_timeout(protocol: str, simulator: SimFactory) -> None:
    """A silent provider is cut at its timeout and not retried."""
    sim = await simulator(m=Fault(hang=True))
    c = client(protocol, sim.base_url, timeout=0.2, max_retries=3)
    rec = no_sleep(c)
    err = await fails_with(c, f.ProviderTimeout)
    assert "timeout" in str(err)
    assert rec.delays == []
    assert sim.requests_for("m") == 1


async def test_retries_honour_retry_after(protocol: str, simulator: SimFactory) -> None:
    """Two 429s with Retry-After: 2 are retried after 2 s each, then answered."""
    sim = await simulator(m=Fault(statuses=[429, 429], retry_after=2))
    c = client(protocol, sim.base_url)
    rec = no_sleep(c)
    async with c:
        resp = await c.complete(ask())
    assert resp.text
    assert rec.delays == [2.0, 2.0]


async def test_long_retry_after_gives_up_at_once(protocol: str, simulator: SimFactory) -> None:
    """A Retry-After over max_retry_wait is not waited for: the error carries it."""
    sim = await simulator(m=Fault(statuses=[429], retry_after=30))
    c = client(protocol, sim.base_url, max_retry_wait=10)
    rec = no_sleep(c)
    err = await fails_with(c, f.RateLimited)
    assert err.retry_after == 30  # type: ignore[attr-defined]
    assert rec.delays == []


async def test_backoff_without_retry_after(protocol: str, simulator: SimFactory) -> None:
    """500s are retried with jittered exponential backoff up to max_retries."""
    sim = await simulator(m=Fault(statuses=[500], repeat=True))
    c = client(protocol, sim.base_url, max_retries=4)
    rec = no_sleep(c)
    await fails_with(c, f.ServerFailed)
    assert sim.requests_for("m") == 5
    for i, d in enumerate(rec.delays):
        base = min(0.5 * 2**i, 8)
        assert base / 2 <= d <= base


async def test_request_fatal_errors_are_not_retried(protocol: str, simulator: SimFactory) -> None:
    """A 400 is raised after one request."""
    sim = await simulator(m=Fault(statuses=[400]))
    c = client(protocol, sim.base_url)
    no_sleep(c)
    await fails_with(c, f.BadRequest)
    assert sim.requests_for("m") == 1


async def test_body_cap(protocol: str, simulator: SimFactory) -> None:
    """A body over max_body_bytes fails as MalformedResponse."""
    sim = await simulator(m=Fault(reply="word " * 5000))
    err = await fails_with(
        client(protocol, sim.base_url, max_body_bytes=1000, max_retries=0), f.MalformedResponse
    )
    assert "max_body_bytes" in str(err)


async def test_redirect_is_not_followed(protocol: str) -> None:
    """A 307 to another host is not followed; the key never leaves."""
    from aiohttp import web

    seen: list[str] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(request.headers.get("authorization", "") + request.headers.get("x-api-key", ""))
        return web.json_response({})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{port2}/v1/chat/completions")

    app1 = web.Application()
    app1.router.add_post("/{tail:.*}", redirect)
    app2 = web.Application()
    app2.router.add_post("/{tail:.*}", other)
    r1, r2 = web.AppRunner(app1), web.AppRunner(app2)
    await r1.setup()
    await r2.setup()
    s1, s2 = web.TCPSite(r1, "127.0.0.1", 0), web.TCPSite(r2, "127.0.0.2", 0)
    await s1.start()
    await s2.start()
    port1 = s1._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    port2 = s2._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        err = await fails_with(
            client(protocol, f"http://127.0.0.1:{port1}", max_retries=0), f.MalformedResponse
        )
        assert "redirect" in str(err)
        assert seen == []
    finally:
        await r1.cleanup()
        await r2.cleanup()


async def test_key_never_in_errors_reprs_or_logs(
    protocol: str, simulator: SimFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With DEBUG logging and a run of faults, the key appears nowhere."""
    caplog.set_level(logging.DEBUG)
    sim = await simulator(
        a=Fault(statuses=[401]),
        b=Fault(statuses=[429, 500], retry_after=0),
        c=Fault(reset=True),
        d=Fault(statuses=[502], html=True),
    )
    texts: list[str] = []
    for model in "abcd":
        c = client(protocol, sim.base_url, model=model, max_retries=2)
        no_sleep(c)
        texts.append(repr(c))
        async with c:
            try:
                await c.complete(ask())
            except f.ProviderError as exc:
                texts += [str(exc), repr(exc), repr(exc.__cause__)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(SECRET not in t for t in texts)
    assert any("api_key=<set>" in t for t in texts)


def test_every_aiohttp_error_is_mapped() -> None:
    """Every exception class aiohttp exports maps to a ProviderError."""
    classes = [
        obj
        for name in aiohttp.__all__
        if inspect.isclass(obj := getattr(aiohttp, name)) and issubclass(obj, aiohttp.ClientError)
    ]
    assert len(classes) > 15
    for cls in classes:
        exc = cls.__new__(cls)
        Exception.__init__(exc, "x")
        mapped = map_transport_error(exc, alias="p/m", secret=None)
        assert isinstance(mapped, f.ProviderError), cls
        assert not isinstance(mapped, f.RequestRejected), cls


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (msgspec.DecodeError("bad"), f.MalformedResponse),
        (msgspec.ValidationError("shape"), f.MalformedResponse),
        (TimeoutError(), f.ProviderTimeout),
        (ConnectionResetError(), f.ConnectionFailed),
        (OSError("net"), f.ConnectionFailed),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), f.MalformedResponse),
    ],
)
def test_msgspec_and_os_errors_are_mapped(exc: Exception, cls: type[f.ProviderError]) -> None:
    """msgspec, timeout and OS errors map onto the tree."""
    assert type(map_transport_error(exc, alias="p/m", secret=None)) is cls


def test_backoff_shape() -> None:
    """Backoff doubles from 0.5 s, caps at 8 s, and jitters within [d/2, d]."""
    assert [backoff_delay(i, rand=lambda: 1.0) for i in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert backoff_delay(3, rand=lambda: 0.0) == 2.0


def test_constructor_validates() -> None:
    """Bad settings name themselves."""
    with pytest.raises(ValueError, match="base_url"):
        f.OpenAIClient(model="m", base_url="ftp://x")
    with pytest.raises(ValueError, match="timeout"):
        f.OpenAIClient(model="m", timeout=0)
    with pytest.raises(ValueError, match="max_retries"):
        f.OpenAIClient(model="m", max_retries=-1)
    with pytest.raises(ValueError, match="model"):
        f.OpenAIClient(model="")


async def test_closed_client_refuses_calls(simulator: SimFactory) -> None:
    """After aclose, a call is a RuntimeError, not a provider failure."""
    sim = await simulator()
    c = client("openai", sim.base_url)
    await c.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await c.complete(ask())


def test_env_proxy_is_read_once_and_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to https endpoints; NO_PROXY exempts a host."""
    from fallover._providers._base import _env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert (
        _env_proxy("https://api.example.test/v1/chat/completions") == "http://proxy.internal:3128"
    )
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    assert _env_proxy("https://api.example.test/v1/chat/completions") is None
