"""The SSE decoder and the reader's clocks."""

from __future__ import annotations

import anyio
import pytest

import fallover as f
from fallover._providers._sse import SSEDecoder, SSEReader


def decode(*chunks: bytes, max_line: int = 1024) -> list[tuple[str, str]]:
    d = SSEDecoder(alias="p/m", max_line_bytes=max_line)
    return [(e.event, e.data) for c in chunks for e in d.feed(c)]


def test_events_split_across_chunks() -> None:
    """Lines and events may straddle chunk boundaries, CRLF included."""
    got = decode(b"event: a\r\nda", b"ta: 1\r\n", b"\r\ndata: 2\n", b"data: 3\n\n")
    assert got == [("a", "1"), ("message", "2\n3")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    """Keep-alive comments, id: and retry: produce nothing."""
    assert decode(b": ping\n\nid: 7\nretry: 10\n\ndata: x\n\n") == [("message", "x")]


def test_incomplete_event_is_not_dispatched() -> None:
    """An event without its blank line is not an event (EOF discards it)."""
    assert decode(b"data: half") == []


def test_long_line_is_malformed() -> None:
    """A line over the cap fails without buffering more."""
    with pytest.raises(f.MalformedResponse, match="max_line_bytes"):
        decode(b"data: " + b"x" * 100, max_line=50)
    with pytest.raises(f.MalformedResponse, match="max_line_bytes"):
        decode(b"data: " + b"x" * 100 + b"\n", max_line=50)


def test_non_utf8_is_malformed() -> None:
    """Bytes that are not UTF-8 are a malformed stream."""
    with pytest.raises(f.MalformedResponse, match="UTF-8"):
        decode(b"data: \xff\xfe\n\n")


class Trickle:
    """A body that sends given chunks then stays silent until cancelled."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def readany(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_first_token_timeout_ignores_keepalives() -> None:
    """Comments before the first text do not extend the first-token deadline."""
    reader = SSEReader(
        Trickle(b": ping\n\n", b": ping\n\n"),
        alias="p/m",
        first_token_timeout=0.05,
        idle_timeout=10,
        max_line_bytes=100,
    )
    with anyio.fail_after(5), pytest.raises(f.ProviderTimeout, match="first_token_timeout"):
        async for _ in reader.events():
            pass


async def test_idle_timeout_after_text() -> None:
    """After text, silence longer than idle_timeout is a stall."""
    reader = SSEReader(
        Trickle(b"data: a\n\n"),
        alias="p/m",
        first_token_timeout=None,
        idle_timeout=0.05,
        max_line_bytes=100,
    )
    got = []
    with anyio.fail_after(5), pytest.raises(f.ProviderTimeout, match="idle_timeout"):
        async for event in reader.events():
            reader.text_arrived()
            got.append(event.data)
    assert got == ["a"]
