"""Anthropic messages API.

Reference: https://docs.anthropic.com/en/api/messages and
https://docs.anthropic.com/en/docs/build-with-claude/streaming
"""

from __future__ import annotations

from typing import Any, final

import msgspec

from .._types import ChatRequest, ChatResponse, Usage
from ._base import BaseClient, StreamEnd, StreamParser
from ._sse import SSEEvent

__all__ = ["AnthropicClient"]

ANTHROPIC_VERSION = "2023-06-01"
# The messages API requires max_tokens; this is what we send when the caller gave none.
DEFAULT_MAX_TOKENS = 4096


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0


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


class _Event(msgspec.Struct):
    """Every streaming event, loosely: only the fields we read."""

    type: str = ""
    message: Any = None
    delta: Any = None
    usage: Any = None
    error: Any = None


_encode = msgspec.json.Encoder().encode
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_event = msgspec.json.Decoder(_Event).decode


@final
class AnthropicClient(BaseClient):
    """A client for the Anthropic messages API (``x-api-key``, ``anthropic-version``)."""

    provider = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def _headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if self._api_key:
            headers["x-api-key"] = self._api_key
        headers.update(self._extra_headers)
        return headers

    def _url(self) -> str:
        # Like the Anthropic SDK (and ANTHROPIC_BASE_URL), the base URL excludes /v1.
        base = self.base_url
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def _encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        system = [m.text for m in request.messages if m.role == "system"]
        return _encode(
            _WireRequest(
                model=self.model,
                messages=[
                    _WireMessage(role=m.role, content=m.text)
                    for m in request.messages
                    if m.role != "system"
                ],
                max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
                system="\n\n".join(system) if system else None,
                temperature=request.temperature,
                stop_sequences=list(request.stop) if request.stop else None,
                stream=stream,
            )
        )

    def _parse(self, body: bytes) -> ChatResponse:
        r = _decode_response(body)
        usage = r.usage
        return ChatResponse(
            text="".join(b.text for b in r.content if b.type == "text"),
            model=r.model or self.model,
            alias=self.alias,
            usage=Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
            if usage
            else None,
            finish_reason=r.stop_reason,  # type: ignore[arg-type]
        )

    def _stream_parser(self) -> StreamParser:
        return _AnthropicStream(alias=self.alias, model=self.model, secret=self._api_key)


def _int(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) else None


class _AnthropicStream(StreamParser):
    terminal = "message_stop"

    def __init__(self, *, alias: str, model: str, secret: str | None) -> None:
        super().__init__(alias=alias, model=model, secret=secret)
        self.reported_model = ""
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.stop_reason: str | None = None

    def feed(self, event: SSEEvent) -> list[str | StreamEnd]:
        ev = _decode_event(event.data)
        kind = ev.type or event.event
        if kind == "content_block_delta":
            self.progressed = True
            delta = ev.delta
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                if isinstance(text, str):
                    return [text]
            return []
        if kind == "ping":
            return []  # keep-alive: not progress
        if kind == "error":
            raise self.error({"type": "error", "error": ev.error})
        self.progressed = True
        if kind == "message_start":
            msg = ev.message if isinstance(ev.message, dict) else {}
            model = msg.get("model")
            if isinstance(model, str):
                self.reported_model = model
            usage = msg.get("usage")
            self.input_tokens = _int(usage, "input_tokens")
            self.output_tokens = _int(usage, "output_tokens")
        elif kind == "message_delta":
            if isinstance(ev.delta, dict) and isinstance(ev.delta.get("stop_reason"), str):
                self.stop_reason = ev.delta["stop_reason"]
            out_tokens = _int(ev.usage, "output_tokens")
            if out_tokens is not None:
                self.output_tokens = out_tokens
        elif kind == "message_stop":
            usage = None
            if self.input_tokens is not None or self.output_tokens is not None:
                usage = Usage(
                    input_tokens=self.input_tokens or 0, output_tokens=self.output_tokens or 0
                )
            return [
                StreamEnd(
                    model=self.reported_model or self.model,
                    usage=usage,
                    finish_reason=self.stop_reason,
                )
            ]
        return []
