"""The shape every client shares: the LLMClient protocol and the member retry loop.

A protocol adapter (``_openai.py``, ``_anthropic.py``) only says how to encode
a request, where to send it, and how to read an answer or a stream. Sessions,
timeouts, body limits, the mapping of transport errors onto the error tree and
the retry loop of DESIGN section 5 live here, once.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import random
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp
import anyio
import msgspec
from yarl import URL

from .. import _errors as e
from .._classify import error_from_http, error_from_payload, redact, verdict
from .._client import LLMClient, OnInterrupt
from .._types import (
    CAPABILITIES,
    ChatRequest,
    ChatResponse,
    Completed,
    Restarted,
    StreamEvent,
    TextDelta,
    Usage,
)
from ._sse import SSEEvent, SSEReader

__all__ = ["BaseClient", "LLMClient", "OnInterrupt", "StreamEnd", "map_transport_error"]

log = logging.getLogger("fallover")


DEFAULT_MAX_RETRIES = 5
DEFAULT_MAX_RETRY_WAIT = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_CAP = 8.0
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_LINE_BYTES = 1024 * 1024


class StreamEnd(msgspec.Struct, kw_only=True, frozen=True):
    """What an adapter reports when its stream reached the terminal event."""

    model: str
    usage: Usage | None = None
    finish_reason: str | None = None


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
_MAPPED: tuple[type[Exception], ...] = tuple(
    t for t, _, _ in _TRANSPORT_ERRORS if issubclass(t, Exception)
)


def map_transport_error(exc: Exception, *, alias: str, secret: str | None) -> e.ProviderError:
    """Translate an aiohttp/msgspec/OS exception into the error tree."""
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


def backoff_delay(attempt: int, *, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff from 0.5 s, doubling, capped at 8 s, with jitter in [d/2, d]."""
    base: float = min(BACKOFF_FIRST * (2.0**attempt), BACKOFF_CAP)
    return base * (0.5 + rand() / 2)


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url``, unless ``$NO_PROXY`` exempts it."""
    target = URL(url)
    if target.host and urllib.request.proxy_bypass(target.host):
        return None
    return urllib.request.getproxies().get(target.scheme)


def _positive(name: str, value: float | None) -> float | None:
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return value


class BaseClient(abc.ABC):
    """A client for one endpoint: one model at one base URL with one key."""

    provider: str = "provider"
    default_base_url: str = ""

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = 60.0,
        first_token_timeout: float | None = None,
        idle_timeout: float | None = None,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        headers: Mapping[str, str] | None = None,
        context_window: int | None = None,
        alias: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        if not model or not isinstance(model, str):
            raise ValueError("model must be a non-empty string")
        url = URL(base_url or self.default_base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {str(url)!r}")
        if max_retries is not None and max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if context_window is not None and context_window <= 0:
            raise ValueError(f"context_window must be positive, got {context_window}")
        if max_body_bytes <= 0 or max_line_bytes <= 0:
            raise ValueError("max_body_bytes and max_line_bytes must be positive")
        self.model = model
        self._api_key = api_key
        self.base_url = str(url).rstrip("/")
        self.timeout = _positive("timeout", timeout)
        self.first_token_timeout = _positive("first_token_timeout", first_token_timeout)
        self.idle_timeout = _positive("idle_timeout", idle_timeout)
        self._max_retries = max_retries
        self._max_retry_wait = _positive("max_retry_wait", max_retry_wait)
        self._pool_defaults: tuple[int, float] | None = None
        self._context_window = context_window
        self._alias = alias or f"{self.provider}/{model}"
        self.max_body_bytes = max_body_bytes
        self.max_line_bytes = max_line_bytes
        self._extra_headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._closed = False
        self._sleep: Callable[[float], Any] = anyio.sleep
        self._rand: Callable[[], float] = random.random

    # -- identity and settings -------------------------------------------------

    @property
    def alias(self) -> str:
        """``provider/model``."""
        return self._alias

    @property
    def context_window(self) -> int | None:
        """Declared context window, or None."""
        return self._context_window

    @property
    def capabilities(self) -> frozenset[str]:
        """Everything: this client does not declare limits yet."""
        return CAPABILITIES

    def unfit(self, request: ChatRequest) -> str | None:
        """The first capability ``request`` needs that this client lacks, as a reason."""
        missing = request.needs - self.capabilities
        return f"cannot take {', '.join(sorted(missing))}" if missing else None

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt: explicit, else 0 in a pool, else 5."""
        if self._max_retries is not None:
            return self._max_retries
        return self._pool_defaults[0] if self._pool_defaults else DEFAULT_MAX_RETRIES

    @property
    def max_retry_wait(self) -> float:
        """Longest server-requested delay honoured by waiting; longer ones fall over."""
        if self._max_retry_wait is not None:
            return self._max_retry_wait
        return self._pool_defaults[1] if self._pool_defaults else DEFAULT_MAX_RETRY_WAIT

    def _join_pool(self, *, max_retry_wait: float) -> None:
        """Take the pool defaults (fail fast) for settings the user left unset."""
        self._pool_defaults = (0, max_retry_wait)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return (
            f"{type(self).__name__}(alias={self.alias!r}, base_url={self.base_url!r}, "
            f"api_key=<{key}>, timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    # -- lifecycle ---------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if self._closed:
                raise RuntimeError(f"{self.alias}: the client is closed")
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None),
                headers=self._headers(),
                raise_for_status=False,
            )
            # Proxies come from the environment like every HTTP tool users know, but are
            # looked up once here: aiohttp's trust_env does it per request, in a thread,
            # which doubled the cost of a call on loopback.
            self._proxy = _env_proxy(self._url())
            self._session = session
        return session

    async def aclose(self) -> None:
        """Close the pooled connections; the client can't be used after."""
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- what a protocol says ------------------------------------------------------

    @abc.abstractmethod
    def _headers(self) -> dict[str, str]:
        """Headers for every request, the key included."""

    @abc.abstractmethod
    def _url(self) -> str:
        """Where requests go."""

    @abc.abstractmethod
    def _encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""

    @abc.abstractmethod
    def _parse(self, body: bytes) -> ChatResponse:
        """Read a whole answer (status 2xx)."""

    @abc.abstractmethod
    def _stream_parser(self) -> StreamParser:
        """A fresh parser for one stream."""

    # -- one attempt ---------------------------------------------------------------

    def _fail(self, exc: Exception) -> e.ProviderError:
        return map_transport_error(exc, alias=self.alias, secret=self._api_key)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.max_body_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise e.MalformedResponse(
                f"body of {resp.content_length} bytes is over max_body_bytes ({limit})",
                alias=self.alias,
                status=resp.status,
            )
        parts: list[bytes] = []
        size = 0
        while chunk := await resp.content.readany():
            size += len(chunk)
            if size > limit:
                raise e.MalformedResponse(
                    f"body is over max_body_bytes ({limit})", alias=self.alias, status=resp.status
                )
            parts.append(chunk)
        return b"".join(parts)

    async def _post(self, body: bytes) -> aiohttp.ClientResponse:
        """Send a request and return the response once its headers are in."""
        session = self._get_session()
        return await session.post(self._url(), data=body, allow_redirects=False, proxy=self._proxy)

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status < 300:
            return
        body = b""
        try:
            body = await self._read_body(resp)
        except e.MalformedResponse:
            body = b""
        raise error_from_http(
            resp.status, resp.headers, body, alias=self.alias, secret=self._api_key
        )

    async def _complete_once(self, request: ChatRequest) -> ChatResponse:
        payload = self._encode(request, stream=False)
        with anyio.move_on_after(self.timeout) as scope:
            try:
                async with await self._post(payload) as resp:
                    await self._raise_for_status(resp)
                    body = await self._read_body(resp)
                    return self._parse_or_error(body, resp.status)
            except e.FalloverError:
                raise
            except _MAPPED as exc:
                raise self._fail(exc) from exc
        assert scope.cancelled_caught
        raise e.ProviderTimeout(f"no answer within timeout ({self.timeout:g}s)", alias=self.alias)

    def _parse_or_error(self, body: bytes, status: int) -> ChatResponse:
        try:
            return self._parse(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Some servers put an error object under a 200.
            try:
                payload = msgspec.json.decode(body)
            except msgspec.DecodeError:
                payload = None
            if isinstance(payload, dict) and "error" in payload:
                raise error_from_payload(
                    payload, alias=self.alias, status=status, secret=self._api_key
                ) from exc
            kind = "an HTML page" if body.lstrip()[:1] == b"<" else "invalid JSON"
            if isinstance(exc, msgspec.ValidationError):
                kind = f"JSON of the wrong shape ({exc})"
            raise e.MalformedResponse(
                f"expected the protocol's JSON, got {kind}", alias=self.alias, status=status
            ) from exc

    # -- retries -------------------------------------------------------------------

    def _retry_delay(self, exc: e.ProviderError, retries_done: int) -> float | None:
        """How long to wait before retrying, or None to give up now (section 5)."""
        if retries_done >= self.max_retries or not verdict(exc).retry:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.max_retry_wait else None
        return backoff_delay(retries_done, rand=self._rand)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Send ``request`` and return the whole answer, retrying transient failures."""
        retries = 0
        while True:
            try:
                return await self._complete_once(request)
            except e.ProviderError as exc:
                delay = self._retry_delay(exc, retries)
                if delay is None:
                    raise
                log.debug("%s: retry %d in %.2fs after %s", self.alias, retries + 1, delay, exc)
            retries += 1
            await self._sleep(delay)

    # -- streams ----------------------------------------------------------------

    async def stream(
        self, request: ChatRequest, *, on_interrupt: OnInterrupt = "error"
    ) -> AsyncIterator[StreamEvent]:
        """Yield ``TextDelta``s then ``Completed``; see DESIGN section 3.11."""
        if on_interrupt not in ("error", "restart"):
            raise ValueError(f"on_interrupt must be 'error' or 'restart', got {on_interrupt!r}")
        retries = 0
        while True:
            parts: list[str] = []
            try:
                # aclosing: the response is released now, not when the generator is collected.
                async with contextlib.aclosing(self._stream_once(request)) as pieces:
                    async for piece in pieces:
                        if isinstance(piece, str):
                            parts.append(piece)
                            yield TextDelta(text=piece)
                            continue
                        yield Completed(
                            response=ChatResponse(
                                text="".join(parts),
                                model=piece.model or self.model,
                                alias=self.alias,
                                usage=piece.usage,
                                finish_reason=piece.finish_reason,  # type: ignore[arg-type]
                            )
                        )
                        return
            except e.ProviderError as exc:
                delay = self._retry_delay(exc, retries)
                if (parts and on_interrupt == "error") or delay is None:
                    if parts:
                        raise e.StreamInterrupted(
                            f"{self.alias}: stream failed after text: {exc}",
                            partial_text="".join(parts),
                            error=exc,
                        ) from exc
                    raise
                if parts:
                    yield Restarted(alias=self.alias, reason=str(exc))
                retries += 1
                await self._sleep(delay)

    async def _stream_once(self, request: ChatRequest) -> AsyncGenerator[str | StreamEnd, None]:
        payload = self._encode(request, stream=True)
        resp: aiohttp.ClientResponse | None = None
        try:
            with anyio.move_on_after(self.timeout) as scope:
                try:
                    resp = await self._post(payload)
                    await self._raise_for_status(resp)
                except e.FalloverError:
                    raise
                except _MAPPED as exc:
                    raise self._fail(exc) from exc
            if scope.cancelled_caught:
                raise e.ProviderTimeout(
                    f"no response headers within timeout ({self.timeout:g}s)", alias=self.alias
                )
            assert resp is not None
            reader = SSEReader(
                resp.content,
                alias=self.alias,
                first_token_timeout=self.first_token_timeout,
                idle_timeout=self.idle_timeout,
                max_line_bytes=self.max_line_bytes,
            )
            parser = self._stream_parser()
            total = 0
            try:
                async for event in reader.events():
                    for piece in parser.feed(event):
                        if isinstance(piece, str):
                            if not piece:
                                continue
                            total += len(piece)
                            if total > self.max_body_bytes:
                                raise e.MalformedResponse(
                                    f"stream text over max_body_bytes ({self.max_body_bytes})",
                                    alias=self.alias,
                                )
                            reader.text_arrived()
                            yield piece
                        else:
                            yield piece
                            return
                    if parser.progressed:
                        reader.progress()
                        parser.progressed = False
                    if parser.finishing:
                        reader.finishing()
                end = parser.at_eof()
            except e.ProviderTimeout:
                # A finish_reason already came; only the trailer is late: the answer is whole.
                end = parser.at_eof()
                if end is None:
                    raise
            except e.FalloverError:
                raise
            except _MAPPED as exc:
                raise self._fail(exc) from exc
            if end is None:
                raise e.ConnectionFailed(
                    f"stream ended before its terminal event ({parser.terminal})",
                    alias=self.alias,
                    status=resp.status,
                )
            yield end
        finally:
            if resp is not None:
                # Back to the pool when the body was read to its end; closed otherwise.
                resp.release()


class StreamParser(abc.ABC):
    """Reads one protocol's SSE events into text pieces and a final StreamEnd."""

    terminal = "terminal event"

    def __init__(self, *, alias: str, model: str, secret: str | None) -> None:
        self.alias = alias
        self.model = model
        self.secret = secret
        self.progressed = False
        self.finishing = False  # the answer is whole; only a trailer (usage, [DONE]) may follow

    @abc.abstractmethod
    def feed(self, event: SSEEvent) -> list[str | StreamEnd]:
        """Text pieces in order; a StreamEnd when the stream is complete."""

    def at_eof(self) -> StreamEnd | None:
        """The body ended without the terminal event: a StreamEnd if that is still complete."""
        return None

    def error(self, payload: Any) -> e.ProviderError:
        """An error object that arrived inside the stream."""
        return error_from_payload(payload, alias=self.alias, secret=self.secret)
