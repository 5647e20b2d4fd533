"""MockClient: a member whose behaviour a handler scripts, for tests without HTTP.

Like httpx's ``MockTransport``: the handler receives each request and returns
the answer (a string, a ``ChatResponse``, or for streams an async iterator of
text pieces) or raises the error the member should fail with.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Self, TypeAlias, final

from .. import _errors as e
from .._client import OnInterrupt
from .._types import CAPABILITIES, ChatRequest, ChatResponse, Completed, StreamEvent, TextDelta

__all__ = ["MockClient"]

MockAnswer: TypeAlias = str | ChatResponse | AsyncIterable[str]
Handler: TypeAlias = Callable[[ChatRequest], Awaitable[MockAnswer]]


@final
class MockClient:
    """An LLMClient driven by ``handler``; records every request in ``requests``."""

    def __init__(
        self,
        handler: Handler,
        *,
        alias: str = "mock/model",
        context_window: int | None = None,
    ) -> None:
        self._handler = handler
        self._alias = alias
        self._context_window = context_window
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
        """Everything."""
        return CAPABILITIES

    def unfit(self, request: ChatRequest) -> str | None:
        """The first capability ``request`` needs that this client lacks, as a reason."""
        missing = request.needs - self.capabilities
        return f"cannot take {', '.join(sorted(missing))}" if missing else None

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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
