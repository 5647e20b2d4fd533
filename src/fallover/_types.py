"""The neutral model: requests, responses, attempts and stream events.

Every type is a frozen, keyword-only ``msgspec.Struct``. The model belongs to
no protocol: each codec (``_codecs/``) writes it in its protocol's own shape
and reads answers back into it, so one request can go to any member of a pool.
Stream events form a tagged union so ``match`` statements and JSON encoding
both work. Construction refuses an invalid request with an error that names
the field, so a doomed request never reaches a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = [
    "Attempt",
    "ChatRequest",
    "ChatResponse",
    "Completed",
    "Image",
    "JsonSchema",
    "Message",
    "ProviderState",
    "Reasoning",
    "ReasoningDelta",
    "Restarted",
    "StreamEvent",
    "Text",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
Outcome: TypeAlias = Literal["ok", "error", "skipped"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter"]
Effort: TypeAlias = Literal["low", "medium", "high"]
Capability: TypeAlias = Literal["tools", "vision", "json_schema", "reasoning"]

ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))
CAPABILITIES: frozenset[str] = frozenset(("tools", "vision", "json_schema", "reasoning"))
EFFORTS: tuple[str, ...] = ("low", "medium", "high")


class Text(msgspec.Struct, kw_only=True, frozen=True, tag="text"):
    """A text part of a message."""

    text: str


class Image(msgspec.Struct, kw_only=True, frozen=True, tag="image"):
    """An image part: a URL, or the bytes themselves with their media type."""

    url: str | None = None
    data: bytes | None = None
    media_type: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("Image needs exactly one of url= or data=")
        if self.data is not None and not self.media_type:
            raise ValueError("Image(data=...) needs media_type, such as 'image/png'")


Part: TypeAlias = Text | Image


class ToolCall(msgspec.Struct, kw_only=True, frozen=True):
    """A call the model asked for; ``arguments`` is JSON text, as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


class ProviderState(msgspec.Struct, kw_only=True, frozen=True):
    """Opaque state a provider wants back unchanged on the next turn.

    It is replayed only to a member of the same ``protocol`` and ``provider``,
    and dropped when the conversation moves elsewhere.
    """

    protocol: str
    provider: str
    data: Any


class Message(msgspec.Struct, kw_only=True, frozen=True):
    """One turn of the conversation."""

    role: Role
    content: str | Sequence[Part] = ""
    tool_calls: Sequence[ToolCall] = ()
    tool_call_id: str | None = None
    reasoning: str | None = None
    provider_state: ProviderState | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(
                f"Message.role {self.role!r} is not a role (choose {', '.join(sorted(ROLES))})"
            )
        if not isinstance(self.content, str):
            for i, part in enumerate(self.content):
                if not isinstance(part, Text | Image):
                    raise TypeError(
                        f"Message.content[{i}] is {type(part).__name__}, "
                        "expected fallover.Text or fallover.Image"
                    )
                if isinstance(part, Image) and self.role != "user":
                    raise ValueError(f"Message.content[{i}]: images go in user messages only")
        if self.role == "tool":
            if not self.tool_call_id:
                raise ValueError("Message.tool_call_id is required on a tool message")
        elif self.tool_call_id is not None:
            raise ValueError("Message.tool_call_id belongs on tool messages only")
        if self.role != "assistant":
            for name in ("tool_calls", "reasoning", "provider_state"):
                if getattr(self, name):
                    raise ValueError(f"Message.{name} belongs on assistant messages only")
        for i, call in enumerate(self.tool_calls):
            if not isinstance(call, ToolCall):
                raise TypeError(
                    f"Message.tool_calls[{i}] is {type(call).__name__}, expected fallover.ToolCall"
                )

    @property
    def text(self) -> str:
        """The text of the content, parts joined."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, Text))


class Tool(msgspec.Struct, kw_only=True, frozen=True):
    """A function the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    strict: bool | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"Tool.name {self.name!r} must be letters, digits, '_' or '-'")
        if not isinstance(self.parameters, Mapping) or self.parameters.get("type") != "object":
            raise ValueError(f"Tool {self.name!r}: parameters must be a JSON Schema object")


class JsonSchema(msgspec.Struct, kw_only=True, frozen=True):
    """Ask for JSON that matches ``schema`` (structured output)."""

    name: str
    schema: Mapping[str, Any]
    strict: bool = True
    description: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("JsonSchema.name must not be empty")
        if not isinstance(self.schema, Mapping):
            raise TypeError("JsonSchema.schema must be a mapping (a JSON Schema)")


