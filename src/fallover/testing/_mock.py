"""Fakes for tests: a transport beneath the real clients, and a scripted member.

``MockTransport`` is like httpx's: the real ``OpenAIClient``/``AnthropicClient``
run over it (headers, codecs, retries, stream assembly and error
classification all for real) and only the network is replaced by a handler.
``MockClient`` replaces a whole member, for routing tests that need no wire.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias, final

import msgspec
from anyio.abc import AsyncResource
from multidict import CIMultiDict

from .. import _errors as e
from .._client import OnInterrupt
from .._endpoint import missing_capabilities
from .._rules import check_capabilities
from .._transport import Incoming, Request, Transport
from .._types import CAPABILITIES, ChatRequest, ChatResponse, Completed, StreamEvent, TextDelta

__all__ = ["Handler", "MockAnswer", "MockClient", "MockTransport", "Request", "Response"]

_UNSET: Any = object()


@final
class Response:
    """What a ``MockTransport`` handler answers.

    The body is ``content`` (bytes, text, or an async iterable of byte chunks
    for a stream) or ``json`` (any value, encoded as JSON).
    """

    __slots__ = ("content", "headers", "status")

    def __init__(
        self,
        status: int = 200,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | AsyncIterable[bytes] = b"",
        json: Any = _UNSET,
    ) -> None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"Response status must be an HTTP status code, got {status!r}")
        self.status = status
        self.headers: CIMultiDict[str] = CIMultiDict(headers or {})
        if json is not _UNSET:
            content = msgspec.json.encode(json)
            self.headers.setdefault("Content-Type", "application/json")
        elif isinstance(content, str):
            content = content.encode()
        elif not isinstance(content, bytes | AsyncIterable):
            raise TypeError(
                f"Response content must be bytes, str or an async iterable of bytes, "
                f"got {type(content).__name__}"
            )
        self.content: bytes | AsyncIterable[bytes] = content

    def __repr__(self) -> str:
        return f"Response({self.status})"


Handler: TypeAlias = Callable[[Request], Response | Awaitable[Response]]


@final
class _MockIncoming(Incoming):
    __slots__ = ("_body", "_chunks", "content_length", "headers", "status")

    def __init__(self, response: Response) -> None:
        self.status = response.status
        self.headers = response.headers
        content = response.content
        self._body: bytes | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        if isinstance(content, bytes):
            self._body = content
            self.content_length = len(content)
        else:
            self._chunks = aiter(content)
            self.content_length = None

    async def readany(self) -> bytes:
        if self._body is not None:
            body, self._body = self._body, b""
            return body
        if self._chunks is None:
            return b""
        async for chunk in self._chunks:
            if chunk:
                if not isinstance(chunk, bytes):
                    raise TypeError(f"a stream chunk must be bytes, got {type(chunk).__name__}")
                return chunk
        return b""

    async def aclose(self) -> None:
        chunks, self._chunks = self._chunks, None
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


@final
class MockTransport(Transport):
    """A transport that answers every request by calling ``handler``.

    The handler receives a :class:`Request` (``method``, ``url``, ``headers``,
    ``body`` and ``.json()``) and returns a :class:`Response`, or awaits one;
    it may raise an OS error (``ConnectionResetError``, ``TimeoutError``) to
    fail the exchange the way a network does. Every request is kept in
    ``requests``.
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(f"MockTransport handler must be callable, got {type(handler).__name__}")
        self._handler = handler
        self.requests: list[Request] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"MockTransport({len(self.requests)} requests)"

    async def send(self, request: Request) -> Incoming:
        if self.closed:
            raise RuntimeError("MockTransport is closed")
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, Response):
            raise TypeError(
                f"MockTransport handler returned {type(answer).__name__}, "
                "expected fallover.testing.Response"
            )
        return _MockIncoming(answer)

    async def aclose(self) -> None:
        self.closed = True


MockAnswer: TypeAlias = str | ChatResponse | AsyncIterable[str]
ClientHandler: TypeAlias = Callable[[ChatRequest], Awaitable[MockAnswer]]


@final
class MockClient(AsyncResource):
    """An LLMClient driven by ``handler``; records every request in ``requests``.

    The handler receives each request and returns the answer (a string, a
    ``ChatResponse``, or for streams an async iterator of text pieces) or
    raises the error the member should fail with.
    """

    def __init__(
        self,
        handler: ClientHandler,
        *,
        alias: str = "mock/model",
        context_window: int | None = None,
        capabilities: Iterable[str] | None = None,
    ) -> None:
        self._handler = handler
        self._alias = alias
        self._context_window = context_window
        if isinstance(capabilities, str):
            raise TypeError(f"capabilities must be a list of names, not {capabilities!r}")
        self._capabilities = (
            CAPABILITIES if capabilities is None else check_capabilities(capabilities)
        )
        self.requests: list[ChatRequest] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"MockClient(alias={self._alias!r})"

    @property
    def alias(self) -> str:
        """The alias given at construction."""
        return self._alias

    @property
    def context_window(self) -> int | None:
        """The context window given at construction."""
        return self._context_window

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities given at construction (all by default)."""
        return self._capabilities

    def unfit(self, request: ChatRequest) -> str | None:
        """The capabilities ``request`` needs that this client lacks, as a reason."""
        return missing_capabilities(request, self._capabilities)

    @property
    def model(self) -> str:
        """The model part of the alias."""
        return self._alias.rpartition("/")[2]

    def _response(self, text: str) -> ChatResponse:
        return ChatResponse(text=text, model=self.model, alias=self._alias, finish_reason="stop")

    async def complete(self, request: ChatRequest) -> ChatResponse:
        """Ask the handler; join streamed pieces."""
        self.requests.append(request)
        answer = await self._handler(request)
        if isinstance(answer, ChatResponse):
            return answer
        if isinstance(answer, str):
            return self._response(answer)
        return self._response("".join([piece async for piece in answer]))

    async def stream(
        self, request: ChatRequest, *, on_interrupt: OnInterrupt = "error"
    ) -> AsyncIterator[StreamEvent]:
        """Ask the handler; yield its pieces. A failure after text is StreamInterrupted."""
        self.requests.append(request)
        answer = await self._handler(request)
        if isinstance(answer, ChatResponse):
            if answer.text:
                yield TextDelta(text=answer.text)
            yield Completed(response=answer)
            return
        if isinstance(answer, str):
            if answer:
                yield TextDelta(text=answer)
            yield Completed(response=self._response(answer))
            return
        parts: list[str] = []
        try:
            async for piece in answer:
                parts.append(piece)
                yield TextDelta(text=piece)
        except e.ProviderError as exc:
            if not parts:
                raise
            raise e.StreamInterrupted(
                f"{self._alias}: stream failed after text: {exc}",
                partial_text="".join(parts),
                error=exc,
            ) from exc
        yield Completed(response=self._response("".join(parts)))

    async def aclose(self) -> None:
        """Mark closed."""
        self.closed = True
