"""How the simulator writes one answer in each protocol, plain and streamed.

An answer is decided once, as a neutral ``Turn``; this module only renders it. The shapes
follow the official APIs closely enough that the ``openai`` and ``anthropic`` SDKs (and
their streaming helpers) accept them: ``tests/test_sim_sdk.py`` validates every one with the
SDKs' own model classes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

__all__ = [
    "Call",
    "Frame",
    "Reply",
    "Turn",
    "anthropic_events",
    "anthropic_message",
    "openai_chunks",
    "openai_completion",
    "signature",
]

Finish: TypeAlias = Literal["stop", "length", "tool_calls", "content_filter", "refusal"]
Kind: TypeAlias = Literal["head", "delta", "finish", "usage", "terminal"]

# Anthropic's stop_reason for each neutral finish.
_STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "refusal": "refusal",
}
# OpenAI's finish_reason: a refusal is a normal stop with `message.refusal` set.
_FINISH_REASON = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "stop",
}


def signature(thinking: str) -> str:
    """The signature the simulator puts on a thinking block (and checks when it comes back)."""
    digest = hashlib.sha256(b"fallover-sim\0" + thinking.encode()).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call: its id, the tool's name, the arguments as JSON text in pieces."""

    id: str
    name: str
    pieces: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class Turn:
    """One assistant answer, as it is streamed: each tuple holds the pieces of one delta."""

    reasoning: tuple[str, ...] = ()
    text: tuple[str, ...] = ()
    calls: tuple[Call, ...] = ()
    refusal: tuple[str, ...] = ()
    finish: Finish = "stop"
    stop: str | None = None  # the stop sequence that ended the text, if one did
    reasoning_pause: float = 0.0  # seconds before each reasoning delta (a thinking phase)

    @property
    def signature(self) -> str:
        """Anthropic signs each thinking block; the signature covers its text."""
        return signature("".join(self.reasoning))

    @property
    def output_tokens(self) -> int:
        """Pieces stand for tokens, so usage agrees with what was streamed."""
        args = sum(len(c.pieces) for c in self.calls)
        return len(self.reasoning) + len(self.text) + len(self.refusal) + args


@dataclass(frozen=True, slots=True)
class Reply:
    """Where and how to answer: ids, the model name to report, the prompt's size."""

    id: str
    model: str
    created: int
    input_tokens: int
    include_usage: bool = False  # OpenAI streams: stream_options.include_usage


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE event: ``event`` is empty for OpenAI; ``data`` is JSON or ``[DONE]``."""

    kind: Kind
    data: dict[str, Any] | str
    event: str = ""
    pause: float = 0.0  # seconds to wait before sending it (on top of the fault's delays)

    def encode(self) -> bytes:
        raw = self.data if isinstance(self.data, str) else json.dumps(self.data)
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {raw}\n\n".encode()


# -- OpenAI ---------------------------------------------------------------------------


def _openai_usage(turn: Turn, reply: Reply) -> dict[str, Any]:
    out = turn.output_tokens
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": out,
        "total_tokens": reply.input_tokens + out,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": len(turn.reasoning)},
    }


def openai_completion(turn: Turn, reply: Reply) -> dict[str, Any]:
    """A ``chat.completion`` object."""
    # A refusal, a filtered answer and a turn of only tool calls carry no content.
    bare = turn.refusal or turn.calls or turn.finish == "content_filter"
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if bare and not turn.text else "".join(turn.text),
        "refusal": "".join(turn.refusal) if turn.refusal else None,
    }
    if turn.reasoning:
        # The OpenAI-compatible field of DeepSeek, Qwen and vLLM reasoning parsers.
        message["reasoning_content"] = "".join(turn.reasoning)
    if turn.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "system_fingerprint": "fp_sim",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH_REASON[turn.finish],
            }
        ],
        "usage": _openai_usage(turn, reply),
    }


def openai_chunks(turn: Turn, reply: Reply) -> list[Frame]:
    """The ``chat.completion.chunk`` stream, ending in ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": reply.model,
            "system_fingerprint": "fp_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if reply.include_usage:
            out["usage"] = None  # every chunk but the last carries a null usage
        return out

    frames = [Frame("head", chunk({"role": "assistant", "content": "", "refusal": None}))]
    frames += [
        Frame("delta", chunk({"reasoning_content": piece}), pause=turn.reasoning_pause)
        for piece in turn.reasoning
    ]
    frames += [Frame("delta", chunk({"content": piece})) for piece in turn.text]
    frames += [Frame("delta", chunk({"refusal": piece})) for piece in turn.refusal]
    for index, call in enumerate(turn.calls):
        # The first fragment names the call; the rest carry only argument text.
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(Frame("delta", chunk({"tool_calls": [opening]})))
        frames += [
            Frame("delta", chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]}))
            for p in call.pieces
        ]
    frames.append(Frame("finish", chunk({}, _FINISH_REASON[turn.finish])))
    if reply.include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = _openai_usage(turn, reply)
        frames.append(Frame("usage", last))
    frames.append(Frame("terminal", "[DONE]"))
    return frames


