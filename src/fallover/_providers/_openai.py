"""OpenAI chat completions, and every OpenAI-compatible server.

Reference: https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

from typing import Any, final

import msgspec

from .. import _errors as e
from .._types import ChatRequest, ChatResponse, Usage
from ._base import BaseClient, StreamEnd, StreamParser
from ._sse import SSEEvent

__all__ = ["OpenAIClient"]


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Response(msgspec.Struct):
    choices: list[_Choice]
    model: str = ""
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    content: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    model: str = ""
    usage: _Usage | None = None
    error: Any = None


class _WireMessage(msgspec.Struct, omit_defaults=True):
    role: str
    content: str


class _StreamOptions(msgspec.Struct):
    include_usage: bool = True


class _WireRequest(msgspec.Struct, omit_defaults=True):
    model: str
    messages: list[_WireMessage]
    max_tokens: int | None = None
    temperature: float | None = None
    stop: list[str] | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None


_encode = msgspec.json.Encoder().encode
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_chunk = msgspec.json.Decoder(_Chunk).decode


def _usage(u: _Usage | None) -> Usage | None:
    return Usage(input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens) if u else None


@final
class OpenAIClient(BaseClient):
    """A client for the OpenAI chat completions API at any compatible base URL."""

    provider = "openai"
    default_base_url = "https://api.openai.com/v1"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(self._extra_headers)
        return headers

    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        return _encode(
            _WireRequest(
                model=self.model,
                messages=[_WireMessage(role=m.role, content=m.text) for m in request.messages],
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                stop=list(request.stop) if request.stop else None,
                stream=stream,
                stream_options=_StreamOptions() if stream else None,
            )
        )

    def _parse(self, body: bytes) -> ChatResponse:
        r = _decode_response(body)
        if not r.choices:
            raise e.MalformedResponse("answer has no choices", alias=self.alias, status=200)
        choice = r.choices[0]
        return ChatResponse(
            text=choice.message.content or "",
            model=r.model or self.model,
            alias=self.alias,
            usage=_usage(r.usage),
            finish_reason=choice.finish_reason,  # type: ignore[arg-type]
        )

    def _stream_parser(self) -> StreamParser:
        return _OpenAIStream(alias=self.alias, model=self.model, secret=self._api_key)


class _OpenAIStream(StreamParser):
    terminal = "[DONE] or a finish_reason"

    def __init__(self, *, alias: str, model: str, secret: str | None) -> None:
        super().__init__(alias=alias, model=model, secret=secret)
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.reported_model = ""

    def _end(self) -> StreamEnd:
        return StreamEnd(
            model=self.reported_model or self.model,
            usage=self.usage,
            finish_reason=self.finish_reason,
        )

    def feed(self, event: SSEEvent) -> list[str | StreamEnd]:
        data = event.data
        if data == "[DONE]":
            if self.finish_reason is None:
                raise e.ConnectionFailed(
                    "stream sent [DONE] before any finish_reason", alias=self.alias
                )
            return [self._end()]
        if event.event == "error":
            raise self.error(msgspec.json.decode(data))
        chunk = _decode_chunk(data)
        if chunk.error is not None:
            raise self.error({"error": chunk.error})
        if chunk.model:
            self.reported_model = chunk.model
        out: list[str | StreamEnd] = []
        for choice in chunk.choices[:1]:
            if choice.delta is not None and choice.delta.content:
                out.append(choice.delta.content)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
                self.finishing = True
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
            if self.finish_reason is not None:
                # The usage chunk is the last one OpenAI sends before [DONE]; don't wait for it.
                out.append(self._end())
        self.progressed = True
        return out

    def at_eof(self) -> StreamEnd | None:
        return self._end() if self.finish_reason is not None else None
