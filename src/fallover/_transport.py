"""HTTP beneath the clients: one pooled aiohttp session, and the one edge for foreign errors.

A transport sends one :class:`Request` and hands back an :class:`Incoming`
response once its headers are in; everything above it (the endpoint, the
codecs) sees only these two shapes, which is what lets
``fallover.testing.MockTransport`` stand in for the network. Here, and only
here:

- the session is pooled per client, the proxy is looked up once, redirects
  are never followed (a key must not travel to another host);
- the connection limit is a client setting, and the wait for a free
  connection happens in :meth:`Transport.slot`, before the attempt's clock
  starts: waiting on our own pool is not the provider's fault;
- bodies and SSE lines are read under size caps;
- :func:`map_transport_errors` translates aiohttp, OS and msgspec exceptions
  into the error tree, with nothing of the original chained on (aiohttp's
  exceptions carry the request's headers, the key among them);
- :class:`SSEReader` reads a stream under its two clocks (see
  docs/architecture.md#the-flow-of-one-call).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import urllib.request
from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import Any, final

import aiohttp
import anyio
import msgspec
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _errors as e
from ._classify import error_from_payload
from ._codecs._base import SSEEvent, UpstreamError
from ._codecs._sse import SSEDecoder
from ._redact import redact, redact_url

__all__ = [
    "FINISH_GRACE",
    "AiohttpTransport",
    "Incoming",
    "Request",
    "SSEReader",
    "Transport",
    "env_proxy",
    "join_url",
    "map_transport_errors",
    "read_body",
    "translate",
]

# After a finish reason, how long to wait for the trailer (usage, [DONE], message_stop).
FINISH_GRACE = 1.0


@final
class Request:
    """One HTTP request as a transport sees it."""

    __slots__ = ("body", "headers", "method", "url")

    def __init__(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes) -> None:
        self.method = method
        self.url = url
        # A client's fixed headers arrive as one read-only view, shared by all its requests.
        self.headers: CIMultiDictProxy[str] = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.body = body

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)

    def __repr__(self) -> str:
        # Never the headers: they carry the key.
        return f"Request({self.method!r}, {redact_url(self.url)!r}, body=<{len(self.body)} bytes>)"


class Incoming(abc.ABC):
    """A response whose headers are in; the body is read with :meth:`readany`."""

    status: int
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    content_length: int | None = None

    @abc.abstractmethod
    def readany(self) -> Awaitable[bytes]:
        """The next chunk of the body as it arrives; ``b""`` at its end."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Give the connection back (or drop it when the body was not read to its end)."""


class Transport(abc.ABC):
    """Sends requests for one client."""

    def slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Wait for a free connection; hold it for the whole exchange."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    async def send(self, request: Request) -> Incoming:
        """Send ``request``; return once the response headers are in."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release every connection."""