# -- Anthropic ------------------------------------------------------------------------


def _anthropic_blocks(turn: Turn) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.reasoning:
        thinking = "".join(turn.reasoning)
        blocks.append({"type": "thinking", "thinking": thinking, "signature": turn.signature})
    if turn.text:
        blocks.append({"type": "text", "text": "".join(turn.text)})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": json.loads(c.arguments)}
        for c in turn.calls
    ]
    return blocks


def _stop_reason(turn: Turn) -> str:
    return "stop_sequence" if turn.stop is not None else _STOP_REASON[turn.finish]


def _stop_details(turn: Turn) -> dict[str, Any] | None:
    """A refusal stops the message with its reason in ``stop_details``, not as text."""
    if turn.finish == "refusal":
        return {"type": "refusal", "category": None, "explanation": "".join(turn.refusal)}
    if turn.finish == "content_filter":
        return {"type": "refusal", "category": "general_harms", "explanation": None}
    return None


def _anthropic_usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def anthropic_message(turn: Turn, reply: Reply) -> dict[str, Any]:
    """A Messages API ``message`` object."""
    return {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": _anthropic_blocks(turn),
        "stop_reason": _stop_reason(turn),
        "stop_sequence": turn.stop,
        "stop_details": _stop_details(turn),
        "usage": _anthropic_usage(reply, turn.output_tokens),
    }


def anthropic_events(turn: Turn, reply: Reply) -> list[Frame]:
    """The Messages API event stream, ending in ``message_stop``."""

    def frame(kind: Kind, data: dict[str, Any], pause: float = 0.0) -> Frame:
        return Frame(kind, data, event=data["type"], pause=pause)

    start: dict[str, Any] = {
        "id": reply.id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(reply, 1),
    }
    frames = [
        frame("head", {"type": "message_start", "message": start}),
        frame("head", {"type": "ping"}),
    ]
    index = 0

    def block(opening: dict[str, Any], deltas: list[dict[str, Any]], pause: float = 0.0) -> None:
        nonlocal index
        frames.append(
            frame("head", {"type": "content_block_start", "index": index, "content_block": opening})
        )
        frames.extend(
            frame("delta", {"type": "content_block_delta", "index": index, "delta": d}, pause)
            for d in deltas
        )
        frames.append(frame("head", {"type": "content_block_stop", "index": index}))
        index += 1

    if turn.reasoning:
        thinking = [{"type": "thinking_delta", "thinking": p} for p in turn.reasoning]
        block({"type": "thinking", "thinking": "", "signature": ""}, thinking, turn.reasoning_pause)
        # The signature arrives last, in its own delta, just before the block stops.
        signed = frames.pop()
        frames.append(
            frame(
                "head",
                {
                    "type": "content_block_delta",
                    "index": index - 1,
                    "delta": {"type": "signature_delta", "signature": turn.signature},
                },
            )
        )
        frames.append(signed)
    if turn.text:
        block({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in turn.text])
    for call in turn.calls:
        fragments = [{"type": "input_json_delta", "partial_json": p} for p in call.pieces]
        block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, fragments)
    frames.append(
        frame(
            "finish",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": _stop_reason(turn),
                    "stop_sequence": turn.stop,
                    "stop_details": _stop_details(turn),
                },
                "usage": {"output_tokens": turn.output_tokens},
            },
        )
    )
    frames.append(frame("terminal", {"type": "message_stop"}))
    return frames
