"""What every client shares: transport faults, timeouts, limits, retries, settings, secrets.

Wire faults run against both protocols on a real loopback simulator; the rest
runs the real clients over ``fallover.testing.MockTransport``.
"""

from __future__ import annotations

import inspect
import logging

import aiohttp
import anyio
import pytest

import fallover as f
from fallover._client import PoolSettings, pooled
from fallover.testing import Fault, MockTransport, Request, Response

from .conftest import SECRET, SimFactory, ask

PROTOCOLS = ["openai", "anthropic"]

OPENAI_OK = {
    "model": "m",
    "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
}


def client(protocol: str, base: str, model: str = "m", **kw: object) -> f.OpenAIClient:
    if protocol == "openai":
        return f.OpenAIClient(model=model, base_url=base + "/v1", api_key=SECRET, **kw)  # type: ignore[arg-type]
    return f.AnthropicClient(model=model, base_url=base, api_key=SECRET, **kw)  # type: ignore[arg-type, return-value]


def mock(handler: object, **kw: object) -> f.OpenAIClient:
    """An OpenAI client over a MockTransport."""
    return f.OpenAIClient(
        model="m",
        base_url="https://llm.test/v1",
        api_key=SECRET,
        transport=MockTransport(handler),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def fails_with(c: f.LLMClient, cls: type[Exception]) -> Exception:
    async with c:
        with anyio.fail_after(10), pytest.raises(cls) as info:
            await c.complete(ask())
    return info.value


def chain(exc: BaseException) -> list[BaseException]:
    """The exception, its cause and its context, all the way down."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
        if isinstance(item, f.StreamInterrupted):
            todo.append(item.error)
    return seen


# -- transport faults -------------------------------------------------------------


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


async def test_html_under_200_is_malformed() -> None:
    """A 200 whose body is an HTML page is MalformedResponse that says so."""
    c = mock(lambda r: Response(200, content="<html>oops</html>"), max_retries=0)
    err = await fails_with(c, f.MalformedResponse)
    assert "HTML page" in str(err)
    assert err.status == 200  # type: ignore[attr-defined]


async def test_hang_is_a_provider_timeout(
    protocol: str, simulator: SimFactory, waits: list[float]
) -> None:
    """A silent provider is cut at its timeout and not retried."""
    sim = await simulator(m=Fault(hang=True))
    err = await fails_with(
        client(protocol, sim.base_url, timeout=0.2, max_retries=3), f.ProviderTimeout
    )
    assert "timeout" in str(err)
    assert waits == []
    assert sim.requests_for("m") == 1


# -- retries -----------------------------------------------------------------------


async def test_retries_honour_retry_after(
    protocol: str, simulator: SimFactory, waits: list[float]
) -> None:
    """Two 429s with Retry-After: 2 are retried after 2 s each, then answered."""
    sim = await simulator(m=Fault(statuses=[429, 429], retry_after=2))
    async with client(protocol, sim.base_url) as c:
        resp = await c.complete(ask())
    assert resp.text
    assert waits == [2.0, 2.0]


async def test_long_retry_after_gives_up_at_once(
    protocol: str, simulator: SimFactory, waits: list[float]
) -> None:
    """A Retry-After over max_retry_wait is not waited for: the error carries it."""
    sim = await simulator(m=Fault(statuses=[429], retry_after=30))
    err = await fails_with(client(protocol, sim.base_url, max_retry_wait=10), f.RateLimited)
    assert err.retry_after == 30  # type: ignore[attr-defined]
    assert waits == []


async def test_backoff_without_retry_after(
    protocol: str, simulator: SimFactory, waits: list[float]
) -> None:
    """500s are retried with jittered exponential backoff up to max_retries."""
    sim = await simulator(m=Fault(statuses=[500], repeat=True))
    await fails_with(client(protocol, sim.base_url, max_retries=4), f.ServerFailed)
    assert sim.requests_for("m") == 5
    assert len(waits) == 4
    for i, d in enumerate(waits):
        base = min(0.5 * 2**i, 8)
        assert base / 2 <= d <= base


async def test_request_fatal_errors_are_not_retried(
    protocol: str, simulator: SimFactory, waits: list[float]
) -> None:
    """A 400 is raised after one request."""
    sim = await simulator(m=Fault(statuses=[400]))
    await fails_with(client(protocol, sim.base_url), f.BadRequest)
    assert sim.requests_for("m") == 1


async def test_stream_and_complete_share_the_retry_rules(waits: list[float]) -> None:
    """A stream retries a 503 before its first event exactly as complete does."""
    statuses = iter([503, 503, 200, 503, 503, 200])

    def handler(r: Request) -> Response:
        status = next(statuses)
        if status != 200:
            return Response(status, json={"error": {"type": "server_error", "message": "x"}})
        if not r.json().get("stream"):
            return Response(json=OPENAI_OK)
        return Response(
            headers={"Content-Type": "text/event-stream"},
            content=b'data: {"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
            b"data: [DONE]\n\n",
        )

    async with mock(handler, max_retries=2) as c:
        whole = await c.complete(ask())
        events = [e async for e in c.stream(ask())]
    assert whole.text == "hi"
    assert isinstance(events[-1], f.Completed) and events[-1].response.text == "hi"
    assert len(waits) == 4


async def test_a_pool_call_fails_fast_without_changing_the_client(waits: list[float]) -> None:
    """Inside pooled() a member does not retry; called alone again, it does."""
    transport = MockTransport(lambda r: Response(503))
    c = f.OpenAIClient(model="m", transport=transport)
    with pooled(PoolSettings(max_retries=0, max_retry_wait=1.0)):
        call = c.complete(ask())
    with pytest.raises(f.ServerFailed):
        await call  # the settings were read when the call was made
    assert len(transport.requests) == 1
    assert c.max_retries == 5
    with pytest.raises(f.ServerFailed):
        await c.complete(ask())
    assert len(transport.requests) == 1 + 6


async def test_an_explicit_max_retries_wins_over_the_pool(waits: list[float]) -> None:
    """A member's own max_retries holds inside a pool; a stream reads the pool when made."""
    transport = MockTransport(lambda r: Response(503))
    c = f.OpenAIClient(model="m", transport=transport, max_retries=2)
    with pooled(PoolSettings(max_retries=0)):
        stream = c.stream(ask())
    with pytest.raises(f.ServerFailed):
        async for _ in stream:
            pass
    assert len(transport.requests) == 3


# -- limits ------------------------------------------------------------------------


async def test_body_cap(protocol: str, simulator: SimFactory) -> None:
    """A body over max_body_bytes fails as MalformedResponse."""
    sim = await simulator(m=Fault(reply="word " * 5000))
    err = await fails_with(
        client(protocol, sim.base_url, max_body_bytes=1000, max_retries=0), f.MalformedResponse
    )
    assert "max_body_bytes" in str(err)


@pytest.mark.slow
async def test_waiting_for_a_local_connection_is_not_the_providers_timeout(
    simulator: SimFactory,
) -> None:
    """300 concurrent calls to a healthy 2 s server with timeout=3 all succeed, none parked."""
    sim = await simulator(m=Fault(latency=2.0))
    primary = f.OpenAIClient(model="m", base_url=sim.base_url + "/v1", timeout=3)
    backup = f.OpenAIClient(model="backup", base_url=sim.base_url + "/v1", timeout=3)
    async with f.AsyncRouter([primary, backup], call_timeout=30) as router:
        with anyio.fail_after(20):
            results = await f.fan_out(router, [ask()] * 300, concurrency=300)
    assert all(isinstance(r, f.ChatResponse) for r in results), results[:3]
    assert {r.alias for r in results if isinstance(r, f.ChatResponse)} == {"openai/m"}
    assert sim.requests_for("backup") == 0


async def test_max_connections_bounds_requests_without_timing_the_wait(
    simulator: SimFactory,
) -> None:
    """With max_connections=2, six calls to a 0.3 s server under timeout=0.5 all succeed."""
    sim = await simulator(m=Fault(latency=0.3))
    async with f.OpenAIClient(
        model="m", base_url=sim.base_url + "/v1", timeout=0.5, max_retries=0, max_connections=2
    ) as c:
        with anyio.fail_after(10):
            results = await f.fan_out(c, [ask()] * 6, concurrency=6)
    assert all(isinstance(r, f.ChatResponse) for r in results), results


# -- URLs, redirects, settings -----------------------------------------------------


async def test_redirect_is_not_followed(protocol: str) -> None:
    """A 307 to another host is not followed; the key never leaves."""
    from aiohttp import web

    seen: list[str] = []

    async def other(request: web.Request) -> web.Response:
        seen.append(request.headers.get("authorization", "") + request.headers.get("x-api-key", ""))
        return web.json_response({})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{port2}/v1/chat/completions")

    async def serve(app: web.Application, host: str) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        return runner, runner.addresses[0][1]

    app1 = web.Application()
    app1.router.add_post("/{tail:.*}", redirect)
    app2 = web.Application()
    app2.router.add_post("/{tail:.*}", other)
    r1, port1 = await serve(app1, "127.0.0.1")
    r2, port2 = await serve(app2, "127.0.0.2")
    try:
        err = await fails_with(
            client(protocol, f"http://127.0.0.1:{port1}", max_retries=0), f.MalformedResponse
        )
        assert "redirect" in str(err)
        assert seen == []
    finally:
        await r1.cleanup()
        await r2.cleanup()


@pytest.mark.parametrize(
    ("cls", "base", "sent_to"),
    [
        (
            f.OpenAIClient,
            "https://x.test/openai/deployments/d?api-version=2024-10-21",
            "https://x.test/openai/deployments/d/chat/completions?api-version=2024-10-21",
        ),
        (
            f.OpenAIClient,
            "https://x.test/v1/?key=abc",
            "https://x.test/v1/chat/completions?key=abc",
        ),
        (f.AnthropicClient, "https://x.test", "https://x.test/v1/messages"),
        (f.AnthropicClient, "https://x.test/v1", "https://x.test/v1/messages"),
        (f.AnthropicClient, "https://x.test/v1?beta=1", "https://x.test/v1/messages?beta=1"),
    ],
)
async def test_base_url_query_stays_a_query(
    cls: type[f.OpenAIClient], base: str, sent_to: str
) -> None:
    """The path goes under the base URL's path; its query (api-version, key) stays a query."""
    transport = MockTransport(lambda r: Response(500))
    async with cls(model="m", base_url=base, transport=transport, max_retries=0) as c:
        with pytest.raises(f.ServerFailed):
            await c.complete(ask())
    assert [r.url for r in transport.requests] == [sent_to]


async def test_headers_extra_body_and_provider_reach_the_wire() -> None:
    """headers go out with each request; extra_body is merged into the body; provider names it."""
    transport = MockTransport(lambda r: Response(json=OPENAI_OK))
    c = f.OpenAIClient(
        model="m",
        api_key=SECRET,
        provider="deepseek",
        headers={"X-Team": "review"},
        extra_body={"enable_thinking": False},
        transport=transport,
    )
    async with c:
        resp = await c.complete(ask())
    (sent,) = transport.requests
    assert sent.headers["X-Team"] == "review"
    assert sent.headers["Authorization"] == f"Bearer {SECRET}"
    assert sent.json()["enable_thinking"] is False
    assert c.alias == "deepseek/m" and resp.alias == "deepseek/m"


def test_capabilities_decide_what_a_member_is_unfit_for() -> None:
    """A member without vision is unfit for an image; capabilities are validated."""
    c = f.OpenAIClient(model="m", capabilities=["tools", "json_schema"])
    assert c.capabilities == frozenset({"tools", "json_schema"})
    image = f.ChatRequest(
        messages=[f.Message(role="user", content=[f.Image(url="https://x.test/a.png")])]
    )
    assert c.unfit(image) == "cannot take vision"
    assert f.OpenAIClient(model="m").capabilities == frozenset(
        {"tools", "vision", "json_schema", "reasoning"}
    )
    with pytest.raises(ValueError, match="'telepathy' is not a capability"):
        f.OpenAIClient(model="m", capabilities=["telepathy"])


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
    with pytest.raises(ValueError, match="max_connections"):
        f.OpenAIClient(model="m", max_connections=0)
    with pytest.raises(ValueError, match="extra_body cannot set 'model'"):
        f.OpenAIClient(model="m", extra_body={"model": "other"})
    with pytest.raises(TypeError, match="transport"):
        f.OpenAIClient(model="m", transport=object())  # type: ignore[arg-type]


async def test_closed_client_refuses_calls() -> None:
    """After aclose, a call is a RuntimeError, not a provider failure."""
    transport = MockTransport(lambda r: Response(json=OPENAI_OK))
    c = f.OpenAIClient(model="m", transport=transport)
    await c.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await c.complete(ask())
    with pytest.raises(RuntimeError, match="closed"):
        async for _ in c.stream(ask()):
            pass
    assert transport.requests == []


def test_env_proxy_is_read_once_and_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to https endpoints; NO_PROXY exempts a host."""
    from fallover._transport import env_proxy

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert env_proxy("https://api.example.test/v1/chat/completions") == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "api.example.test")
    assert env_proxy("https://api.example.test/v1/chat/completions") is None


# -- foreign errors ----------------------------------------------------------------


def aiohttp_errors() -> list[type[Exception]]:
    return [
        obj
        for name in aiohttp.__all__
        if inspect.isclass(obj := getattr(aiohttp, name)) and issubclass(obj, aiohttp.ClientError)
    ]


async def test_every_aiohttp_error_is_mapped() -> None:
    """Every exception class aiohttp exports becomes a ProviderError with nothing chained."""
    classes = aiohttp_errors()
    assert len(classes) > 15
    for cls in classes:

        def handler(r: Request, cls: type[Exception] = cls) -> Response:
            exc = cls.__new__(cls)
            Exception.__init__(exc, f"Authorization: Bearer {SECRET}")
            raise exc

        c = mock(handler, max_retries=0)
        with pytest.raises(f.ProviderError) as info:
            await c.complete(ask())
        err = info.value
        assert not isinstance(err, f.RequestRejected), cls
        assert chain(err) == [err], cls
        assert SECRET not in str(err) and SECRET not in repr(err), cls


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (TimeoutError(), f.ProviderTimeout),
        (ConnectionResetError(), f.ConnectionFailed),
        (OSError("net"), f.ConnectionFailed),
    ],
)
async def test_os_errors_are_mapped(exc: Exception, cls: type[f.ProviderError]) -> None:
    """Timeout and OS errors from the network map onto the tree."""

    def handler(r: Request) -> Response:
        raise exc

    err = await fails_with(mock(handler, max_retries=0), f.ProviderError)
    assert type(err) is cls


async def test_a_garbage_http_response_chains_no_request_headers(protocol: str) -> None:
    """A response that is not HTTP raises an error whose whole chain is free of the key."""

    async def garbage(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 2OO NOT-A-STATUS\r\nX: \x00\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, garbage)
        err = await fails_with(
            client(protocol, f"http://127.0.0.1:{port}", max_retries=0), f.ProviderError
        )
        tg.cancel_scope.cancel()
    assert isinstance(err, f.MalformedResponse | f.ConnectionFailed)
    for link in chain(err):
        assert SECRET not in repr(link) and SECRET not in str(link), repr(link)
        assert SECRET not in repr(getattr(link, "args", ())), repr(link)
    assert err.__cause__ is None and err.__context__ is None


# -- secrets -----------------------------------------------------------------------


async def test_key_never_in_errors_reprs_or_logs(
    protocol: str, simulator: SimFactory, caplog: pytest.LogCaptureFixture, waits: list[float]
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
        texts.append(repr(c))
        async with c:
            try:
                await c.complete(ask())
            except f.ProviderError as exc:
                texts += [t for link in chain(exc) for t in (str(link), repr(link))]
    texts += [r.getMessage() for r in caplog.records]
    assert all(SECRET not in t for t in texts)
    assert any("api_key=<set>" in t for t in texts)


def test_repr_hides_credentials_in_base_url() -> None:
    """User info and key-like query values in base_url never reach the repr."""
    c = f.OpenAIClient(model="m", base_url="http://user:hunter22@llm.test/v1?key=AQ.gem-key-42")
    shown = repr(c)
    assert "hunter22" not in shown and "AQ.gem-key-42" not in shown
    assert "llm.test/v1" in shown


@pytest.mark.parametrize(
    "key",
    [
        SECRET,
        "AIzaSyD-0123456789abcdefghijklmnopqrstu",  # Gemini
        "4f2c8d0e9b1a4c7e8f6d2b3a1c0e9f8d.Xy12AbCdEfGh",  # Zhipu id.secret
        "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",  # Volcengine Ark
    ],
)
async def test_an_echoed_key_is_redacted_in_every_field(key: str) -> None:
    """A key echoed in error.code, error.type or the message, of any shape, is never shown."""
    body = {"error": {"code": f"bad_key_{key}", "type": key, "message": f"key {key} refused"}}
    c = f.OpenAIClient(
        model="m",
        api_key=key,
        transport=MockTransport(lambda r: Response(401, json=body)),
        max_retries=0,
    )
    err = await fails_with(c, f.AuthFailed)
    shown = [str(err), repr(err), str(err.code), err.message]  # type: ignore[attr-defined]
    assert not [s for s in shown if key in s]


async def test_redaction_comes_before_the_cut() -> None:
    """A key straddling the 500-character cut leaves no prefix of itself behind."""
    key = "zhipu-like.0123456789abcdefghij"
    message = "x" * 490 + key + " trailing"
    c = f.OpenAIClient(
        model="m",
        api_key=key,
        transport=MockTransport(lambda r: Response(400, json={"error": {"message": message}})),
        max_retries=0,
    )
    err = await fails_with(c, f.BadRequest)
    assert key[:8] not in str(err)


def test_clients_report_the_public_module() -> None:
    """The clients are fallover.OpenAIClient and fallover.AnthropicClient in tracebacks."""
    assert {f.OpenAIClient.__module__, f.AnthropicClient.__module__} == {"fallover"}
