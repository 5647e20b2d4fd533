"""The server side of the Anthropic Messages protocol, for the gateway.

Pure and synchronous: ``decode_request`` turns a ``/v1/messages`` body into
the neutral ``ChatRequest`` (``ValueError`` naming the field), a user turn's
``tool_result`` blocks becoming tool messages ahead of its other content;
``encode_response`` writes a neutral answer as a ``message``;
``StreamEncoder`` writes neutral stream events as the protocol's event
sequence (``message_start``, one block at a time, ``message_delta``,
``message_stop``); ``encode_error`` writes the protocol's error object.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .._types import (
    ChatRequest,
    ChatResponse,
    Completed,
    Effort,
    Image,
    JsonSchema,
    Message,
    Part,
    ProviderState,
    Reasoning,
    ReasoningDelta,
    Restarted,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from ._openai_server import field_error

__all__ = [
    "Incoming",
    "StreamEncoder",
    "decode_request",
    "encode_error",
    "encode_response",
    "error_type",
]


# -- the request, as a client sends it ---------------------------------------------------


class _Base64(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class _URL(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class _TextBlock(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class _ImageBlock(msgspec.Struct, tag="image", tag_field="type"):
    source: _Base64 | _URL


class _ToolUse(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class _ToolResult(msgspec.Struct, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[_TextBlock | _ImageBlock] | None = None
    is_error: bool = False


class _Thinking(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str | None = None


class _RedactedThinking(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


_Block = _TextBlock | _ImageBlock | _ToolUse | _ToolResult | _Thinking | _RedactedThinking
_KINDS: dict[type, str] = {
    _ToolUse: "tool_use",
    _Thinking: "thinking",
    _RedactedThinking: "redacted_thinking",
}


class _Message(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _ToolDef(msgspec.Struct):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None
    strict: bool | None = None


class _ToolChoice(msgspec.Struct):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class _ThinkingConfig(msgspec.Struct):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = None


class _OutputFormat(msgspec.Struct):
    type: Literal["json_schema"]
    schema: dict[str, Any]


class _Metadata(msgspec.Struct):
    user_id: str | None = None


class _Request(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[_Message]
    system: str | list[_TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    tools: list[_ToolDef] | None = None
    tool_choice: _ToolChoice | None = None
    thinking: _ThinkingConfig | None = None
    output_format: _OutputFormat | None = None
    metadata: _Metadata | None = None


_decoder = msgspec.json.Decoder(_Request)
_encoder = msgspec.json.Encoder()

STATE_PREFIX = "fallover-state:"
"""Marks a redacted_thinking block that carries a member's provider state through a client.

A member's opaque state (Anthropic thinking signatures, a Gemini thought
signature) must reach that member again on the next turn. The gateway hands it
to the client as the last block of the answer, a block clients keep and send
back unread, and restores it from there; the codecs then replay it only to the
member's own protocol and provider.
"""

# Anthropic asks for a token budget; the neutral model also wants an effort, read off it.
_LOW_BUDGET = 4096
_HIGH_BUDGET = 16384


class Incoming(msgspec.Struct, kw_only=True, frozen=True):
    """A decoded request: the neutral request and whether to stream."""

    request: ChatRequest
    stream: bool = False


def _image(source: _Base64 | _URL, where: str) -> Image:
    if isinstance(source, _URL):
        return Image(url=source.url)
    try:
        raw = base64.b64decode(source.data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}.source.data: not valid base64") from None
    return Image(data=raw, media_type=source.media_type)


def _tool_text(block: _ToolResult, where: str) -> str:
    content = block.content
    if content is None or isinstance(content, str):
        text = content or ""
    else:
        texts = []
        for i, part in enumerate(content):
            if isinstance(part, _ImageBlock):
                raise ValueError(f"{where}.content[{i}]: images in tool results are not supported")
            texts.append(part.text)
        text = "".join(texts)
    # The neutral tool turn has no error flag: the text carries it to any protocol.
    return f"[tool error] {text}" if block.is_error else text


def _user(m: _Message, where: str) -> list[Message]:
    if isinstance(m.content, str):
        return [Message(role="user", content=m.content)]
    out: list[Message] = []
    parts: list[Part] = []
    for i, b in enumerate(m.content):
        at = f"{where}.content[{i}]"
        if isinstance(b, _ToolResult):
            out.append(Message(role="tool", content=_tool_text(b, at), tool_call_id=b.tool_use_id))
        elif isinstance(b, _TextBlock):
            parts.append(Text(text=b.text))
        elif isinstance(b, _ImageBlock):
            parts.append(_image(b.source, at))
        else:
            kind = _KINDS[type(b)]
            raise ValueError(f"{at}: a {kind} block belongs in assistant turns")
    if parts:
        out.append(Message(role="user", content=parts))
    return out


def _state_block(state: ProviderState) -> dict[str, Any]:
    """A member's provider state as an opaque block the client hands back on its next turn."""
    payload = _encoder.encode(
        {"protocol": state.protocol, "provider": state.provider, "data": state.data}
    )
    return {"type": "redacted_thinking", "data": STATE_PREFIX + base64.b64encode(payload).decode()}


