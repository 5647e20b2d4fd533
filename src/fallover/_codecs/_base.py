"""The shape every protocol codec has; the endpoint drives any codec through it.

A codec is built once per member (model, provider, wire quirks) and is pure:
``encode`` turns a neutral request into body bytes, ``decode`` turns a body
into a neutral answer, and a ``StreamDecoder`` turns SSE events into neutral
stream events and, at the end, the assembled answer. Codecs never see an API
key, never classify errors and never sleep: an error object that arrives
where an answer should be is reported as ``UpstreamError`` and the endpoint
classifies and redacts it, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .._types import ChatRequest, ChatResponse, ReasoningDelta, TextDelta, ToolCallDelta

__all__ = ["Codec", "Delta", "SSEEvent", "StreamDecoder", "UpstreamError"]

Delta = ReasoningDelta | TextDelta | ToolCallDelta


class SSEEvent:
    """One dispatched server-sent event: its ``event`` name (default ``message``) and ``data``."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: str) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data[:60]!r})"


class UpstreamError(Exception):
    """An error object where an answer or a stream event should be (the endpoint classifies it)."""

    def __init__(self, payload: Any, *, status: int | None = None) -> None:
        super().__init__("error object from the provider")
        self.payload = payload
        self.status = status


class StreamDecoder(Protocol):
    """Reads one stream's SSE events, in order, for one attempt."""

    def feed(self, event: SSEEvent) -> Sequence[Delta]:
        """The deltas this event carries (often none).

        Raises ``UpstreamError`` for an error event, and msgspec errors for
        an event that is not the protocol's JSON.
        """
        ...

    @property
    def progressed(self) -> bool:
        """The last event fed was real progress (not a keep-alive or ping)."""
        ...

    @property
    def finishing(self) -> bool:
        """The answer is whole (a finish reason came); only a trailer may follow."""
        ...

    @property
    def done(self) -> bool:
        """The protocol's terminal event has arrived."""
        ...

    def result(self) -> ChatResponse | None:
        """The assembled answer once ``done`` (or at EOF once ``finishing``), else None."""
        ...

    @property
    def terminal(self) -> str:
        """The name of the terminal event, for error messages."""
        ...


class Codec(Protocol):
    """One protocol, configured for one member."""

    @property
    def protocol(self) -> str:
        """``openai`` or ``anthropic``."""
        ...

    def path(self) -> str:
        """The path under the base URL: ``/chat/completions`` or ``/v1/messages``."""
        ...

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """The headers that carry the key and the protocol's version."""
        ...

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this member cannot take ``request`` faithfully, or None when it can."""
        ...

    def encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""
        ...

    def decode(self, body: bytes, *, status: int) -> ChatResponse:
        """A whole answer (status 2xx). Raises ``UpstreamError`` for an error object."""
        ...

    def stream_decoder(self) -> StreamDecoder:
        """A fresh decoder for one stream."""
        ...
