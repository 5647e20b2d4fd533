"""Wire and value types: requests, responses, attempts and stream events.

Every type is a frozen, keyword-only ``msgspec.Struct``; stream events form a
tagged union so ``match`` statements and JSON encoding both work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import msgspec

__all__ = [
    "Attempt",
    "ChatRequest",
    "ChatResponse",
    "Completed",
    "Message",
    "Restarted",
    "StreamEvent",
    "TextDelta",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant"]
Outcome: TypeAlias = Literal["ok", "error", "skipped"]


class Message(msgspec.Struct, kw_only=True, frozen=True):
    """One chat message."""

    role: Role
    content: str


class ChatRequest(msgspec.Struct, kw_only=True, frozen=True):
    """What to ask. ``model`` is used by a plain client and ignored by a router."""

    messages: Sequence[Message]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    stop: Sequence[str] | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("ChatRequest.messages is empty: give at least one Message")
        for i, m in enumerate(self.messages):
            if not isinstance(m, Message):
                raise TypeError(
                    f"ChatRequest.messages[{i}] is {type(m).__name__}, expected fallover.Message"
                )
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"ChatRequest.max_tokens must be positive, got {self.max_tokens}")


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    """Token counts the provider reported."""

    input_tokens: int
    output_tokens: int


class Attempt(msgspec.Struct, kw_only=True, frozen=True):
    """One member tried (or skipped) during a call."""

    alias: str
    outcome: Outcome
    error: str | None = None
    status: int | None = None
    elapsed_s: float = 0.0


class ChatResponse(msgspec.Struct, kw_only=True, frozen=True):
    """A complete answer and who wrote it."""

    text: str
    model: str
    alias: str
    usage: Usage | None = None
    attempts: tuple[Attempt, ...] = ()
    finish_reason: str | None = None


class TextDelta(msgspec.Struct, kw_only=True, frozen=True, tag="text_delta"):
    """A piece of the answer, in order."""

    text: str


class Restarted(msgspec.Struct, kw_only=True, frozen=True, tag="restarted"):
    """The stream from ``alias`` broke after text: drop what you got, a fresh answer follows."""

    alias: str
    reason: str


class Completed(msgspec.Struct, kw_only=True, frozen=True, tag="completed"):
    """The stream ended well; always the last event."""

    response: ChatResponse


StreamEvent: TypeAlias = TextDelta | Restarted | Completed