def _state_of(data: str, where: str) -> ProviderState:
    try:
        raw = msgspec.json.decode(base64.b64decode(data[len(STATE_PREFIX) :], validate=True))
        return ProviderState(protocol=raw["protocol"], provider=raw["provider"], data=raw["data"])
    except (binascii.Error, ValueError, msgspec.DecodeError, KeyError, TypeError):
        raise ValueError(f"{where}.data: not a provider state this gateway wrote") from None


def _assistant(m: _Message, where: str) -> Message:
    if isinstance(m.content, str):
        return Message(role="assistant", content=m.content)
    texts: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[str] = []
    state: ProviderState | None = None
    for i, b in enumerate(m.content):
        if isinstance(b, _TextBlock):
            texts.append(b.text)
        elif isinstance(b, _ToolUse):
            calls.append(ToolCall(id=b.id, name=b.name, arguments=json.dumps(b.input)))
        elif isinstance(b, _Thinking):
            thoughts.append(b.thinking)
        elif isinstance(b, _RedactedThinking):
            if b.data.startswith(STATE_PREFIX):
                state = _state_of(b.data, f"{where}.content[{i}]")
            # Other redacted thinking was written for a provider the gateway cannot name.
        else:
            name = "tool_result" if isinstance(b, _ToolResult) else "image"
            raise ValueError(f"{where}.content[{i}]: a {name} block belongs in user turns")
    return Message(
        role="assistant",
        content="".join(texts),
        tool_calls=tuple(calls),
        reasoning="".join(thoughts) or None,
        provider_state=state,
    )


def decode_request(body: bytes) -> Incoming:
    """The neutral request in ``body``; ``ValueError`` naming the field when it is not valid."""
    try:
        r = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise field_error(exc) from None
    if not r.model:
        raise ValueError("model: must name a pool or a provider/model")
    if r.max_tokens <= 0:
        raise ValueError(f"max_tokens: must be positive, got {r.max_tokens}")
    if not r.messages:
        raise ValueError("messages: must hold at least one message")
    messages: list[Message] = []
    if r.system:
        system = r.system if isinstance(r.system, str) else "".join(b.text for b in r.system)
        messages.append(Message(role="system", content=system))
    for i, m in enumerate(r.messages):
        where = f"messages[{i}]"
        try:
            if m.role == "user":
                messages.extend(_user(m, where))
            else:
                messages.append(_assistant(m, where))
        except ValueError as exc:
            text = str(exc)
            raise ValueError(text if text.startswith(where) else f"{where}: {text}") from None
    tools = []
    for i, t in enumerate(r.tools or ()):
        try:
            tools.append(
                Tool(
                    name=t.name,
                    description=t.description or "",
                    parameters=t.input_schema,
                    strict=t.strict,
                )
            )
        except ValueError as exc:
            raise ValueError(f"tools[{i}]: {exc}") from None
    choice = "auto"
    parallel = None
    if r.tool_choice is not None:
        tc = r.tool_choice
        if tc.type == "tool":
            if not tc.name:
                raise ValueError('tool_choice.name: required when type is "tool"')
            choice = tc.name
        else:
            choice = {"auto": "auto", "any": "required", "none": "none"}[tc.type]
        if tc.disable_parallel_tool_use:
            parallel = False
    reasoning = None
    if r.thinking is not None and r.thinking.type == "enabled":
        budget = r.thinking.budget_tokens
        if budget is None:
            raise ValueError('thinking.budget_tokens: required when type is "enabled"')
        if budget <= 0:
            raise ValueError(f"thinking.budget_tokens: must be positive, got {budget}")
        effort: Effort = (
            "low" if budget <= _LOW_BUDGET else "medium" if budget < _HIGH_BUDGET else "high"
        )
        reasoning = Reasoning(effort=effort, budget_tokens=budget)
    response_format = None
    if r.output_format is not None:
        response_format = JsonSchema(name="output", schema=r.output_format.schema)
    try:
        request = ChatRequest(
            messages=messages,
            model=r.model,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=parallel,
            response_format=response_format,
            reasoning=reasoning,
            max_tokens=r.max_tokens,
            temperature=r.temperature,
            top_p=r.top_p,
            stop=r.stop_sequences or None,
            user=r.metadata.user_id if r.metadata is not None else None,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc).removeprefix("ChatRequest.")) from None
    return Incoming(request=request, stream=bool(r.stream))


# -- answers ------------------------------------------------------------------------------

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _stop_reason(resp: ChatResponse) -> str:
    if resp.finish_reason == "content_filter":
        return "refusal"
    if resp.tool_calls and resp.finish_reason in (None, "stop"):
        return "tool_use"
    return _STOP.get(resp.finish_reason or "stop", "end_turn")