# -- aiohttp -----------------------------------------------------------------------


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, unless ``$NO_PROXY`` exempts it."""
    target = URL(url)
    if target.host and urllib.request.proxy_bypass(target.host):
        return None
    return urllib.request.getproxies().get(target.scheme)


@final
class _AiohttpIncoming(Incoming):
    __slots__ = ("_resp", "content_length", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.content_length = resp.content_length

    def readany(self) -> Awaitable[bytes]:
        # The reader's own coroutine, not one wrapped in ours: one frame fewer to resume.
        return self._resp.content.readany()

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._resp.release()


@final
class AiohttpTransport(Transport):
    """aiohttp with one pooled session, created on first use inside the event loop."""

    def __init__(
        self,
        *,
        alias: str,
        max_connections: int | None,
        headers: CIMultiDictProxy[str] | None = None,
    ) -> None:
        self._alias = alias
        self._max_connections = max_connections
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._proxy: str | None = None
        self._proxy_for: str | None = None
        self._closed = False

    def slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        if self._max_connections is None:
            return contextlib.nullcontext()
        slots = self._slots
        if slots is None:
            # asyncio's semaphore: a free slot is taken without a checkpoint, at a fraction
            # of the cost of anyio's; a cancelled wait leaves it balanced all the same.
            slots = self._slots = asyncio.Semaphore(self._max_connections)
        return slots

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if self._closed:
                raise RuntimeError(f"{self._alias}: the client is closed")
            # The local pool is not limited here: slot() bounds it, before the attempt's
            # clock starts, so waiting for a connection is never counted as the provider's.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None),
                raise_for_status=False,
            )
            self._session = session
        return session

    def _proxy_of(self, url: str) -> str | None:
        # Proxies come from the environment like every HTTP tool users know, but are looked
        # up once per URL: aiohttp's trust_env does it per request, in a thread.
        if self._proxy_for != url:
            self._proxy = env_proxy(url)
            self._proxy_for = url
        return self._proxy

    async def send(self, request: Request) -> Incoming:
        session = self._get_session()
        resp = await session.request(
            request.method,
            request.url,
            data=request.body,
            # The client's own headers are the session's defaults: aiohttp need not merge
            # them into every request again.
            headers=None if request.headers is self._headers else request.headers,
            allow_redirects=False,
            proxy=self._proxy_of(request.url),
        )
        return _AiohttpIncoming(resp)

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def join_url(base_url: str, path: str) -> str:
    """``path`` under ``base_url``, keeping the base's query (``?api-version=...``) a query.

    A base that already ends in ``/v1`` does not get a second one from a path
    that starts with it (the Anthropic SDK's base URL excludes ``/v1``; many
    users include it).
    """
    url = URL(base_url)
    base = url.path.rstrip("/")
    if base.endswith("/v1") and path.startswith("/v1/"):
        path = path[3:]
    return str(url.with_path(base + path, keep_query=True, keep_fragment=False))


# -- errors ------------------------------------------------------------------------

# Order matters: the first matching class wins (subclasses before their bases).
_TRANSPORT_ERRORS: tuple[tuple[type[Exception], type[e.ProviderError], str], ...] = (
    (aiohttp.ConnectionTimeoutError, e.ProviderTimeout, "connect timed out"),
    (aiohttp.SocketTimeoutError, e.ProviderTimeout, "socket read timed out"),
    (aiohttp.ServerTimeoutError, e.ProviderTimeout, "server timed out"),
    (aiohttp.ClientConnectorError, e.ConnectionFailed, "cannot connect"),
    (aiohttp.ServerDisconnectedError, e.ConnectionFailed, "server disconnected"),
    (aiohttp.ClientPayloadError, e.ConnectionFailed, "truncated body"),
    (aiohttp.ClientConnectionResetError, e.ConnectionFailed, "connection reset"),
    (aiohttp.ClientResponseError, e.MalformedResponse, "invalid HTTP response"),
    (aiohttp.InvalidURL, e.ConnectionFailed, "invalid URL"),
    (aiohttp.ClientError, e.ConnectionFailed, "connection failed"),
    (TimeoutError, e.ProviderTimeout, "timed out"),
    (ConnectionError, e.ConnectionFailed, "connection failed"),
    (OSError, e.ConnectionFailed, "network error"),
    (msgspec.DecodeError, e.MalformedResponse, "invalid JSON"),
    (msgspec.ValidationError, e.MalformedResponse, "unexpected JSON shape"),
    (UnicodeDecodeError, e.MalformedResponse, "body is not UTF-8"),
)
_MAPPED: tuple[type[Exception], ...] = (
    UpstreamError,
    *(kind for kind, _, _ in _TRANSPORT_ERRORS),
)


def translate(exc: Exception, *, alias: str, secret: str | None) -> e.ProviderError:
    """The error-tree class for an aiohttp/OS/msgspec exception or a codec's UpstreamError."""
    if isinstance(exc, UpstreamError):
        return error_from_payload(exc.payload, alias=alias, status=exc.status, secret=secret)
    for kind, cls, what in _TRANSPORT_ERRORS:
        if isinstance(exc, kind):
            try:
                detail = redact(str(exc), secret)[:300]
            except Exception:  # a half-built exception must not hide the real failure
                detail = ""
            status = getattr(exc, "status", None)
            return cls(
                f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""),
                alias=alias,
                status=status if isinstance(status, int) else None,
            )
    raise TypeError(f"not a transport error: {type(exc).__name__}")  # pragma: no cover


