"""Server-sent events: a pure decoder and a reader with first-token and idle timeouts."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Protocol

import anyio

from .._errors import MalformedResponse, ProviderTimeout

__all__ = ["FINISH_GRACE", "SSEDecoder", "SSEEvent", "SSEReader"]

# After a finish_reason, how long to wait for the usage chunk and [DONE].
FINISH_GRACE = 1.0


class SSEEvent:
    """One dispatched event: its ``event`` name (default ``message``) and ``data``."""

    __slots__ = ("data", "event")

    def __init__(self, event: str, data: str) -> None:
        self.event = event
        self.data = data

    def __repr__(self) -> str:
        return f"SSEEvent(event={self.event!r}, data={self.data[:60]!r})"


class SSEDecoder:
    """Turn bytes into events (WHATWG rules), refusing lines over ``max_line_bytes``."""

    def __init__(self, *, alias: str, max_line_bytes: int) -> None:
        self._alias = alias
        self._max = max_line_bytes
        self._buf = bytearray()
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; return the events it completed."""
        buf = self._buf
        buf += chunk
        out: list[SSEEvent] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(buf[start:nl])
            start = nl + 1
            if len(line) > self._max:
                self._too_long()
            if line.endswith(b"\r"):
                line = line[:-1]
            event = self._line(line)
            if event is not None:
                out.append(event)
        del buf[:start]
        if len(buf) > self._max:
            self._too_long()
        return out

    def _too_long(self) -> None:
        raise MalformedResponse(
            f"SSE line longer than max_line_bytes ({self._max} bytes)", alias=self._alias
        )

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data))
            self._event = ""
            self._data = []
            return event
        if raw[:1] == b":":
            return None  # a comment / keep-alive
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedResponse("SSE line is not UTF-8", alias=self._alias) from exc
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # id: and retry: mean nothing to a one-shot LLM stream.
        return None


class _Content(Protocol):
    async def readany(self) -> bytes: ...


class SSEReader:
    """Read events from a response body under two clocks.

    Until the adapter calls :meth:`text_arrived`, reads must finish before the
    first-token deadline; after it, no more than ``idle_timeout`` may pass
    between pieces of progress (the adapter calls :meth:`progress`). Keep-alive
    comments and pings are not progress, so a trickle of them cannot keep a
    stalled stream open.
    """

    def __init__(
        self,
        content: _Content,
        *,
        alias: str,
        first_token_timeout: float | None,
        idle_timeout: float | None,
        max_line_bytes: int,
    ) -> None:
        self._content = content
        self._alias = alias
        self._decoder = SSEDecoder(alias=alias, max_line_bytes=max_line_bytes)
        self._idle = idle_timeout if idle_timeout is not None else math.inf
        now = anyio.current_time()
        first = first_token_timeout if first_token_timeout is not None else math.inf
        self._first_deadline = now + first
        self._idle_deadline = now + self._idle
        self._text_seen = False
        self.eof = False

    def text_arrived(self) -> None:
        """The first text came: from now on only the idle clock runs."""
        self._text_seen = True
        self.progress()

    def progress(self) -> None:
        """Something that counts as progress came: restart the idle clock."""
        self._idle_deadline = anyio.current_time() + self._idle

    def finishing(self) -> None:
        """The answer is whole: wait only briefly for a trailer."""
        self._text_seen = True
        self._idle_deadline = min(self._idle_deadline, anyio.current_time() + FINISH_GRACE)

    def _deadline(self) -> tuple[float, str]:
        if not self._text_seen and self._first_deadline < self._idle_deadline:
            return self._first_deadline, "no text within first_token_timeout"
        return self._idle_deadline, "stream stalled longer than idle_timeout"

    async def events(self) -> AsyncIterator[SSEEvent]:
        """Yield events until the body ends; raise ProviderTimeout on a stall."""
        while True:
            deadline, why = self._deadline()
            chunk = b""
            if deadline == math.inf:
                chunk = await self._content.readany()
            else:
                with anyio.CancelScope(deadline=deadline) as scope:
                    chunk = await self._content.readany()
                if scope.cancelled_caught:
                    raise ProviderTimeout(why, alias=self._alias)
            if not chunk:
                self.eof = True
                return
            for event in self._decoder.feed(chunk):
                yield event
