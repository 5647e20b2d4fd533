"""The server side of the OpenAI chat completions protocol, for the gateway.

Pure and synchronous, like the client codecs: ``decode_request`` turns a
request body a client sent into the neutral ``ChatRequest`` (``ValueError``
naming the field when it is not a valid request), ``encode_response`` writes a
neutral answer as a ``chat.completion``, ``StreamEncoder`` writes neutral
stream events as ``chat.completion.chunk`` server-sent events, and
``encode_error`` writes the protocol's error object. Fields the neutral model
has no place for (``logprobs``, ``presence_penalty``, ...) are accepted and
ignored; values it cannot honour (``n`` above 1, audio parts) are refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from .._types import (
    ChatRequest,
    ChatResponse,
    Completed,
    Image,
    JsonSchema,
    Message,
    Part,
    Reasoning,
    ReasoningDelta,
    Restarted,
    StreamEvent,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "Incoming",
    "StreamEncoder",
    "decode_request",
    "encode_error",
    "encode_response",
    "error_type",
]


# -- the request, as a client sends it ---------------------------------------------------


class _TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class _ImageURL(msgspec.Struct):
    url: str
    detail: str | None = None


class _ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: _ImageURL


class _RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    refusal: str


_Part = _TextPart | _ImagePart | _RefusalPart


class _Function(msgspec.Struct):
    name: str
    arguments: str = "{}"


class _WireToolCall(msgspec.Struct):
    id: str
    function: _Function
    type: Literal["function"] = "function"


class _Message(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = None
    tool_calls: list[_WireToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class _FunctionDef(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _ToolDef(msgspec.Struct):
    type: Literal["function"]
    function: _FunctionDef


class _ChoiceName(msgspec.Struct):
    name: str


class _NamedChoice(msgspec.Struct):
    type: Literal["function"]
    function: _ChoiceName


class _Text(msgspec.Struct, tag="text", tag_field="type"):
    pass


class _JsonObject(msgspec.Struct, tag="json_object", tag_field="type"):
    pass


class _SchemaSpec(msgspec.Struct):
    name: str
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class _JsonSchemaFormat(msgspec.Struct, tag="json_schema", tag_field="type"):
    json_schema: _SchemaSpec


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _Request(msgspec.Struct):
    model: str
    messages: list[_Message]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    tools: list[_ToolDef] | None = None
    tool_choice: Literal["auto", "none", "required"] | _NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: _Text | _JsonObject | _JsonSchemaFormat | None = None
    reasoning_effort: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    user: str | None = None
    n: int | None = None


_decoder = msgspec.json.Decoder(_Request)
_MISSING = re.compile(r"Object missing required field `([^`]+)`$")
_encoder = msgspec.json.Encoder()

# "minimal" and "xhigh" are OpenAI's ends of the scale; the neutral model has three steps.
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


class Incoming(msgspec.Struct, kw_only=True, frozen=True):
    """A decoded request: the neutral request, whether to stream, and the stream's options."""

    request: ChatRequest
    stream: bool = False
    include_usage: bool = False


def field_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> ValueError:
    """msgspec's "... - at `$.messages[0].role`" as "messages[0].role: ..."."""
    text = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        return ValueError(f"body: not valid JSON ({text[:1].lower() + text[1:]})")
    message, sep, at = text.rpartition(" - at `$")
    if not sep:
        message, at = text, ""
    where = at.rstrip("`").lstrip(".")
    missing = _MISSING.match(message)
    if missing:
        name = missing.group(1)
        return ValueError(f"{where}.{name}: required" if where else f"{name}: required")
    return ValueError(f"{where or 'body'}: {message[:1].lower() + message[1:]}")


def _text_of(parts: str | list[_Part] | None, where: str) -> str:
    if parts is None or isinstance(parts, str):
        return parts or ""
    texts: list[str] = []
    for i, p in enumerate(parts):
        if isinstance(p, _TextPart):
            texts.append(p.text)
        elif isinstance(p, _ImagePart):
            raise ValueError(f"{where}[{i}]: images go in user messages only")
    return "".join(texts)


def _image(url: str, where: str) -> Image:
    if not url.startswith("data:"):
        return Image(url=url)
    head, comma, data = url.partition(",")
    media_type = head[5:].split(";", 1)[0]
    if not comma or ";base64" not in head or not media_type:
        raise ValueError(f"{where}: a data URL must be data:<media type>;base64,<data>")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{where}: the data URL is not valid base64") from None
    return Image(data=raw, media_type=media_type)