def _input(arguments: str) -> Any:
    """Tool-call arguments as an object (an empty one when the model wrote broken JSON)."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(resp: ChatResponse) -> dict[str, int]:
    u = resp.usage
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }


def encode_response(resp: ChatResponse, *, id: str) -> bytes:
    """``resp`` as a Messages API ``message`` object."""
    content: list[dict[str, Any]] = []
    if resp.reasoning:
        content.append({"type": "thinking", "thinking": resp.reasoning, "signature": ""})
    if resp.text or not resp.tool_calls:
        content.append({"type": "text", "text": resp.text})
    for c in resp.tool_calls:
        content.append(
            {"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
        )
    if resp.provider_state is not None:
        content.append(_state_block(resp.provider_state))
    return _encoder.encode(
        {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": resp.model,
            "content": content,
            "stop_reason": _stop_reason(resp),
            "stop_sequence": None,
            "usage": _usage(resp),
        }
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _encoder.encode(data) + b"\n\n"


class StreamEncoder:
    """Writes one stream's neutral events as the Messages API's event sequence.

    Blocks are sent one at a time, as the protocol requires: a new kind of
    delta (or another tool call) closes the open block and starts the next.
    """

    def __init__(self, *, id: str, model: str) -> None:
        self._id = id
        self._model = model
        self._started = False
        self._index = -1
        self._open: tuple[str, int] | None = None  # ("text" | "thinking" | "tool", tool index)
        self._closed_tools: set[int] = set()
        self._text = False

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def _close(self) -> bytes:
        if self._open is None:
            return b""
        kind, tool = self._open
        self._open = None
        if kind == "tool":
            self._closed_tools.add(tool)
        return _sse("content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _block(self, key: tuple[str, int], block: dict[str, Any]) -> bytes:
        if self._open == key:
            return b""
        out = self._close()
        self._index += 1
        self._open = key
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + _sse("content_block_start", start)

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return _sse(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def event(self, event: StreamEvent, *, debug: Mapping[str, Any] | None = None) -> bytes:
        """The SSE bytes for ``event`` (``message_start`` comes first, with the first event).

        ``debug`` rides on ``message_delta`` as a ``fallover`` field (SDKs ignore it).
        """
        out = self._start()
        if isinstance(event, TextDelta):
            self._text = True
            out += self._block(("text", 0), {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ReasoningDelta):
            out += self._block(
                ("thinking", 0), {"type": "thinking", "thinking": "", "signature": ""}
            )
            return out + self._delta({"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, ToolCallDelta):
            if event.index in self._closed_tools:
                raise ValueError(
                    f"tool call {event.index} continued after another block began; "
                    "the Messages protocol sends blocks one at a time"
                )
            key = ("tool", event.index)
            if self._open != key:
                block = {
                    "type": "tool_use",
                    "id": event.id or "",
                    "name": event.name or "",
                    "input": {},
                }
                out += self._block(key, block)
            if event.arguments:
                out += self._delta({"type": "input_json_delta", "partial_json": event.arguments})
            return out
        if isinstance(event, Completed):
            return out + self._end(event.response, debug)
        if isinstance(event, Restarted):
            raise ValueError("a restarted stream cannot be relayed to a client that saw text")
        raise TypeError(f"not a stream event: {type(event).__name__}")

    def _end(self, resp: ChatResponse, debug: Mapping[str, Any] | None) -> bytes:
        out = b""
        # A member that answered without deltas still has its whole answer in Completed.
        if not self._text and resp.text:
            out += self._block(("text", 0), {"type": "text", "text": ""})
            out += self._delta({"type": "text_delta", "text": resp.text})
        if resp.tool_calls and not self._closed_tools and (self._open or ("", 0))[0] != "tool":
            for i, c in enumerate(resp.tool_calls):
                block = {"type": "tool_use", "id": c.id, "name": c.name, "input": {}}
                out += self._block(("tool", i), block)
                out += self._delta({"type": "input_json_delta", "partial_json": c.arguments})
        if resp.provider_state is not None:
            block = _state_block(resp.provider_state)
            out += self._block(("state", 0), block)
        out += self._close()
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(resp), "stop_sequence": None},
            "usage": _usage(resp),
        }
        if debug is not None:
            delta["fallover"] = debug
        return out + _sse("message_delta", delta) + _sse("message_stop", {"type": "message_stop"})

    def error(self, status: int, message: str) -> bytes:
        """An ``error`` event: the stream ends with it, without ``message_stop``."""
        return b"event: error\ndata: " + encode_error(status, message) + b"\n\n"


# -- errors -------------------------------------------------------------------------------

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def error_type(status: int) -> str:
    """The ``error.type`` Anthropic gives a status."""
    return _TYPES.get(status, "api_error")


def encode_error(status: int, message: str) -> bytes:
    """The Anthropic error object for ``status``."""
    return _encoder.encode(
        {"type": "error", "error": {"type": error_type(status), "message": message}}
    )
