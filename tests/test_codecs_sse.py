"""The SSE decoder: bytes in, events out, no I/O."""

from __future__ import annotations

import pytest

import fallover as f
from fallover._codecs._sse import SSEDecoder


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
    """Bytes that are not UTF-8 are a malformed stream, with no decoder error chained."""
    with pytest.raises(f.MalformedResponse, match="UTF-8") as info:
        decode(b"data: \xff\xfe\n\n")
    assert info.value.__context__ is None


def test_every_split_of_a_stream_decodes_alike() -> None:
    """Whatever the chunk boundaries (inside a line, a CRLF or a UTF-8 character), the events agree."""
    raw = "event: a\r\ndata: é1\r\n\r\n: ping\n\ndata: 2\ndata: ü\n\n".encode()
    whole = decode(raw)
    assert whole == [("a", "é1"), ("message", "2\nü")]
    for i in range(len(raw)):
        for j in range(i, len(raw)):
            assert decode(raw[:i], raw[i:j], raw[j:]) == whole, (i, j)
