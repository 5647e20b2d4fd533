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
        # Only the new chunk is searched: a line with no end yet costs nothing more per chunk.
        end = chunk.rfind(b"\n") + 1
        if buf:
            if end:
                data = bytes(buf) + chunk[:end]
                buf.clear()
                buf += chunk[end:]
            else:
                buf += chunk
                data = b""
        else:
            data = chunk[:end] if end < len(chunk) else chunk
            if end < len(chunk):
                buf += chunk[end:]
        if len(buf) > self._max:
            self._too_long()
        if not data:
            return []
        if len(data) > self._max and max(map(len, data.split(b"\n"))) > self._max:
            self._too_long()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None:
            raise MalformedResponse("SSE line is not UTF-8", alias=self._alias)
        out: list[SSEEvent] = []
        lines = text.split("\n")
        lines.pop()  # what follows the last newline: nothing, as data ends with one
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(SSEEvent(self._event or "message", "\n".join(self._data)))
                    self._data = []
                self._event = ""
            elif line[0] != ":":  # a comment is a keep-alive
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    self._data.append(value)
                elif name == "event":
                    self._event = value
                # id: and retry: mean nothing to a one-shot LLM stream.
        return out

    def _too_long(self) -> None:
        raise MalformedResponse(
            f"SSE line longer than max_line_bytes ({self._max} bytes)", alias=self._alias
        )
