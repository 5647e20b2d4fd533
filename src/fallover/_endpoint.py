"""One endpoint: a codec, a transport and the member retry loop.

``OpenAIClient`` and ``AnthropicClient`` are this class configured with their
protocol's codec; everything else is shared and lives here once: the
settings and their checks, the URL, the headers, one attempt (whole answer or
stream), the classification of what went wrong (through ``_classify`` and
``map_transport_errors``), and the member retry loop, which ``complete`` and
``stream`` both run (docs/architecture.md#the-flow-of-one-call).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeAlias, TypeVar, final

import anyio
import msgspec
from anyio.abc import AsyncResource
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from . import _defaults as d
from . import _errors as e
from . import _otel, _rules
from ._backoff import MEMBER_RETRIES, sleep
from ._classify import error_from_http, verdict
from ._client import OnInterrupt, PoolSettings, current_pool
from ._codecs._anthropic import AnthropicCodec
from ._codecs._base import Codec
from ._codecs._openai import OpenAICodec
from ._redact import redact_url
from ._transport import (
    AiohttpTransport,
    Incoming,
    Request,
    SSEReader,
    Transport,
    join_url,
    map_transport_errors,
    read_body,
)
from ._types import (
    CAPABILITIES,
    ChatRequest,
    ChatResponse,
    Completed,
    Restarted,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)

if TYPE_CHECKING:
    from ._otel._record import CallRecorder

__all__ = ["AnthropicClient", "Endpoint", "OpenAIClient", "missing_capabilities"]

log = logging.getLogger("fallover")

_T = TypeVar("_T")


HeadersHook: TypeAlias = Callable[[str, Mapping[str, str]], None] | None


class CallSettings(NamedTuple):
    """What one call runs with, decided when it is made."""

    retries: int
    max_retry_wait: float
    on_headers: HeadersHook  # the calling pool's reader of response headers (rate limits)
    alone: bool  # called directly, not by a pool (which records the call itself)


def missing_capabilities(request: ChatRequest, capabilities: frozenset[str]) -> str | None:
    """Why a member with ``capabilities`` cannot take ``request``, or None."""
    if capabilities >= CAPABILITIES:
        return None  # it takes everything: what the request needs is not worked out per call
    missing = request.needs - capabilities
    return f"cannot take {', '.join(sorted(missing))}" if missing else None


class Endpoint(AsyncResource):
    """A client for one endpoint: one model at one base URL with one key."""

    codec: ClassVar[Callable[..., Codec]]
    default_provider: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = d.TIMEOUT,
        first_token_timeout: float | None = d.FIRST_TOKEN_TIMEOUT,
        idle_timeout: float | None = d.IDLE_TIMEOUT,
        max_retries: int | None = None,
        max_retry_wait: float | None = None,
        headers: Mapping[str, str] | None = None,
        context_window: int | None = None,
        alias: str | None = None,
        max_body_bytes: int = d.MAX_BODY_BYTES,
        max_line_bytes: int = d.MAX_LINE_BYTES,
        max_connections: int | None = d.MAX_CONNECTIONS,
        capabilities: Iterable[str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        provider: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        if not model or not isinstance(model, str):
            raise ValueError("model must be a non-empty string")
        url = URL(base_url or self.default_base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(
                f"base_url must be an http(s) URL with a host, got {redact_url(str(url))!r}"
            )
        for name, value in (
            ("timeout", timeout),
            ("first_token_timeout", first_token_timeout),
            ("idle_timeout", idle_timeout),
            ("max_retry_wait", max_retry_wait),
            ("context_window", context_window),
            ("max_body_bytes", max_body_bytes),
            ("max_line_bytes", max_line_bytes),
            ("max_connections", max_connections),
        ):
            _rules.check_positive(name, value)
        if max_retries is not None:
            _rules.check_non_negative("max_retries", max_retries)
        if isinstance(capabilities, str):
            raise TypeError(f"capabilities must be a list of names, not {capabilities!r}")
        if extra_body is not None:
            _rules.check_extra_body(extra_body)
        if transport is not None and not isinstance(transport, Transport):
            raise TypeError(
                "transport must be a fallover.testing.MockTransport, "
                f"got {type(transport).__name__}"
            )
        self.model = model
        self.provider = provider or self.default_provider
        self._api_key = api_key
        # The base URL keeps its query (``?api-version=...``); only the path is trimmed.
        self.base_url = str(url.with_path(url.path.rstrip("/"), keep_query=True))
        self.timeout = timeout
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._context_window = context_window
        self._alias = alias or f"{self.provider}/{model}"
        self._capabilities = (
            CAPABILITIES if capabilities is None else _rules.check_capabilities(capabilities)
        )
        self.max_body_bytes = max_body_bytes
        self.max_line_bytes = max_line_bytes
        self.max_connections = max_connections
        self._codec: Codec = self.codec(
            model=model, alias=self._alias, provider=self.provider, extra_body=extra_body
        )
        self._url = join_url(self.base_url, self._codec.path())
        self._headers = CIMultiDictProxy(
            CIMultiDict(
                {
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    **self._codec.auth_headers(api_key),
                    **(headers or {}),
                }
            )
        )
        # Stateless, so one serves every attempt of this client.
        self._mapped = map_transport_errors(alias=self._alias, secret=api_key)
        self._transport: Transport = transport or AiohttpTransport(
            alias=self._alias, max_connections=max_connections, headers=self._headers
        )
        self._closed = False
        self._alone = CallSettings(self.max_retries, self.max_retry_wait, None, alone=True)
        self._in_pool: tuple[PoolSettings, CallSettings] | None = None

    # -- identity and settings -------------------------------------------------

    @property
    def alias(self) -> str:
        """``provider/model``, or the alias given."""
        return self._alias

    @property
    def context_window(self) -> int | None:
        """Declared context window, or None."""
        return self._context_window

    @property
    def capabilities(self) -> frozenset[str]:
        """What this member can take (all, unless told otherwise)."""
        return self._capabilities

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this member cannot take ``request``: a missing capability, or the codec's reason."""
        return missing_capabilities(request, self._capabilities) or self._codec.unfit(request)

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt when called alone: explicit, else 5."""
        return self._max_retries if self._max_retries is not None else d.MAX_RETRIES

    @property
    def max_retry_wait(self) -> float:
        """The longest server-requested delay waited out when called alone."""
        return self._max_retry_wait if self._max_retry_wait is not None else d.MAX_RETRY_WAIT

    def _limits(self) -> CallSettings:
        """Retries and the longest wait for this call: explicit, else the pool's, else alone;
        and the pool's reader of response headers (rate limits), if any."""
        pool = current_pool()
        if pool is None:
            return self._alone
        seen = self._in_pool
        if seen is not None and seen[0] is pool:
            return seen[1]  # the pool this client serves, as on its last call
        retries = self._max_retries if self._max_retries is not None else pool.max_retries
        wait = self._max_retry_wait
        if wait is None:
            wait = pool.max_retry_wait if pool.max_retry_wait is not None else d.MAX_RETRY_WAIT
        limits = CallSettings(retries, wait, pool.on_headers, alone=False)
        self._in_pool = (pool, limits)
        return limits

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return (
            f"{type(self).__name__}(alias={self.alias!r}, "
            f"base_url={redact_url(self.base_url, self._api_key)!r}, "
            f"api_key=<{key}>, timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    # -- lifecycle ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the pooled connections; the client can't be used after."""
        self._closed = True
        await self._transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self._alias}: the client is closed")

    # -- calls -------------------------------------------------------------------

    def complete(self, request: ChatRequest) -> Coroutine[Any, Any, ChatResponse]:
        """Send ``request`` and return the whole answer, retrying transient failures."""
        # The pool's settings and the telemetry switch are read now, when the call is made.
        # Unrecorded, the retry loop's own coroutine is returned: every await of the call
        # resumes through one frame fewer.
        limits = self._limits()
        attempt = functools.partial(self._complete_once, request, limits.on_headers)
        # Inside a pool the pool's attempt span is this call's: nothing to ask.
        rec = (
            _otel.TELEMETRY.call(self.model, request, stream=False, standalone=True)
            if limits.alone
            else None
        )
        if rec is None:
            return self._retrying(attempt, limits)
        return self._recorded(self._retrying(attempt, limits), rec)

    async def _recorded(
        self, answer: Coroutine[Any, Any, ChatResponse], rec: CallRecorder
    ) -> ChatResponse:
        async with contextlib.aclosing(rec.observe(self._answered(answer), self)) as run:
            async for event in run:
                if isinstance(event, Completed):
                    return event.response
        raise AssertionError("the retry loop ended without an answer")  # pragma: no cover

    @staticmethod
    async def _answered(
        answer: Coroutine[Any, Any, ChatResponse],
    ) -> AsyncGenerator[StreamEvent, None]:
        """The whole answer as one ``Completed`` event, for telemetry to observe."""
        yield Completed(response=await answer)

    def stream(
        self, request: ChatRequest, *, on_interrupt: OnInterrupt = "error"
    ) -> AsyncIterator[StreamEvent]:
        """Yield the answer's deltas, then ``Completed``; see docs/streaming.md."""
        _rules.check_on_interrupt(on_interrupt)
        limits = self._limits()
        events = self._stream(request, on_interrupt, limits)
        if not limits.alone:
            return events  # the pool records it
        rec = _otel.TELEMETRY.call(self.model, request, stream=True, standalone=True)
        return events if rec is None else rec.observe(events, self)

    def _retry_delay(self, exc: e.ProviderError, tries: int, limits: CallSettings) -> float | None:
        """How long to wait before retrying, or None to give up now."""
        if tries >= limits.retries or not verdict(exc).retry:
            return None
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= limits.max_retry_wait else None
        return MEMBER_RETRIES.delay(tries)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[_T]], limits: CallSettings, *, tries: int = 0
    ) -> _T:
        """The member retry loop, for ``complete`` and ``stream`` alike.

        ``attempt()`` is made until it succeeds, a failure is final or the retries
        (``tries`` of them already spent) run out. For a stream, an attempt
        succeeds once its first event is in: a failure before it is retried like
        any other; what follows it is ``_stream``'s to handle.
        """
        self._check_open()
        while True:
            try:
                return await attempt()
            except e.ProviderError as exc:
                delay = self._retry_delay(exc, tries, limits)
                if delay is None:
                    raise
                log.debug("%s: retry %d in %.2fs after %s", self._alias, tries + 1, delay, exc)
            tries += 1
            await sleep(delay)

    async def _stream(
        self, request: ChatRequest, on_interrupt: OnInterrupt, limits: CallSettings
    ) -> AsyncGenerator[StreamEvent, None]:
        """A stream through the retry loop, and what to do when it breaks after an event.

        ``"error"`` raises StreamInterrupted; ``"restart"`` yields Restarted and
        goes through the retry loop again while retries allow.
        """
        opened = 0  # attempts made, so a restart knows how many retries are spent

        async def first_event() -> tuple[AsyncGenerator[StreamEvent, None], StreamEvent]:
            nonlocal opened
            opened += 1
            events = self._stream_once(request, limits.on_headers)
            return events, await anext(events)

        tries = 0
        while True:
            before = opened
            events, event = await self._retrying(first_event, limits, tries=tries)
            tries += opened - before - 1
            text: list[str] = []
            shown = False
            try:
                async with contextlib.aclosing(events):
                    while True:
                        if type(event) is TextDelta:
                            text.append(event.text)
                        shown = shown or type(event) is not Completed
                        yield event
                        if type(event) is Completed:
                            return
                        event = await anext(events)
            except e.ProviderError as exc:
                delay = self._retry_delay(exc, tries, limits)
                if shown and (on_interrupt == "error" or delay is None):
                    raise e.StreamInterrupted(
                        f"{self._alias}: stream failed after its first event: {exc}",
                        partial_text="".join(text),
                        error=exc,
                    ) from exc
                if delay is None:
                    raise
                log.debug("%s: restart %d in %.2fs after %s", self._alias, tries + 1, delay, exc)
                if shown:
                    yield Restarted(alias=self._alias, reason=str(exc))
            tries += 1
            await sleep(delay)

    # -- one attempt ---------------------------------------------------------------

    def _request(self, request: ChatRequest, *, stream: bool) -> Request:
        return Request(
            "POST",
            self._url,
            headers=self._headers,
            body=self._codec.encode(request, stream=stream),
        )

    async def _error_of(self, incoming: Incoming) -> e.ProviderError:
        """The error a non-2xx answer stands for."""
        try:
            body = await read_body(incoming, limit=self.max_body_bytes, alias=self._alias)
        except e.MalformedResponse:
            body = b""
        return error_from_http(
            incoming.status, incoming.headers, body, alias=self._alias, secret=self._api_key
        )

    async def _complete_once(self, request: ChatRequest, hook: HeadersHook) -> ChatResponse:
        sent = self._request(request, stream=False)
        transport = self._transport
        mapped = self._mapped
        # The wait for a free local connection comes first and is not the provider's time.
        async with transport.slot():
            try:
                # asyncio's timeout rather than an anyio scope: it is the cheaper of the two per
                # call, and nests with the anyio scopes around it on Python 3.11+.
                async with asyncio.timeout(self.timeout):
                    with mapped:
                        incoming = await transport.send(sent)
                        if hook is not None:
                            hook(self._alias, incoming.headers)
                        try:
                            if incoming.status >= 300:
                                raise await self._error_of(incoming)
                            body = await read_body(
                                incoming, limit=self.max_body_bytes, alias=self._alias
                            )
                        finally:
                            await incoming.aclose()
                        return self._decode(body, incoming.status)
            except TimeoutError:
                # Only the attempt's own deadline ends up here: ``mapped`` has already
                # turned every TimeoutError from the transport into a ProviderTimeout.
                raise e.ProviderTimeout(
                    f"no answer within timeout ({self.timeout:g}s)", alias=self._alias
                ) from None

    def _decode(self, body: bytes, status: int) -> ChatResponse:
        """A whole answer from a 2xx body, or the error it stands for."""
        try:
            response = self._codec.decode(body, status=status)
        except msgspec.ValidationError as exc:
            kind = f"JSON of the wrong shape ({exc})"
        except msgspec.DecodeError:
            kind = "an HTML page" if body.lstrip()[:1] == b"<" else "invalid JSON"
        else:
            return self._accept(response)
        # Raised outside the except clause: nothing of the decoder's error rides along.
        raise e.MalformedResponse(
            f"expected the protocol's JSON, got {kind}", alias=self._alias, status=status
        )

    def _accept(self, response: ChatResponse) -> ChatResponse:
        """A whole answer, unless the content filter left nothing of it."""
        if response.finish_reason == "content_filter" and not (
            response.text or response.tool_calls
        ):
            raise e.ContentFiltered(
                "the provider's content filter withheld the answer",
                alias=self._alias,
                code="content_filter",
            )
        return response

    async def _stream_once(
        self, request: ChatRequest, hook: HeadersHook
    ) -> AsyncGenerator[StreamEvent, None]:
        sent = self._request(request, stream=True)
        transport = self._transport
        mapped = self._mapped
        async with transport.slot():
            incoming: Incoming | None = None
            try:
                with anyio.move_on_after(self.timeout) as scope:
                    with mapped:
                        incoming = await transport.send(sent)
                        if hook is not None:
                            hook(self._alias, incoming.headers)
                        if incoming.status >= 300:
                            raise await self._error_of(incoming)
                if scope.cancelled_caught or incoming is None:
                    raise e.ProviderTimeout(
                        f"no response headers within timeout ({self.timeout:g}s)",
                        alias=self._alias,
                    )
                reader = SSEReader(
                    incoming,
                    alias=self._alias,
                    first_token_timeout=self.first_token_timeout or self.timeout,
                    idle_timeout=self.idle_timeout,
                    max_line_bytes=self.max_line_bytes,
                )
                decoder = self._codec.stream_decoder()
                limit = self.max_body_bytes
                total = 0
                with mapped:
                    try:
                        while not decoder.done and (events := await reader.read()) is not None:
                            for event in events:
                                deltas = decoder.feed(event)
                                for delta in deltas:
                                    piece = (
                                        delta.arguments
                                        if isinstance(delta, ToolCallDelta)
                                        else delta.text
                                    )
                                    total += len(piece)
                                    if total > limit:
                                        raise e.MalformedResponse(
                                            f"stream text over max_body_bytes ({limit})",
                                            alias=self._alias,
                                        )
                                    yield delta
                                if deltas:
                                    reader.event_arrived()
                                elif decoder.progressed:
                                    reader.progress()
                                if decoder.finishing:
                                    reader.finishing()
                                if decoder.done:
                                    break
                    except e.ProviderTimeout:
                        # The finish already came; only the trailer is late: the answer is whole.
                        if not decoder.finishing:
                            raise
                    response = decoder.result()
                if response is None:
                    raise e.ConnectionFailed(
                        f"stream ended before its terminal event ({decoder.terminal})",
                        alias=self._alias,
                        status=incoming.status,
                    )
                yield Completed(response=self._accept(response))
            finally:
                if incoming is not None:
                    await incoming.aclose()


@final
class OpenAIClient(Endpoint):
    """A client for the OpenAI chat completions API at any compatible base URL."""

    codec = OpenAICodec
    default_provider = "openai"
    default_base_url = "https://api.openai.com/v1"


@final
class AnthropicClient(Endpoint):
    """A client for the Anthropic Messages API (``x-api-key``, ``anthropic-version``)."""

    codec = AnthropicCodec
    default_provider = "anthropic"
    default_base_url = "https://api.anthropic.com"


# Tracebacks and reprs name the public path, not this module.
OpenAIClient.__module__ = AnthropicClient.__module__ = "fallover"