def _user_content(content: str | list[_Part] | None, where: str) -> str | list[Part]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[Part] = []
    for i, p in enumerate(content):
        if isinstance(p, _TextPart):
            parts.append(Text(text=p.text))
        elif isinstance(p, _ImagePart):
            parts.append(_image(p.image_url.url, f"{where}[{i}].image_url.url"))
        else:
            raise ValueError(f"{where}[{i}]: a refusal part belongs in assistant messages")
    return parts


def _message(m: _Message, where: str) -> Message:
    content = f"{where}.content"
    if m.role in ("system", "developer"):
        return Message(role="system", content=_text_of(m.content, content))
    if m.role == "user":
        return Message(role="user", content=_user_content(m.content, content))
    if m.role == "tool":
        if not m.tool_call_id:
            raise ValueError(f"{where}.tool_call_id: required on a tool message")
        return Message(
            role="tool", content=_text_of(m.content, content), tool_call_id=m.tool_call_id
        )
    calls = tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
        for c in m.tool_calls or ()
    )
    return Message(
        role="assistant",
        content=_text_of(m.content, content),
        tool_calls=calls,
        reasoning=m.reasoning_content or None,
    )


def _tool(t: _ToolDef, where: str) -> Tool:
    f = t.function
    params = f.parameters if f.parameters is not None else {"type": "object", "properties": {}}
    try:
        return Tool(
            name=f.name, description=f.description or "", parameters=params, strict=f.strict
        )
    except ValueError as exc:
        raise ValueError(f"{where}.function: {exc}") from None


def decode_request(body: bytes) -> Incoming:
    """The neutral request in ``body``; ``ValueError`` naming the field when it is not valid."""
    try:
        r = _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise field_error(exc) from None
    if not r.model:
        raise ValueError("model: must name a pool or a provider/model")
    if r.n is not None and r.n != 1:
        raise ValueError(f"n: only 1 choice is supported, got {r.n}")
    if not r.messages:
        raise ValueError("messages: must hold at least one message")
    messages = []
    for i, m in enumerate(r.messages):
        try:
            messages.append(_message(m, f"messages[{i}]"))
        except ValueError as exc:
            text = str(exc)
            raise ValueError(
                text if text.startswith("messages[") else f"messages[{i}]: {text}"
            ) from None
    tools = tuple(_tool(t, f"tools[{i}]") for i, t in enumerate(r.tools or ()))
    choice: str = "auto"
    if isinstance(r.tool_choice, _NamedChoice):
        choice = r.tool_choice.function.name
    elif r.tool_choice is not None:
        choice = r.tool_choice
    response_format: JsonSchema | Literal["json"] | None = None
    rf = r.response_format
    if isinstance(rf, _JsonObject):
        response_format = "json"
    elif isinstance(rf, _JsonSchemaFormat):
        spec = rf.json_schema
        if spec.schema is None:
            raise ValueError("response_format.json_schema.schema: required")
        response_format = JsonSchema(
            name=spec.name,
            schema=spec.schema,
            strict=spec.strict if spec.strict is not None else False,
            description=spec.description,
        )
    reasoning = None
    if r.reasoning_effort is not None and r.reasoning_effort != "none":
        effort = _EFFORTS.get(r.reasoning_effort)
        if effort is None:
            raise ValueError(
                f"reasoning_effort: {r.reasoning_effort!r} is not one of "
                f"none, {', '.join(_EFFORTS)}"
            )
        reasoning = Reasoning(effort=effort)  # type: ignore[arg-type]  # a key of _EFFORTS
    try:
        request = ChatRequest(
            messages=messages,
            model=r.model,
            tools=tools,
            tool_choice=choice,
            parallel_tool_calls=r.parallel_tool_calls,
            response_format=response_format,
            reasoning=reasoning,
            max_tokens=r.max_completion_tokens or r.max_tokens,
            temperature=r.temperature,
            top_p=r.top_p,
            seed=r.seed,
            stop=r.stop,
            user=r.user,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc).removeprefix("ChatRequest.")) from None
    include_usage = r.stream_options is not None and r.stream_options.include_usage
    return Incoming(request=request, stream=bool(r.stream), include_usage=include_usage)


# -- answers ------------------------------------------------------------------------------


