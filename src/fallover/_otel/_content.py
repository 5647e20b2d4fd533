"""Message contents as the GenAI conventions' JSON, recorded only on the user's opt-in."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from .._types import ChatRequest, ChatResponse, Image, Message

__all__ = ["input_messages", "output_messages"]

_encode = msgspec.json.Encoder().encode


def _image(part: Image) -> dict[str, Any]:
    if part.url is not None:
        return {
            "type": "file_data",
            "modality": "image",
            "mime_type": part.media_type,
            "uri": part.url,
        }
    return {
        "type": "blob",
        "modality": "image",
        "mime_type": part.media_type,
        "content": base64.b64encode(part.data or b"").decode("ascii"),
    }


def _parts(message: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.reasoning:
        parts.append({"type": "reasoning", "content": message.reasoning})
    if isinstance(message.content, str):
        if message.content:
            parts.append({"type": "text", "content": message.content})
    else:
        for part in message.content:
            if isinstance(part, Image):
                parts.append(_image(part))
            else:
                parts.append({"type": "text", "content": part.text})
    if message.role == "tool":
        text = "".join(p["content"] for p in parts if p["type"] == "text")
        return [{"type": "tool_call_response", "id": message.tool_call_id, "response": text}]
    for call in message.tool_calls:
        parts.append(
            {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments}
        )
    return parts


def input_messages(request: ChatRequest) -> str:
    """``gen_ai.input.messages``: the request's messages as JSON text."""
    return _encode([{"role": m.role, "parts": _parts(m)} for m in request.messages]).decode()


def output_messages(response: ChatResponse) -> str:
    """``gen_ai.output.messages``: the answer as JSON text."""
    message: dict[str, Any] = {"role": "assistant", "parts": _parts(response.message)}
    if response.finish_reason is not None:
        message["finish_reason"] = response.finish_reason
    return _encode([message]).decode()
