"""OpenAI chat completions, and every OpenAI-compatible server, as a pure codec.

Reference: https://platform.openai.com/docs/api-reference/chat ; each
provider's own deviations (token-limit field, reasoning switch, fields to send
back) are its dialect, in ``_dialect.py``.

Usage is reported as the protocol counts it: ``input_tokens`` is every prompt
token, cached ones included (``prompt_tokens``), and ``cache_read_tokens`` is
the cached part of it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final, final

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
from ._dialect import dialect, strict_schema

__all__ = ["OpenAICodec", "OpenAIStreamDecoder"]

PROTOCOL: Final = "openai"

# Finish reasons as OpenAI-compatible servers spell them; anything else is None.
_FINISH: Final[Mapping[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

# -- answers -----------------------------------------------------------------------


class _PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None  # OpenRouter


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _PromptDetails | None = None
    completion_tokens_details: _CompletionDetails | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallIn(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None
    extra_content: Any = None  # Gemini: {"google": {"thought_signature": ...}}


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCallIn] | None = None
    reasoning_content: str | None = None  # DeepSeek, Qwen, Kimi, GLM, vLLM
    reasoning: str | None = None  # OpenRouter, Ollama, newer vLLM
    reasoning_details: list[Any] | None = None  # OpenRouter


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Response(msgspec.Struct):
    choices: Annotated[list[_Choice], msgspec.Meta(min_length=1)]
    model: str = ""
    usage: _Usage | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Message | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    model: str = ""
    usage: _Usage | None = None
    error: Any = None


# -- requests ----------------------------------------------------------------------


class _TextPart(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class _ImageURL(msgspec.Struct):
    url: str


class _ImagePart(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: _ImageURL


class _FunctionOut(msgspec.Struct):
    name: str
    arguments: str


class _ToolCallOut(msgspec.Struct, tag_field="type", tag="function"):
    id: str
    function: _FunctionOut
    extra_content: Any | UnsetType = UNSET


class _PlainMessage(msgspec.Struct):
    """A text-only system or user turn: the common case, kept small."""

    role: str
    content: str


class _WireMessage(msgspec.Struct):
    role: str
    content: str | list[_TextPart | _ImagePart] | UnsetType = UNSET
    tool_calls: list[_ToolCallOut] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    reasoning_details: list[Any] | UnsetType = UNSET


class _FunctionDef(msgspec.Struct):
    name: str
    parameters: Mapping[str, Any]
    description: str | UnsetType = UNSET
    strict: bool | UnsetType = UNSET


class _ToolDef(msgspec.Struct, tag_field="type", tag="function"):
    function: _FunctionDef


class _StreamOptions(msgspec.Struct):
    include_usage: bool = True


class _BasicRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields of a plain request: fewer fields encode faster on the hot path."""

    model: str
    messages: list[_PlainMessage | _WireMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    user: str | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None


class _WireRequest(_BasicRequest, kw_only=True, omit_defaults=True):
    """A request with tools, structured output or reasoning."""

    tools: list[_ToolDef] | UnsetType = UNSET
    tool_choice: str | dict[str, Any] | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    response_format: dict[str, Any] | UnsetType = UNSET
    reasoning_effort: str | UnsetType = UNSET
    thinking: dict[str, Any] | UnsetType = UNSET
    enable_thinking: bool | UnsetType = UNSET
    thinking_budget: int | UnsetType = UNSET
    reasoning: dict[str, Any] | UnsetType = UNSET
    chat_template_kwargs: dict[str, Any] | UnsetType = UNSET


_encode = msgspec.json.Encoder().encode
_decode_any = msgspec.json.decode
_decode_response: Callable[[bytes], _Response] = msgspec.json.Decoder(_Response).decode
_decode_chunk: Callable[[str], _Chunk] = msgspec.json.Decoder(_Chunk).decode
_STREAM_OPTIONS: Final = _StreamOptions()
_THINKING_ON: Final = {"type": "enabled"}
_JSON_OBJECT: Final = {"type": "json_object"}
_PLAIN_ROLES: Final = frozenset(("system", "user"))


def _usage(u: _Usage | None) -> Usage | None:
    if u is None:
        return None
    pd = u.prompt_tokens_details
    cd = u.completion_tokens_details
    cached = (pd.cached_tokens if pd else None) or u.prompt_cache_hit_tokens or 0
    return Usage(
        input_tokens=u.prompt_tokens or 0,
        output_tokens=u.completion_tokens or 0,
        cache_read_tokens=cached,
        cache_write_tokens=(pd.cache_write_tokens if pd else None) or 0,
        reasoning_tokens=(cd.reasoning_tokens if cd else None) or 0,
    )


def _finish(raw: str | None, has_tool_calls: bool) -> FinishReason | None:
    finish = _FINISH.get(raw) if raw else None
    # Some servers (Gemini, Ollama) finish a tool-call turn with "stop".
    return "tool_calls" if has_tool_calls and finish == "stop" else finish


def _error_payload(body: bytes) -> Any:
    """The error object in ``body``, or None when it holds none."""
    try:
        payload = _decode_any(body)
    except msgspec.DecodeError:
        return None
    return payload if isinstance(payload, dict) and "error" in payload else None


def _image_url(image: Image) -> str:
    if image.url is not None:
        return image.url
    assert image.data is not None
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _content(content: str | Sequence[Text | Image]) -> str | list[_TextPart | _ImagePart]:
    if isinstance(content, str):
        return content
    return [
        _TextPart(text=p.text) if isinstance(p, Text) else _ImagePart(_ImageURL(_image_url(p)))
        for p in content
    ]


@final
class OpenAICodec:
    """The chat completions protocol for one member, in its provider's dialect."""

    __slots__ = ("_by_limit", "_dialect", "_extra_body", "alias", "model", "provider")

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
        self._dialect = dialect(provider)
        self._by_limit = self._dialect.max_tokens_field == "max_tokens"
        self._extra_body = dict(extra_body) if extra_body else None

    def __repr__(self) -> str:
        return f"OpenAICodec(model={self.model!r}, provider={self.provider!r})"

    @property
    def protocol(self) -> str:
        """``openai``."""
        return PROTOCOL

    def path(self) -> str:
        """``/chat/completions``, under a base URL that ends in ``/v1`` or its equivalent."""
        return "/chat/completions"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """``Authorization: Bearer``, when there is a key."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def unfit(self, request: ChatRequest) -> str | None:
        """Why this member cannot take ``request`` as it means, or None."""
        d = self._dialect
        if d.max_stop is not None and request.stop is not None:
            n = len(request.stop_sequences)
            if n > d.max_stop:
                return f"{self.provider} takes at most {d.max_stop} stop sequences, got {n}"
        if (
            not d.forced_tool_choice
            and request.tools
            and request.tool_choice not in ("auto", "none")
        ):
            return f"{self.provider} takes tool_choice 'auto' only, got {request.tool_choice!r}"
        return None

    # -- encoding ------------------------------------------------------------------

    def encode(self, request: ChatRequest, *, stream: bool) -> bytes:
        """The request body."""
        # The hot path encodes every call: one constructor call with the common
        # fields, and the rest only for requests that use them.
        limit = request.max_tokens
        by_limit = self._by_limit
        wire: _BasicRequest = _BasicRequest(
            model=self.model,
            messages=[
                _PlainMessage(role=m.role, content=m.content)
                if m.role in _PLAIN_ROLES and m.content.__class__ is str
                else self._message(m)
                for m in request.messages
            ],
            max_tokens=limit if by_limit else None,
            max_completion_tokens=None if by_limit else limit,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop=list(request.stop_sequences) if request.stop else None,
            user=request.user,
            stream=stream,
            stream_options=_STREAM_OPTIONS if stream else None,
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
            self._tools(request, wire)
        if request.response_format is not None:
            wire.response_format = _response_format(request.response_format)
        if request.reasoning is not None:
            self._reasoning(request, wire)
        return wire

    def _message(self, m: Message) -> _WireMessage:
        role = m.role
        if role == "assistant":
            return self._assistant(m)
        if role == "tool":
            return _WireMessage(role="tool", content=m.text, tool_call_id=m.tool_call_id or "")
        return _WireMessage(role=role, content=_content(m.content))

    def _assistant(self, m: Message) -> _WireMessage:
        out = _WireMessage(role="assistant")
        text = m.text
        if text or not m.tool_calls:
            out.content = text
        state = m.provider_state
        mine = (
            state is not None
            and state.protocol == PROTOCOL
            and state.provider == self.provider
            and isinstance(state.data, dict)
        )
        extras = state.data.get("tool_calls") if mine and state is not None else None
        if not isinstance(extras, Mapping):
            extras = {}
        if m.tool_calls:
            calls = []
            for c in m.tool_calls:
                call = _ToolCallOut(
                    id=c.id, function=_FunctionOut(name=c.name, arguments=c.arguments)
                )
                extra = extras.get(c.id)
                if extra is not None:
                    call.extra_content = extra
                calls.append(call)
            out.tool_calls = calls
        fields = self._dialect.replay_fields
        if "reasoning_content" in fields and (m.reasoning or m.tool_calls):
            # The reasoning text itself is what these providers want back in a
            # tool-call loop, whichever model wrote it.
            out.reasoning_content = m.reasoning or ""
        if mine and state is not None and "reasoning_details" in fields:
            details = state.data.get("reasoning_details")
            if isinstance(details, list):
                out.reasoning_details = details
        return out

    def _tools(self, request: ChatRequest, wire: _WireRequest) -> None:
        d = self._dialect
        choice = request.tool_choice
        if choice == "none" and not d.forced_tool_choice:
            return  # a provider with "auto" only: no tools is what "none" means
        tools = []
        for t in request.tools:
            # Strict mode's schema rules apply only where the flag is sent.
            strict = t.strict if d.tool_strict else None
            fn = _FunctionDef(
                name=t.name,
                parameters=strict_schema(t.parameters) if strict else t.parameters,
            )
            if t.description:
                fn.description = t.description
            if strict is not None:
                fn.strict = strict
            tools.append(_ToolDef(function=fn))
        wire.tools = tools
        if choice in ("none", "required"):
            wire.tool_choice = choice
        elif choice != "auto":
            wire.tool_choice = {"type": "function", "function": {"name": choice}}
        if request.parallel_tool_calls is not None:
            wire.parallel_tool_calls = request.parallel_tool_calls

    def _reasoning(self, request: ChatRequest, wire: _WireRequest) -> None:
        r = request.reasoning
        assert r is not None
        switch = self._dialect.reasoning
        if switch in ("reasoning_effort", "thinking+effort", "chat_template"):
            wire.reasoning_effort = r.effort
        if switch in ("thinking", "thinking+effort"):
            wire.thinking = _THINKING_ON
        elif switch == "enable_thinking":
            wire.enable_thinking = True
            if r.budget_tokens is not None:
                wire.thinking_budget = r.budget_tokens
        elif switch == "openrouter":
            wire.reasoning = (
                {"max_tokens": r.budget_tokens}
                if r.budget_tokens is not None
                else {"effort": r.effort}
            )
        elif switch == "chat_template":
            wire.chat_template_kwargs = {"enable_thinking": True}

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
        choice = r.choices[0]
        msg = choice.message
        calls: tuple[ToolCall, ...] = ()
        extras: dict[str, Any] = {}
        if msg.tool_calls:
            calls = tuple(
                ToolCall(
                    id=c.id or f"call_{i}",
                    name=(c.function.name or "") if c.function else "",
                    arguments=(c.function.arguments or "{}") if c.function else "{}",
                )
                for i, c in enumerate(msg.tool_calls)
            )
            if self._dialect.replay_tool_call_extra:
                extras = {
                    call.id: c.extra_content
                    for call, c in zip(calls, msg.tool_calls, strict=True)
                    if c.extra_content is not None
                }
        return ChatResponse(
            text=msg.content or "",
            model=r.model or self.model,
            alias=self.alias,
            usage=_usage(r.usage),
            finish_reason=_finish(choice.finish_reason, bool(calls)),
            tool_calls=calls,
            reasoning=msg.reasoning_content or msg.reasoning or None,
            refusal=msg.refusal or None,
            provider_state=self._state(msg.reasoning_details, extras),
        )

    def _state(self, details: list[Any] | None, extras: dict[str, Any]) -> ProviderState | None:
        data: dict[str, Any] = {}
        if details and "reasoning_details" in self._dialect.replay_fields:
            data["reasoning_details"] = details
        if extras:
            data["tool_calls"] = extras
        if not data:
            return None
        return ProviderState(protocol=PROTOCOL, provider=self.provider, data=data)

    def stream_decoder(self) -> OpenAIStreamDecoder:
        """A fresh decoder for one stream."""
        return OpenAIStreamDecoder(self)


def _response_format(rf: JsonSchema | str) -> dict[str, Any]:
    if not isinstance(rf, JsonSchema):
        return _JSON_OBJECT
    spec: dict[str, Any] = {
        "name": rf.name,
        "schema": strict_schema(rf.schema) if rf.strict else dict(rf.schema),
        "strict": rf.strict,
    }
    if rf.description:
        spec["description"] = rf.description
    return {"type": "json_schema", "json_schema": spec}


class _Call:
    """A tool call being assembled from stream fragments."""

    __slots__ = ("args", "extra", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.args: list[str] = []
        self.extra: Any = None


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
        "_calls",
        "_codec",
        "_details",
        "_finish",
        "_parts",
        "_reasoning",
        "_refusal",
        "_reported_model",
        "_usage",
        "done",
        "finishing",
        "progressed",
    )

    terminal: Final = "[DONE] or a finish_reason"

    def __init__(self, codec: OpenAICodec) -> None:
        self._codec = codec
        self._parts: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, _Call] = {}
        self._details: list[Any] = []
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
        out: Sequence[Delta] = ()
        choices = chunk.choices
        if choices:
            choice = choices[0]
            delta = choice.delta
            if delta is not None:
                text = delta.content
                if (
                    delta.reasoning_content is None
                    and delta.reasoning is None
                    and delta.tool_calls is None
                    and delta.refusal is None
                    and delta.reasoning_details is None
                ):
                    # The hot path: a piece of text and nothing else.
                    if text:
                        self._parts.append(text)
                        out = (TextDelta(text=text),)
                else:
                    out = self._rich_delta(delta)
            if choice.finish_reason:
                self._finish = choice.finish_reason
                self.finishing = True
        if chunk.usage is not None:
            self._usage = _usage(chunk.usage)
            if self.finishing:
                self.done = True
        return out

    def _rich_delta(self, delta: _Message) -> list[Delta]:
        out: list[Delta] = []
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            self._reasoning.append(reasoning)
            out.append(ReasoningDelta(text=reasoning))
        if delta.content:
            self._parts.append(delta.content)
            out.append(TextDelta(text=delta.content))
        if delta.tool_calls:
            self._tool_calls(delta.tool_calls, out)
        if delta.refusal:
            self._refusal.append(delta.refusal)
        if delta.reasoning_details:
            self._details.extend(delta.reasoning_details)
        return out

    def _tool_calls(self, fragments: list[_ToolCallIn], out: list[Delta]) -> None:
        calls = self._calls
        for position, frag in enumerate(fragments):
            index = frag.index if frag.index is not None else position
            call = calls.get(index)
            if call is None:
                call = calls[index] = _Call()
            fn = frag.function
            name = fn.name if fn is not None else None
            args = (fn.arguments if fn is not None else None) or ""
            if frag.id:
                call.id = frag.id
            if name and not call.name:
                call.name = name
            if args:
                call.args.append(args)
            if frag.extra_content is not None:
                call.extra = frag.extra_content
            out.append(
                ToolCallDelta(index=index, id=frag.id or None, name=name or None, arguments=args)
            )

    def result(self) -> ChatResponse | None:
        """The assembled answer once the finish came, else None."""
        if not self.finishing:
            return None
        codec = self._codec
        calls = tuple(
            ToolCall(id=c.id or f"call_{i}", name=c.name, arguments="".join(c.args) or "{}")
            for i, c in sorted(self._calls.items())
        )
        extras: dict[str, Any] = {}
        if codec._dialect.replay_tool_call_extra:
            extras = {
                call.id: c.extra
                for call, (_, c) in zip(calls, sorted(self._calls.items()), strict=True)
                if c.extra is not None
            }
        return ChatResponse(
            text="".join(self._parts),
            model=self._reported_model or codec.model,
            alias=codec.alias,
            usage=self._usage,
            finish_reason=_finish(self._finish, bool(calls)),
            tool_calls=calls,
            reasoning="".join(self._reasoning) or None,
            refusal="".join(self._refusal) or None,
            provider_state=codec._state(self._details, extras),
        )
