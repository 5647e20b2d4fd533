"""Value types are frozen, keyword-only and validate what they can."""

import msgspec
import pytest

import fallover


def test_request_needs_messages() -> None:
    """A ChatRequest with no messages is a clear ValueError."""
    with pytest.raises(ValueError, match="messages is empty"):
        fallover.ChatRequest(messages=[])


def test_request_rejects_non_messages() -> None:
    """A dict where a Message belongs names the index."""
    with pytest.raises(TypeError, match=r"messages\[0\]"):
        fallover.ChatRequest(messages=[{"role": "user", "content": "x"}])  # type: ignore[list-item]


def test_types_are_frozen_and_keyword_only() -> None:
    """Structs refuse mutation and positional arguments."""
    msg = fallover.Message(role="user", content="hi")
    with pytest.raises(AttributeError):
        msg.content = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        fallover.Message("user", "hi")  # type: ignore[misc]


def test_stream_events_are_a_tagged_union() -> None:
    """Events encode with their tag and decode back into the right class."""
    resp = fallover.ChatResponse(text="t", model="m", alias="p/m")
    events = [
        fallover.TextDelta(text="a"),
        fallover.Restarted(alias="p/m", reason="r"),
        fallover.Completed(response=resp),
    ]
    raw = msgspec.json.encode(events)
    assert b'"type":"text_delta"' in raw
    back = msgspec.json.decode(raw, type=list[fallover.StreamEvent])
    assert back == events