def _usage(u: Usage | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.input_tokens + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _wire_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


_FINISHES = frozenset(("stop", "length", "tool_calls", "content_filter"))


def _finish(resp: ChatResponse) -> str:
    # Only the protocol's own values go out, whatever a member reported.
    if resp.finish_reason in _FINISHES:
        return resp.finish_reason
    return "tool_calls" if resp.tool_calls else "stop"


def encode_response(resp: ChatResponse, *, id: str, created: int) -> bytes:
    """``resp`` as a ``chat.completion`` object."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": resp.text if resp.text or not resp.tool_calls else None,
        "refusal": resp.refusal,
    }
    if resp.tool_calls:
        message["tool_calls"] = _wire_calls(resp.tool_calls)
    if resp.reasoning is not None:
        message["reasoning_content"] = resp.reasoning
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": resp.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish(resp), "logprobs": None}
        ],
    }
    usage = _usage(resp.usage)
    if usage is not None:
        body["usage"] = usage
    return _encoder.encode(body)


class StreamEncoder:
    """Writes one stream's neutral events as ``chat.completion.chunk`` SSE events."""

    def __init__(self, *, id: str, created: int, model: str, include_usage: bool) -> None:
        self._head = {"id": id, "object": "chat.completion.chunk", "created": created}
        self._model = model
        self._include_usage = include_usage
        self._started = False
        self._text = False
        self._tools = False

    def _chunk(
        self,
        delta: dict[str, Any],
        finish: str | None = None,
        debug: Mapping[str, Any] | None = None,
    ) -> bytes:
        chunk: dict[str, Any] = {
            **self._head,
            "model": self._model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if debug is not None:
            chunk["fallover"] = debug
        return b"data: " + _encoder.encode(chunk) + b"\n\n"

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return self._chunk({"role": "assistant", "content": ""})

    def event(self, event: StreamEvent, *, debug: Mapping[str, Any] | None = None) -> bytes:
        """The SSE bytes for ``event`` (the role chunk comes first, with the first event).

        ``debug`` rides on the finishing chunk as a ``fallover`` field (SDKs ignore it).
        """
        out = self._start()
        if isinstance(event, TextDelta):
            self._text = True
            return out + self._chunk({"content": event.text})
        if isinstance(event, ReasoningDelta):
            return out + self._chunk({"reasoning_content": event.text})
        if isinstance(event, ToolCallDelta):
            self._tools = True
            call: dict[str, Any] = {"index": event.index}
            if event.id is not None:
                call["id"] = event.id
                call["type"] = "function"
            fn: dict[str, Any] = {"arguments": event.arguments}
            if event.name is not None:
                fn["name"] = event.name
            call["function"] = fn
            return out + self._chunk({"tool_calls": [call]})
        if isinstance(event, Completed):
            return out + self._end(event.response, debug)
        if isinstance(event, Restarted):
            raise ValueError("a restarted stream cannot be relayed to a client that saw text")
        raise TypeError(f"not a stream event: {type(event).__name__}")

    def _end(self, resp: ChatResponse, debug: Mapping[str, Any] | None) -> bytes:
        out = b""
        # A member that answered without deltas (or without tool-call deltas) still has
        # its whole answer in Completed: send what the client has not seen.
        if not self._text and resp.text:
            out += self._chunk({"content": resp.text})
        if not self._tools and resp.tool_calls:
            calls = [{"index": i, **c} for i, c in enumerate(_wire_calls(resp.tool_calls))]
            out += self._chunk({"tool_calls": calls})
        out += self._chunk({}, _finish(resp), debug)
        if self._include_usage:
            chunk = {**self._head, "model": self._model, "choices": [], "usage": _usage(resp.usage)}
            out += b"data: " + _encoder.encode(chunk) + b"\n\n"
        return out + b"data: [DONE]\n\n"

    def error(self, status: int, message: str, *, code: str | None = None) -> bytes:
        """An error event: the stream ends with it, without ``[DONE]``."""
        return b"data: " + encode_error(status, message, code=code) + b"\n\n"


# -- errors -------------------------------------------------------------------------------

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_exceeded",
    502: "server_error",
    503: "server_error",
    504: "timeout",
}


def error_type(status: int) -> str:
    """The ``error.type`` OpenAI gives a status."""
    return _TYPES.get(status, "server_error")


def encode_error(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> bytes:
    """The OpenAI error object for ``status``."""
    return _encoder.encode(
        {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    )