class Reasoning(msgspec.Struct, kw_only=True, frozen=True):
    """Ask a reasoning model to think: an effort, and optionally a token budget."""

    effort: Effort = "medium"
    budget_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.effort not in EFFORTS:
            raise ValueError(f"Reasoning.effort {self.effort!r} is not one of {', '.join(EFFORTS)}")
        if self.budget_tokens is not None and self.budget_tokens <= 0:
            raise ValueError(f"Reasoning.budget_tokens must be positive, got {self.budget_tokens}")


class ChatRequest(msgspec.Struct, kw_only=True, frozen=True):
    """What to ask. ``model`` is used by a plain client and ignored by a router."""

    messages: Sequence[Message]
    model: str | None = None
    tools: Sequence[Tool] = ()
    tool_choice: str = "auto"
    parallel_tool_calls: bool | None = None
    response_format: JsonSchema | Literal["json"] | None = None
    reasoning: Reasoning | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | Sequence[str] | None = None
    user: str | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("ChatRequest.messages is empty: give at least one Message")
        for i, m in enumerate(self.messages):
            if not isinstance(m, Message):
                raise TypeError(
                    f"ChatRequest.messages[{i}] is {type(m).__name__}, expected fallover.Message"
                )
        names: set[str] = set()
        for i, t in enumerate(self.tools):
            if not isinstance(t, Tool):
                raise TypeError(
                    f"ChatRequest.tools[{i}] is {type(t).__name__}, expected fallover.Tool"
                )
            if t.name in names:
                raise ValueError(f"ChatRequest.tools[{i}]: a second tool named {t.name!r}")
            names.add(t.name)
        if self.tool_choice not in ("auto", "none", "required") and self.tool_choice not in names:
            raise ValueError(
                f"ChatRequest.tool_choice {self.tool_choice!r} is not 'auto', 'none', "
                "'required' or the name of one of the tools"
            )
        rf = self.response_format
        if rf is not None and rf != "json" and not isinstance(rf, JsonSchema):
            raise ValueError("ChatRequest.response_format must be a fallover.JsonSchema or 'json'")
        if self.reasoning is not None and not isinstance(self.reasoning, Reasoning):
            raise TypeError("ChatRequest.reasoning must be a fallover.Reasoning")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ValueError(f"ChatRequest.max_tokens must be positive, got {self.max_tokens}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ValueError(f"ChatRequest.temperature must be in [0, 2], got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"ChatRequest.top_p must be in (0, 1], got {self.top_p}")

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as a tuple, whatever form it was given in."""
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def needs(self) -> frozenset[str]:
        """The capabilities a member must have to take this request."""
        needs: set[str] = set()
        if self.tools or any(m.tool_calls or m.role == "tool" for m in self.messages):
            needs.add("tools")
        if any(
            not isinstance(m.content, str) and any(isinstance(p, Image) for p in m.content)
            for m in self.messages
        ):
            needs.add("vision")
        if isinstance(self.response_format, JsonSchema):
            needs.add("json_schema")
        if self.reasoning is not None:
            needs.add("reasoning")
        return frozenset(needs)


class Usage(msgspec.Struct, kw_only=True, frozen=True):
    """Token counts the provider reported; 0 where it reported none."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


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
    finish_reason: FinishReason | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    refusal: str | None = None
    provider_state: ProviderState | None = None

    @property
    def message(self) -> Message:
        """The assistant turn to append to the history, provider state included."""
        return Message(
            role="assistant",
            content=self.text,
            tool_calls=self.tool_calls,
            reasoning=self.reasoning,
            provider_state=self.provider_state,
        )


class ReasoningDelta(msgspec.Struct, kw_only=True, frozen=True, tag="reasoning_delta"):
    """A piece of the model's reasoning, in order."""

    text: str


class TextDelta(msgspec.Struct, kw_only=True, frozen=True, tag="text_delta"):
    """A piece of the answer, in order."""

    text: str


class ToolCallDelta(msgspec.Struct, kw_only=True, frozen=True, tag="tool_call_delta"):
    """A fragment of tool call ``index``: its id and name come first, then argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Restarted(msgspec.Struct, kw_only=True, frozen=True, tag="restarted"):
    """The stream from ``alias`` broke after an event: drop what you got, a fresh one follows."""

    alias: str
    reason: str


class Completed(msgspec.Struct, kw_only=True, frozen=True, tag="completed"):
    """The stream ended well; always the last event. Tool calls are assembled."""

    response: ChatResponse


StreamEvent: TypeAlias = ReasoningDelta | TextDelta | ToolCallDelta | Restarted | Completed