@final
class map_transport_errors:
    """Translate foreign exceptions raised in the block into the error tree.

    The translated error carries no ``__cause__`` or ``__context__``: aiohttp's
    exceptions hold the request (headers, key and all) in their args and repr,
    so they must not ride along. What they said, redacted, is in the message.
    Errors of the tree and cancellation pass through untouched.
    """

    __slots__ = ("_alias", "_secret")

    def __init__(self, *, alias: str, secret: str | None) -> None:
        self._alias = alias
        self._secret = secret

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, _MAPPED):
            return
        mapped = translate(exc, alias=self._alias, secret=self._secret)
        del exc, tb
        try:
            raise mapped
        except e.ProviderError as raised:
            # Raising here chains the foreign exception as __context__; drop it, then re-raise
            # (a bare raise does not chain again).
            raised.__context__ = None
            raised.__cause__ = None
            raise


# -- bodies and streams ------------------------------------------------------------


async def read_body(incoming: Incoming, *, limit: int, alias: str) -> bytes:
    """The whole body, or MalformedResponse once it passes ``limit`` bytes."""
    if incoming.content_length is not None and incoming.content_length > limit:
        raise e.MalformedResponse(
            f"body of {incoming.content_length} bytes is over max_body_bytes ({limit})",
            alias=alias,
            status=incoming.status,
        )
    parts: list[bytes] = []
    size = 0
    while chunk := await incoming.readany():
        size += len(chunk)
        if size > limit:
            raise e.MalformedResponse(
                f"body is over max_body_bytes ({limit})", alias=alias, status=incoming.status
            )
        parts.append(chunk)
    return b"".join(parts)


class SSEReader:
    """Read a stream's events under two clocks.

    ``first_token_timeout`` runs from the response headers until the first
    event of any kind (reasoning, text or a tool call: a model thinking aloud
    is alive); ``idle_timeout`` runs only after that, between pieces of
    progress. Keep-alive comments and pings are neither, so a trickle of them
    cannot keep a stalled stream open. Once the answer is whole (a finish
    reason came), only a short grace is left for the trailer.
    """

    __slots__ = (
        "_alias",
        "_deadline",
        "_decoder",
        "_idle",
        "_incoming",
        "_stalled",
        "_started",
        "_why",
    )

    def __init__(
        self,
        incoming: Incoming,
        *,
        alias: str,
        first_token_timeout: float | None,
        idle_timeout: float | None,
        max_line_bytes: int,
    ) -> None:
        self._incoming = incoming
        self._alias = alias
        self._decoder = SSEDecoder(alias=alias, max_line_bytes=max_line_bytes)
        self._idle = idle_timeout if idle_timeout is not None else math.inf
        self._stalled = f"stream stalled longer than idle_timeout ({self._idle:g}s)"
        self._started = False
        self._deadline = math.inf
        self._why = ""
        if first_token_timeout is not None:
            self._deadline = anyio.current_time() + first_token_timeout
            self._why = f"no event within first_token_timeout ({first_token_timeout:g}s)"

    def event_arrived(self) -> None:
        """An event of the answer came: from now on only the idle clock runs."""
        if not self._started:
            self._started = True
            self._deadline = math.inf  # the first-event clock is done; idle may not run
        self.progress()

    def progress(self) -> None:
        """Progress came: restart the idle clock (it runs only after the first event)."""
        if self._started and self._idle != math.inf:
            self._deadline = anyio.current_time() + self._idle
            self._why = self._stalled

    def finishing(self) -> None:
        """The answer is whole: wait only briefly for the trailer."""
        self._started = True
        grace = anyio.current_time() + FINISH_GRACE
        if grace < self._deadline:
            self._deadline = grace
            self._why = f"no terminal event within {FINISH_GRACE:g}s of the finish reason"

    async def read(self) -> list[SSEEvent] | None:
        """The events the next chunk completes (often none); None at the end of the body."""
        deadline = self._deadline
        if deadline == math.inf:
            chunk = await self._incoming.readany()
        else:
            chunk = b""
            with anyio.CancelScope(deadline=deadline) as scope:
                chunk = await self._incoming.readany()
            if scope.cancelled_caught:
                raise e.ProviderTimeout(self._why, alias=self._alias)
        if not chunk:
            return None
        return self._decoder.feed(chunk)
