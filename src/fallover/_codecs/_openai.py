"""OpenAI chat completions, and every OpenAI-compatible server, as a pure codec.

Reference: https://platform.openai.com/docs/api-reference/chat
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, final

import msgspec

from .._types import ChatRequest, ChatResponse, FinishReason, Image, TextDelta, Usage
from ._base import Delta, SSEEvent, UpstreamError

__all__ = ["OpenAICodec"]

# Finish reasons as OpenAI-compatible servers spell them; anything else is None.
_FINISH: Final[Mapping[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Response(msgspec.Struct):
    choices: Annotated[list[_Choice], msgspec.Meta(min_length=1)]
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
_decode_any = msgspec.json.decode
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_STREAM_OPTIONS = _StreamOptions()


def _usage(u: _Usage | None) -> Usage | None:
    return Usage(input_tokens=u.prompt_tokens, output_tokens=u.completion_tokens) if u else None


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
class OpenAICodec:
    """The chat completions protocol for one member."""

    __slots__ = ("_extra_body", "alias", "model", "provider")

    def __init__(
        self,
        *,
        model: str,
        alias: str,
        provider: str = "openai",
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.alias = alias
        self.provider = provider
        self._extra_body = dict(extra_body) if extra_body else None

    def __repr__(self) -> str:
        return f"OpenAICodec(model={self.model!r}, provider={self.provider!r})"

    @property
    def protocol(self) -> str:
        """``openai``."""
        return "openai"

    def path(self) -> str:
        """``/chat/completions``, under a base URL that ends in ``/v1`` or its equivalent."""
        return "/chat/completions"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """``Authorization: Bearer``, when there is a key."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this codec cannot send ``request`` faithfully, or None."""
        return _unencodable(request)

    def encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""
        wire = _WireRequest(
            model=self.model,
            messages=[_WireMessage(role=m.role, content=m.text) for m in request.messages],
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            stop=list(request.stop_sequences) or None,
            stream=stream,
            stream_options=_STREAM_OPTIONS if stream else None,
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
        choice = r.choices[0]
        return ChatResponse(
            text=choice.message.content or "",
            model=r.model or self.model,
            alias=self.alias,
            usage=_usage(r.usage),
            finish_reason=_finish(choice.finish_reason),
        )

    def stream_decoder(self) -> OpenAIStreamDecoder:
        """A fresh decoder for one stream."""
        return OpenAIStreamDecoder(model=self.model, alias=self.alias)


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
class OpenAIStreamDecoder:
    """Reads one chat completions stream.

    The answer is whole once a non-empty ``finish_reason`` came (``finishing``);
    the stream is over at ``[DONE]``, or at the usage chunk that follows the
    finish (OpenAI sends nothing else before ``[DONE]``). ``[DONE]`` before any
    finish leaves ``done`` set and ``result()`` None: the stream is incomplete.
    An empty ``finish_reason`` (Ollama, SGLang, LocalAI send ``""`` on every
    chunk) is not a finish.
    """

    __slots__ = (
        "_alias",
        "_finish",
        "_model",
        "_parts",
        "_reported_model",
        "_usage",
        "done",
        "finishing",
        "progressed",
    )

    terminal: Final = "[DONE] or a finish_reason"

    def __init__(self, *, model: str, alias: str) -> None:
        self._model = model
        self._alias = alias
        self._parts: list[str] = []
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._reported_model = ""
        self.progressed = False
        self.finishing = False
        self.done = False

    def feed(self, event: SSEEvent) -> Sequence[Delta]:
        """The deltas this event carries; raises ``UpstreamError`` for an error object."""
        data = event.data
        if data == "[DONE]":
            self.done = True
            self.progressed = True
            return ()
        if event.event == "error":
            raise UpstreamError(_decode_any(data))
        chunk = _decode_chunk(data)
        if chunk.error is not None:
            raise UpstreamError({"error": chunk.error})
        self.progressed = True
        if chunk.model:
            self._reported_model = chunk.model
        out: list[Delta] = []
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta is not None and delta.content:
                self._parts.append(delta.content)
                out.append(TextDelta(text=delta.content))
            if choice.finish_reason:
                self._finish = choice.finish_reason
                self.finishing = True
        if chunk.usage is not None:
            self._usage = _usage(chunk.usage)
            if self.finishing:
                self.done = True
        return out

    def result(self) -> ChatResponse | None:
        """The assembled answer once the finish came, else None."""
        if not self.finishing:
            return None
        return ChatResponse(
            text="".join(self._parts),
            model=self._reported_model or self._model,
            alias=self._alias,
            usage=self._usage,
            finish_reason=_finish(self._finish),
        )
