"""Server-sent events: bytes in, events out (the WHATWG rules), with no I/O.

Keep-alive comments produce nothing, ``id:`` and ``retry:`` mean nothing to a
one-shot LLM stream, and a line over ``max_line_bytes`` is refused before more
of it is buffered.
"""

from __future__ import annotations

from .._errors import MalformedResponse
from ._base import SSEEvent

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Turn chunks of bytes into events, refusing lines over ``max_line_bytes``."""

    __slots__ = ("_alias", "_buf", "_data", "_event", "_max")

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
            return None  # a comment: a keep-alive
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = None
        if line is None:
            raise MalformedResponse("SSE line is not UTF-8", alias=self._alias)
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
