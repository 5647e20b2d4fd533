"""The Anthropic Messages API as a pure codec.

Reference: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming

The codec speaks ``anthropic-version: 2023-06-01``, the version in which
``temperature`` and ``top_p`` are still request fields (the 2.x SDKs default to
a later version that removed them). Structured output is written as
``output_config: {"format": {"type": "json_schema", "schema": ...}}``, the
form the structured-outputs documentation gives since it left beta
(https://platform.claude.com/docs/en/build-with-claude/structured-outputs;
``output_format`` is its deprecated predecessor). Reasoning is written as
``thinking: {"type": "enabled", "budget_tokens": N}``; ``extra_body`` can
replace it (``{"thinking": {"type": "adaptive"}}`` for models that refuse a
budget).

Usage is reported as the other protocol counts it: ``input_tokens`` is every
prompt token, cache reads and writes included.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias, cast, final

import msgspec
from msgspec import UNSET, UnsetType

from .._types import (
    ChatRequest,
    ChatResponse,
    FinishReason,
    Image,
    JsonSchema,
    Message,
    ProviderState,
    ReasoningDelta,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._base import Delta, SSEEvent, UpstreamError
from ._dialect import closed_schema

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicCodec", "AnthropicStreamDecoder"]

PROTOCOL: Final = "anthropic"
ANTHROPIC_VERSION: Final = "2023-06-01"
# The Messages API requires max_tokens; this is what we send when the caller gave none.
DEFAULT_MAX_TOKENS: Final = 4096
# Thinking budgets for an effort given without a budget; the API's least is 1024.
THINKING_BUDGETS: Final[Mapping[str, int]] = {"low": 2048, "medium": 8192, "high": 16384}
MIN_THINKING_BUDGET: Final = 1024
MAX_TEMPERATURE: Final = 1.0
IMAGE_TYPES: Final = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))

_FINISH: Final[Mapping[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Tool-use ids must match this; ids written by other providers are rewritten to fit.
_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
_NOT_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")

# -- answers -----------------------------------------------------------------------


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Block(msgspec.Struct):
    """Every content block type's fields; ``type`` says which one it is."""

    type: str
    text: str = ""
    thinking: str = ""
    signature: str = ""
    data: str = ""
    id: str = ""
    name: str = ""
    input: Any = None


class _Response(msgspec.Struct):
    content: list[_Block]
    model: str = ""
    stop_reason: str | None = None
    usage: _Usage | None = None


# -- requests ----------------------------------------------------------------------


class _TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class _Base64Source(msgspec.Struct, tag_field="type", tag="base64"):
    media_type: str
    data: str


class _URLSource(msgspec.Struct, tag_field="type", tag="url"):
    url: str


class _ImageBlock(msgspec.Struct, tag_field="type", tag="image"):
    source: _Base64Source | _URLSource


class _ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: Any


class _ToolResultBlock(msgspec.Struct, tag_field="type", tag="tool_result"):
    tool_use_id: str
    content: str | UnsetType = UNSET


class _WireMessage(msgspec.Struct):
    role: str
    content: str | list[Any]


_USER: Final = "user"


class _ToolDef(msgspec.Struct):
    name: str
    input_schema: Mapping[str, Any]
    description: str | UnsetType = UNSET
    strict: bool | UnsetType = UNSET


class _BasicRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields of a plain request: fewer fields encode faster on the hot path."""

    model: str
    messages: list[_WireMessage]
    max_tokens: int
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False


class _WireRequest(_BasicRequest, kw_only=True, omit_defaults=True):
    """A request with tools, structured output or thinking."""

    tools: list[_ToolDef] | UnsetType = UNSET
    tool_choice: dict[str, Any] | UnsetType = UNSET
    thinking: dict[str, Any] | UnsetType = UNSET
    output_config: dict[str, Any] | UnsetType = UNSET


# -- stream events: one Struct per event type, told apart by their "type" field -------


class _StartMessage(msgspec.Struct):
    model: str = ""
    usage: _Usage | None = None


class _MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: _StartMessage


class _ContentBlockStart(msgspec.Struct, tag_field="type", tag="content_block_start"):
    content_block: _Block
    index: int = 0


class _BlockDelta(msgspec.Struct):
    """Every delta type's fields; ``type`` says which one it is."""

    type: str = ""
    text: str = ""
    partial_json: str = ""
    thinking: str = ""
    signature: str = ""


