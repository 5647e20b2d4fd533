"""The Anthropic Messages API as a pure codec.

Reference: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias, cast, final

import msgspec

from .._types import ChatRequest, ChatResponse, FinishReason, Image, TextDelta, Usage
from ._base import Delta, SSEEvent, UpstreamError

__all__ = ["ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS", "AnthropicCodec"]

ANTHROPIC_VERSION: Final = "2023-06-01"
# The Messages API requires max_tokens; this is what we send when the caller gave none.
DEFAULT_MAX_TOKENS: Final = 4096

_FINISH: Final[Mapping[str, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Block(msgspec.Struct):
    type: str
    text: str = ""


class _Response(msgspec.Struct):
    content: list[_Block]
    model: str = ""
    stop_reason: str | None = None
    usage: _Usage | None = None


class _WireMessage(msgspec.Struct):
    role: str
    content: str


class _WireRequest(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[_WireMessage]
    max_tokens: int
    system: str | None = None
    temperature: float | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False


# Stream events: one Struct per event type, told apart by their "type" field.


class _StartMessage(msgspec.Struct):
    model: str = ""
    usage: _Usage | None = None


class _MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: _StartMessage


class _ContentBlockStart(msgspec.Struct, tag_field="type", tag="content_block_start"):
    index: int = 0
    content_block: Any = None


class _BlockDelta(msgspec.Struct):
    """Every delta type's fields; ``type`` says which one it is."""

    type: str = ""
    text: str = ""


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
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_event: Callable[[str], _Event] = msgspec.json.Decoder(_Event).decode


def _finish(raw: str | None) -> FinishReason | None:
    return _FINISH.get(raw) if raw else None


def _error_payload(body: bytes) -> Any:
    """The error object in ``body``, or None when it holds none."""
    try:
        payload = _decode_any(body)
    except msgspec.DecodeError:
        return None
    return payload if isinstance(payload, dict) and "error" in payload else None


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
        return "anthropic"

    def path(self) -> str:
        """``/v1/messages``: like the SDK's ``ANTHROPIC_BASE_URL``, the base URL has no ``/v1``."""
        return "/v1/messages"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """``x-api-key`` (when there is a key) and ``anthropic-version``."""
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this codec cannot send ``request`` faithfully, or None."""
        return _unencodable(request)

    def encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""
        system = [m.text for m in request.messages if m.role == "system"]
        wire = _WireRequest(
            model=self.model,
            messages=[
                _WireMessage(role=m.role, content=m.text)
                for m in request.messages
                if m.role != "system"
            ],
            max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
            system="\n\n".join(system) if system else None,
            temperature=request.temperature,
            stop_sequences=list(request.stop_sequences) or None,
            stream=stream,
        )
        if self._extra_body is None:
            return _encode(wire)
        body = msgspec.to_builtins(wire)
        body.update(self._extra_body)
        return _encode(body)

    def decode(self, body: bytes, *, status: int) -> ChatResponse:
        """A whole answer; ``UpstreamError`` for an error object, msgspec errors otherwise."""
        try:
            r = _decode_response(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            payload = _error_payload(body)
            if payload is not None:
                raise UpstreamError(payload, status=status) from None
            raise
        u = r.usage
        return ChatResponse(
            text="".join(b.text for b in r.content if b.type == "text"),
            model=r.model or self.model,
            alias=self.alias,
            usage=Usage(input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0)
            if u
            else None,
            finish_reason=_finish(r.stop_reason),
        )

    def stream_decoder(self) -> AnthropicStreamDecoder:
        """A fresh decoder for one stream."""
        return AnthropicStreamDecoder(model=self.model, alias=self.alias)


def _unencodable(request: ChatRequest) -> str | None:
    """What this codec does not encode yet; sending it would silently change the request."""
    if request.tools or request.tool_choice != "auto" or request.parallel_tool_calls is not None:
        return "tools are not encoded by this codec"
    if request.response_format is not None:
        return "response_format is not encoded by this codec"
    if request.reasoning is not None:
        return "reasoning is not encoded by this codec"
    if request.top_p is not None or request.seed is not None or request.user is not None:
        return "top_p, seed and user are not encoded by this codec"
    for m in request.messages:
        if m.tool_calls or m.role == "tool":
            return "tool turns are not encoded by this codec"
        if not isinstance(m.content, str) and any(isinstance(p, Image) for p in m.content):
            return "images are not encoded by this codec"
    return None


@final
class AnthropicStreamDecoder:
    """Reads one Messages stream; it is over only at ``message_stop``.

    Pings are keep-alives, not progress. Event types this decoder does not
    know are progress and carry nothing, as the streaming docs ask of clients.
    """

    __slots__ = (
        "_alias",
        "_input_tokens",
        "_model",
        "_output_tokens",
        "_parts",
        "_reported_model",
        "_stop_reason",
        "done",
        "progressed",
    )

    terminal: Final = "message_stop"
    finishing: Final = False  # only message_stop ends a Messages stream

    def __init__(self, *, model: str, alias: str) -> None:
        self._model = model
        self._alias = alias
        self._parts: list[str] = []
        self._reported_model = ""
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None
        self._stop_reason: str | None = None
        self.progressed = False
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[Delta]:
        """The deltas this event carries; raises ``UpstreamError`` for an error event."""
        ev = _event(event)
        self.progressed = True
        match ev:
            case _ContentBlockDelta(delta=delta):
                if delta.type == "text_delta" and delta.text:
                    self._parts.append(delta.text)
                    return (TextDelta(text=delta.text),)
            case _Ping():
                self.progressed = False
            case _MessageStart(message=msg):
                if msg.model:
                    self._reported_model = msg.model
                if msg.usage is not None:
                    self._input_tokens = msg.usage.input_tokens
                    self._output_tokens = msg.usage.output_tokens
            case _MessageDelta(delta=delta, usage=usage):
                if delta is not None and delta.stop_reason:
                    self._stop_reason = delta.stop_reason
                if usage is not None and usage.output_tokens is not None:
                    self._output_tokens = usage.output_tokens
            case _MessageStop():
                self.done = True
            case _Error(error=error):
                raise UpstreamError({"type": "error", "error": error})
        return ()

    def result(self) -> ChatResponse | None:
        """The assembled answer once ``message_stop`` came, else None."""
        if not self.done:
            return None
        usage = None
        if self._input_tokens is not None or self._output_tokens is not None:
            usage = Usage(
                input_tokens=self._input_tokens or 0, output_tokens=self._output_tokens or 0
            )
        return ChatResponse(
            text="".join(self._parts),
            model=self._reported_model or self._model,
            alias=self._alias,
            usage=usage,
            finish_reason=_finish(self._stop_reason),
        )


def _event(event: SSEEvent) -> _Event | None:
    """The event, or None for a type this decoder does not know."""
    try:
        return _decode_event(event.data)
    except msgspec.ValidationError:
        # The slow path: an event type added after this decoder, or data without
        # its "type" (then the SSE event name says it).
        raw = _decode_any(event.data)
        if not isinstance(raw, dict):
            raise
        kind = raw.get("type") or event.event
        if kind not in _EVENT_TYPES:
            return None
        if "type" in raw:
            raise
        return cast(_Event, msgspec.convert({**raw, "type": kind}, _Event))