class _ContentBlockDelta(msgspec.Struct, tag_field="type", tag="content_block_delta"):
    delta: _BlockDelta
    index: int = 0


class _ContentBlockStop(msgspec.Struct, tag_field="type", tag="content_block_stop"):
    index: int = 0


class _StopDelta(msgspec.Struct):
    stop_reason: str | None = None


class _MessageDelta(msgspec.Struct, tag_field="type", tag="message_delta"):
    delta: _StopDelta | None = None
    usage: _Usage | None = None


class _MessageStop(msgspec.Struct, tag_field="type", tag="message_stop"):
    pass


class _Ping(msgspec.Struct, tag_field="type", tag="ping"):
    pass


class _Error(msgspec.Struct, tag_field="type", tag="error"):
    error: Any = None


_Event: TypeAlias = (
    _MessageStart
    | _ContentBlockStart
    | _ContentBlockDelta
    | _ContentBlockStop
    | _MessageDelta
    | _MessageStop
    | _Ping
    | _Error
)
_EVENT_TYPES: Final = frozenset(
    (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
)

_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.decode
_decode_response: Callable[[bytes], _Response] = msgspec.json.Decoder(_Response).decode
_decode_event: Callable[[str], _Event] = msgspec.json.Decoder(_Event).decode


def _finish(raw: str | None) -> FinishReason | None:
    return _FINISH.get(raw) if raw else None


def _usage(input_tokens: int, u: _Usage) -> Usage:
    read = u.cache_read_input_tokens or 0
    write = u.cache_creation_input_tokens or 0
    return Usage(
        input_tokens=input_tokens + read + write,
        output_tokens=u.output_tokens or 0,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _error_payload(body: bytes) -> Any:
    """The error object in ``body``, or None when it holds none."""
    try:
        payload = _decode_any(body)
    except msgspec.DecodeError:
        return None
    return payload if isinstance(payload, dict) and "error" in payload else None


def _tool_id(raw: str) -> str:
    if _TOOL_ID.fullmatch(raw):
        return raw
    return _NOT_TOOL_ID.sub("_", raw) or "call"


def _arguments(call: ToolCall) -> dict[str, Any] | None:
    """The call's arguments as the object Anthropic wants, or None when they are not one."""
    try:
        value = _decode_any(call.arguments or "{}")
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, dict) else None


def _replayed_blocks(m: Message, provider: str) -> list[Any]:
    """Thinking blocks this provider wrote for ``m``, to send back unchanged."""
    state = m.provider_state
    if state is None or state.protocol != PROTOCOL or state.provider != provider:
        return []
    data = state.data
    blocks = data.get("blocks") if isinstance(data, dict) else None
    return list(blocks) if isinstance(blocks, list) else []


def _image(p: Image) -> _ImageBlock:
    if p.url is not None:
        return _ImageBlock(source=_URLSource(url=p.url))
    assert p.data is not None
    assert p.media_type is not None
    return _ImageBlock(
        source=_Base64Source(media_type=p.media_type, data=base64.b64encode(p.data).decode("ascii"))
    )


def _content(content: str | Sequence[Text | Image]) -> str | list[Any]:
    if isinstance(content, str):
        return content
    return [_TextBlock(text=p.text) if isinstance(p, Text) else _image(p) for p in content]


@final
class AnthropicCodec:
    """The Messages protocol for one member."""

    __slots__ = ("_extra_body", "alias", "model", "provider")

    def __init__(
        self,
        *,
        model: str,
        alias: str,
        provider: str = "anthropic",
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.alias = alias
        self.provider = provider
        self._extra_body = dict(extra_body) if extra_body else None

    def __repr__(self) -> str:
        return f"AnthropicCodec(model={self.model!r}, provider={self.provider!r})"

    @property
    def protocol(self) -> str:
        """``anthropic``."""
        return PROTOCOL

    def path(self) -> str:
        """``/v1/messages``: like the SDK's ``ANTHROPIC_BASE_URL``, the base URL has no ``/v1``."""
        return "/v1/messages"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """``x-api-key`` (when there is a key) and ``anthropic-version``."""
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    # -- fitness ---------------------------------------------------------------------

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this member cannot take ``request`` as it means, or None."""
        t = request.temperature
        if t is not None and t > MAX_TEMPERATURE:
            return f"Anthropic takes temperature up to {MAX_TEMPERATURE:g}, got {t:g}"
        if request.seed is not None:
            return "Anthropic has no seed"
        if request.response_format == "json":
            return "Anthropic has no JSON mode without a schema (give a fallover.JsonSchema)"
        why = self._unfit_messages(request)
        if why is None and request.reasoning is not None:
            why = self._unfit_thinking(request)
        return why

    def _unfit_messages(self, request: ChatRequest) -> str | None:
        for i, m in enumerate(request.messages):
            if m.role == "tool" and not request.tools:
                return "Anthropic needs the tools defined when the history has tool results"
            for c in m.tool_calls:
                if not request.tools:
                    return "Anthropic needs the tools defined when the history has tool calls"
                if _arguments(c) is None:
                    return f"messages[{i}]: tool call {c.id!r} has arguments that are not an object"
            if not isinstance(m.content, str):
                for p in m.content:
                    if (
                        isinstance(p, Image)
                        and p.data is not None
                        and p.media_type not in IMAGE_TYPES
                    ):
                        return f"messages[{i}]: Anthropic takes no {p.media_type} images"
        return None

    def _unfit_thinking(self, request: ChatRequest) -> str | None:
        if _thinking_blocked(request, self.provider):
            return None  # sent without thinking; see _thinking_blocked
        t = request.temperature
        if t is not None and t != 1:
            return f"Anthropic thinking takes no temperature but 1, got {t:g}"
        if request.top_p is not None and request.top_p < 0.95:
            return f"Anthropic thinking takes top_p of 0.95 or more, got {request.top_p:g}"
        if request.tools and request.tool_choice not in ("auto", "none"):
            return "Anthropic thinking takes tool_choice 'auto' or 'none' only"
        budget = _thinking_budget(request)
        return budget if isinstance(budget, str) else None

    # -- encoding ------------------------------------------------------------------

    def encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""
        system, messages = self._messages(request.messages)
        # The hot path encodes every call: one constructor call with the common
        # fields, and the rest only for requests that use them.
        user = request.user
        wire: _BasicRequest = _BasicRequest(
            model=self.model,
            messages=messages,
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            system=system,
            temperature=request.temperature,
            top_p=request.top_p,
            stop_sequences=list(request.stop_sequences) if request.stop else None,
            metadata=None if user is None else {"user_id": user},
            stream=stream,
        )
        if request.tools or request.response_format is not None or request.reasoning is not None:
            wire = self._rich(request, wire)
        extra = self._extra_body
        if extra is None:
            return _encode(wire)
        body = msgspec.to_builtins(wire)
        body.update(extra)
        return _encode(body)

    def _rich(self, request: ChatRequest, basic: _BasicRequest) -> _WireRequest:
        wire = _WireRequest(**msgspec.structs.asdict(basic))
        if request.tools:
            _tools(request, wire)
        rf = request.response_format
        if isinstance(rf, JsonSchema):
            wire.output_config = {
                "format": {"type": "json_schema", "schema": closed_schema(rf.schema)}
            }
        if request.reasoning is not None and not _thinking_blocked(request, self.provider):
            budget = _thinking_budget(request)
            if isinstance(budget, str):
                raise ValueError(budget)
            wire.thinking = {"type": "enabled", "budget_tokens": budget[0]}
            wire.max_tokens = budget[1]
        return wire

    def _messages(self, messages: Sequence[Message]) -> tuple[str | None, list[_WireMessage]]:
        """The system text and the messages: tool results merged into one user turn each."""
        system: list[str] = []
        out: list[_WireMessage] = []
        results: list[Any] | None = None  # the tool-result turn being filled
        for i, m in enumerate(messages):
            role = m.role
            content = m.content
            if role == _USER and content.__class__ is str:
                results = None
                out.append(_WireMessage(role=_USER, content=content))
                continue
            if role == "tool":
                block = _ToolResultBlock(tool_use_id=_tool_id(m.tool_call_id or ""))
                text = m.text
                if text:
                    block.content = text
                if results is None:
                    results = []
                    out.append(_WireMessage(role="user", content=results))
                results.append(block)
                continue
            results = None
            if role == "system":
                system.append(m.text)
            elif role == _USER:
                out.append(_WireMessage(role=_USER, content=_content(content)))
            else:
                turn = self._assistant(i, m)
                if turn is not None:
                    out.append(turn)
        system_text = "\n\n".join(system) if system else None
        if not out:
            # A system-only request: the Messages API needs a user turn, so the
            # instructions become it.
            return None, [_WireMessage(role="user", content=system_text or "")]
        return system_text, out

    def _assistant(self, i: int, m: Message) -> _WireMessage | None:
        blocks = _replayed_blocks(m, self.provider)
        text = m.text
        if not blocks and not m.tool_calls:
            # An empty assistant turn says nothing and the API refuses empty content.
            return _WireMessage(role="assistant", content=text) if text else None
        if text:
            blocks.append(_TextBlock(text=text))
        for c in m.tool_calls:
            args = _arguments(c)
            if args is None:
                raise ValueError(
                    f"messages[{i}]: tool call {c.id!r} has arguments that are not a JSON object"
                )
            blocks.append(_ToolUseBlock(id=_tool_id(c.id), name=c.name, input=args))
        return _WireMessage(role="assistant", content=blocks)

    # -- decoding ------------------------------------------------------------------

    def decode(self, body: bytes, *, status: int) -> ChatResponse:
        """A whole answer; ``UpstreamError`` for an error object, msgspec errors otherwise."""
        try:
            r = _decode_response(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            payload = _error_payload(body)
            if payload is not None:
                raise UpstreamError(payload, status=status) from None
            raise
        text: list[str] = []
        thinking: list[str] = []
        replay: list[dict[str, Any]] = []
        calls: list[ToolCall] = []
        for b in r.content:
            kind = b.type
            if kind == "text":
                text.append(b.text)
            elif kind == "tool_use":
                args = _encode(b.input if b.input is not None else {}).decode()
                calls.append(ToolCall(id=b.id, name=b.name, arguments=args))
            elif kind == "thinking":
                thinking.append(b.thinking)
                replay.append(
                    {"type": "thinking", "thinking": b.thinking, "signature": b.signature}
                )
            elif kind == "redacted_thinking":
                replay.append({"type": "redacted_thinking", "data": b.data})
        u = r.usage
        return ChatResponse(
            text="".join(text),
            model=r.model or self.model,
            alias=self.alias,
            usage=_usage(u.input_tokens or 0, u) if u else None,
            finish_reason=_finish(r.stop_reason),
            tool_calls=tuple(calls),
            reasoning="".join(thinking) or None,
            provider_state=self._state(replay),
        )

    def _state(self, replay: list[dict[str, Any]]) -> ProviderState | None:
        if not replay:
            return None
        return ProviderState(protocol=PROTOCOL, provider=self.provider, data={"blocks": replay})

    def stream_decoder(self) -> AnthropicStreamDecoder:
        """A fresh decoder for one stream."""
        return AnthropicStreamDecoder(self)


def _tools(request: ChatRequest, wire: _WireRequest) -> None:
    tools = []
    for t in request.tools:
        tool = _ToolDef(
            name=t.name,
            input_schema=closed_schema(t.parameters) if t.strict else t.parameters,
        )
        if t.description:
            tool.description = t.description
        if t.strict is not None:
            tool.strict = t.strict
        tools.append(tool)
    wire.tools = tools
    choice = request.tool_choice
    spec: dict[str, Any]
    if choice == "auto":
        spec = {"type": "auto"}
    elif choice == "none":
        wire.tool_choice = {"type": "none"}
        return
    elif choice == "required":
        spec = {"type": "any"}
    else:
        spec = {"type": "tool", "name": choice}
    if request.parallel_tool_calls is False:
        spec["disable_parallel_tool_use"] = True
    elif choice == "auto":
        return  # the API's default
    wire.tool_choice = spec


def _thinking_blocked(request: ChatRequest, provider: str) -> bool:
    """The turn continues a tool-call loop whose last call came without this provider's thinking.

    With thinking on, the Messages API wants the last assistant turn of a
    tool-call loop to start with its signed thinking block; a turn written by
    another provider has none, so this one turn goes without thinking.
    """
    for m in reversed(request.messages):
        if m.role == "assistant":
            return bool(m.tool_calls) and not _replayed_blocks(m, provider)
    return False


def _thinking_budget(request: ChatRequest) -> tuple[int, int] | str:
    """(budget_tokens, max_tokens) for thinking, or why there is none that fits."""
    r = request.reasoning
    assert r is not None
    limit = request.max_tokens
    if r.budget_tokens is not None:
        budget = r.budget_tokens
        if budget < MIN_THINKING_BUDGET:
            return f"Anthropic thinking needs budget_tokens of at least {MIN_THINKING_BUDGET}"
    else:
        budget = THINKING_BUDGETS[r.effort]
        if limit is not None:
            budget = max(MIN_THINKING_BUDGET, min(budget, limit // 2))
    if limit is None:
        return budget, budget + DEFAULT_MAX_TOKENS
    if budget >= limit:
        return f"Anthropic thinking needs max_tokens above its budget ({budget}), got {limit}"
    return budget, limit


class _Assembling:
    """A content block being assembled from stream events."""

    __slots__ = ("call", "data", "kind", "parts", "signature")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.parts: list[str] = []
        self.signature = ""
        self.data = ""
        self.call: ToolCall | None = None


@final
class AnthropicStreamDecoder:
    """Reads one Messages stream; it is over only at ``message_stop``.

    Pings are keep-alives, not progress. Event types this decoder does not
    know are progress and carry nothing, as the streaming docs ask of clients.
    """

    __slots__ = (
        "_blocks",
        "_codec",
        "_input_tokens",
        "_parts",
        "_reasoning",
        "_reported_model",
        "_stop_reason",
        "_tool_index",
        "_usage",
        "done",
        "progressed",
    )

    terminal: Final = "message_stop"
    finishing: Final = False  # only message_stop ends a Messages stream

    def __init__(self, codec: AnthropicCodec) -> None:
        self._codec = codec
        self._parts: list[str] = []
        self._reasoning: list[str] = []
        self._blocks: dict[int, _Assembling] = {}
        self._tool_index: dict[int, int] = {}  # block index -> tool call index
        self._reported_model = ""
        self._input_tokens: int | None = None
        self._usage = _Usage()
        self._stop_reason: str | None = None
        self.progressed = False
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[Delta]:
        """The deltas this event carries; raises ``UpstreamError`` for an error event."""
        try:
            ev: _Event | None = _decode_event(event.data)
        except msgspec.ValidationError:
            ev = _unknown_event(event)
        self.progressed = True
        if ev.__class__ is _ContentBlockDelta:
            # The hot path: a piece of text.
            delta = ev.delta
            text = delta.text
            if delta.type == "text_delta":
                if not text:
                    return ()
                self._parts.append(text)
                return (TextDelta(text=text),)
            return self._delta(ev.index, delta)
        match ev:
            case _ContentBlockStart(content_block=block, index=index):
                return self._start(index, block)
            case _Ping():
                self.progressed = False
            case _MessageStart(message=msg):
                if msg.model:
                    self._reported_model = msg.model
                if msg.usage is not None:
                    self._merge_usage(msg.usage)
            case _MessageDelta(delta=stop, usage=usage):
                if stop is not None and stop.stop_reason:
                    self._stop_reason = stop.stop_reason
                if usage is not None:
                    self._merge_usage(usage)
            case _MessageStop():
                self.done = True
            case _Error(error=error):
                raise UpstreamError({"type": "error", "error": error})
        return ()

    def _merge_usage(self, u: _Usage) -> None:
        mine = self._usage
        if u.input_tokens is not None:
            self._input_tokens = u.input_tokens
        if u.output_tokens is not None:
            mine.output_tokens = u.output_tokens
        if u.cache_read_input_tokens is not None:
            mine.cache_read_input_tokens = u.cache_read_input_tokens
        if u.cache_creation_input_tokens is not None:
            mine.cache_creation_input_tokens = u.cache_creation_input_tokens

    def _start(self, index: int, block: _Block) -> Sequence[Delta]:
        state = self._blocks[index] = _Assembling(block.type)
        if block.type == "tool_use":
            n = self._tool_index[index] = len(self._tool_index)
            state.call = ToolCall(id=block.id, name=block.name)
            return (ToolCallDelta(index=n, id=block.id, name=block.name),)
        if block.type == "redacted_thinking":
            state.data = block.data
        elif block.type == "text" and block.text:
            self._parts.append(block.text)
            return (TextDelta(text=block.text),)
        elif block.type == "thinking" and block.thinking:
            state.parts.append(block.thinking)
            self._reasoning.append(block.thinking)
            return (ReasoningDelta(text=block.thinking),)
        return ()

    def _delta(self, index: int, delta: _BlockDelta) -> Sequence[Delta]:
        kind = delta.type
        if kind == "input_json_delta":
            state = self._blocks.get(index)
            if delta.partial_json and state is not None and index in self._tool_index:
                state.parts.append(delta.partial_json)
                return (ToolCallDelta(index=self._tool_index[index], arguments=delta.partial_json),)
        elif kind == "thinking_delta":
            if delta.thinking:
                state = self._blocks.get(index) or self._blocks.setdefault(
                    index, _Assembling("thinking")
                )
                state.parts.append(delta.thinking)
                self._reasoning.append(delta.thinking)
                return (ReasoningDelta(text=delta.thinking),)
        elif kind == "signature_delta":
            state = self._blocks.get(index) or self._blocks.setdefault(
                index, _Assembling("thinking")
            )
            state.signature += delta.signature
        return ()

    def result(self) -> ChatResponse | None:
        """The assembled answer once ``message_stop`` came, else None."""
        if not self.done:
            return None
        codec = self._codec
        calls: list[ToolCall] = []
        replay: list[dict[str, Any]] = []
        for _, b in sorted(self._blocks.items()):
            if b.call is not None:
                calls.append(
                    ToolCall(id=b.call.id, name=b.call.name, arguments="".join(b.parts) or "{}")
                )
            elif b.kind == "thinking":
                replay.append(
                    {"type": "thinking", "thinking": "".join(b.parts), "signature": b.signature}
                )
            elif b.kind == "redacted_thinking":
                replay.append({"type": "redacted_thinking", "data": b.data})
        usage = None
        u = self._usage
        if self._input_tokens is not None or u.output_tokens is not None:
            usage = _usage(self._input_tokens or 0, u)
        return ChatResponse(
            text="".join(self._parts),
            model=self._reported_model or codec.model,
            alias=codec.alias,
            usage=usage,
            finish_reason=_finish(self._stop_reason),
            tool_calls=tuple(calls),
            reasoning="".join(self._reasoning) or None,
            provider_state=codec._state(replay),
        )


def _unknown_event(event: SSEEvent) -> _Event | None:
    """An event the tagged union refused: None for a type added after this decoder.

    Data without its "type" is read by its SSE event name; a known event of
    the wrong shape raises the validation error again.
    """
    raw = _decode_any(event.data)
    kind = raw.get("type") or event.event if isinstance(raw, dict) else None
    if kind is None:
        return _decode_event(event.data)  # raises the original error
    if kind not in _EVENT_TYPES:
        return None
    if "type" in raw:
        return _decode_event(event.data)
    return cast(_Event, msgspec.convert({**raw, "type": kind}, _Event))
