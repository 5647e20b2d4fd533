"""What the simulator answers: one neutral ``Turn`` per request, decided from the body.

The agent behaviour is deliberately simple and deterministic: when the request offers tools
and the conversation has had fewer tool-call turns than the scenario's ``tool_rounds`` since
the user last spoke, the model calls a tool (the first offered, or those the scenario
names); otherwise it answers with text. Reasoning, refusals and content filters come from
the scenario.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from .._review._simulated import findings_answer
from .._types import ChatRequest, Message
from ._sim_scenario import Fault
from ._sim_wire import Call, Turn

__all__ = ["Offer", "example", "pieces", "plan", "prompt_text"]

_DEFAULT_REASONING = (
    "Let me read the request carefully, check each part against what I know, "
    "and decide what the answer should say."
)
_ARGUMENT_PIECE = 8  # characters per streamed argument fragment


def _text_of(content: object) -> str:
    """The text of a message's content: a string, or the text of its parts/blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "content" in part:  # an Anthropic tool_result block
                    parts.append(_text_of(part["content"]))
        return "\n".join(parts)
    return ""


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def prompt_text(body: dict[str, Any]) -> str:
    """Every message's text (and Anthropic's top-level system), for token estimates."""
    texts = [_text_of(body.get("system"))]
    texts += [_text_of(m.get("content")) for m in _messages(body)]
    return "\n".join(t for t in texts if t)


# -- the request, read the same for both protocols -----------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    """What the request offers and asks of the model, in neutral terms."""

    tools: dict[str, dict[str, Any]]  # name -> JSON schema of its arguments, in order
    choice: Literal["auto", "none", "required"] | str  # or the one tool's name
    parallel: bool
    after_tool: bool  # the last message carries tool results
    rounds: int  # tool-call turns since the user last spoke
    thinking: bool  # the request enables reasoning output (Anthropic asks for it)
    schema: dict[str, Any] | None  # a JSON schema the answer must follow
    json_mode: bool  # any JSON object will do
    max_tokens: int | None
    stop: tuple[str, ...]  # stop sequences


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str) and v)
    return ()


def _offer_openai(body: dict[str, Any]) -> Offer:
    tools: dict[str, dict[str, Any]] = {}
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            tools[function["name"]] = function.get("parameters") or {}
    raw = body.get("tool_choice")
    function = raw.get("function") if isinstance(raw, dict) else None
    if isinstance(raw, str):
        choice = raw
    elif isinstance(function, dict) and isinstance(function.get("name"), str):
        choice = function["name"]
    else:
        choice = "auto"
    messages = _messages(body)
    rounds = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        rounds += message.get("role") == "assistant" and bool(message.get("tool_calls"))
    fmt = body.get("response_format")
    schema = None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = (spec.get("schema") if isinstance(spec, dict) else None) or {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    return Offer(
        tools=tools,
        choice=choice,
        parallel=body.get("parallel_tool_calls") is not False,
        after_tool=bool(messages) and messages[-1].get("role") == "tool",
        rounds=rounds,
        thinking=True,  # OpenAI-compatible reasoning models always send their reasoning
        schema=schema,
        json_mode=isinstance(fmt, dict) and fmt.get("type") == "json_object",
        max_tokens=limit if isinstance(limit, int) else None,
        stop=_strings(body.get("stop")),
    )


def _offer_anthropic(body: dict[str, Any]) -> Offer:
    tools = {
        t["name"]: t.get("input_schema") or {}
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("name"), str)
    }
    raw = body.get("tool_choice") or {}
    kind = raw.get("type", "auto") if isinstance(raw, dict) else "auto"
    choice = {"any": "required", "tool": str(raw.get("name", ""))}.get(kind, kind)
    messages = _messages(body)
    rounds = 0
    for message in reversed(messages):
        if message.get("role") == "user" and not _blocks(message, "tool_result"):
            break
        rounds += message.get("role") == "assistant" and bool(_blocks(message, "tool_use"))
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    schema = None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema") or {}
    thinking = body.get("thinking")
    limit = body.get("max_tokens")
    return Offer(
        tools=tools,
        choice=choice,
        parallel=not (isinstance(raw, dict) and raw.get("disable_parallel_tool_use") is True),
        after_tool=bool(messages) and bool(_blocks(messages[-1], "tool_result")),
        rounds=rounds,
        thinking=isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"),
        schema=schema,
        json_mode=False,
        max_tokens=limit if isinstance(limit, int) else None,
        stop=_strings(body.get("stop_sequences")),
    )


# -- deciding the answer -----------------------------------------------------------------


def _review(prompt: str) -> str:
    """A deterministic, plausible-looking review of whatever was sent."""
    lines = prompt.splitlines()
    longest = max((len(line) for line in lines), default=0)
    todos = sum("TODO" in line or "FIXME" in line for line in lines)
    notes = [f"Simulated review of {len(lines)} lines."]
    if longest > 100:
        notes.append(f"The longest line has {longest} characters; consider wrapping it.")
    if todos:
        plural = "s" if todos != 1 else ""
        notes.append(f"{todos} TODO/FIXME marker{plural} left to resolve.")
    if not todos and longest <= 100:
        notes.append("Nothing stands out; the structure reads clearly.")
    return " ".join(notes)


def _unfence(text: str) -> str:
    """The code inside the first fenced block, if the message has one (what review sends)."""
    start = text.find("```\n")
    end = text.rfind("\n```")
    return text[start + 4 : end] if 0 <= start < end else text


def example(schema: object, name: str = "") -> Any:
    """A small value that satisfies a JSON schema (the common keywords)."""
    if not isinstance(schema, dict):
        return name or "example"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example(schema[key][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        wanted = schema.get("required") or list(props)
        return {key: example(props.get(key), key) for key in wanted}
    if kind == "array":
        return [example(schema.get("items"), name)] * int(schema.get("minItems", 1) or 1)
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return name or "example"


def pieces(text: str) -> tuple[str, ...]:
    """Split text into word-sized stream deltas that join back to it exactly."""
    if not text:
        return ()
    words = text.split(" ")
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def _fragments(text: str) -> tuple[str, ...]:
    return tuple(text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE))


def _calls(offer: Offer, fault: Fault, call_id: str) -> tuple[Call, ...]:
    if offer.choice not in ("auto", "none", "required"):
        names = [offer.choice]
    elif "*" in fault.call_tools:
        names = list(offer.tools)
    else:
        names = list(fault.call_tools) or list(offer.tools)[:1]
    if not offer.parallel:
        names = names[:1]
    return tuple(
        Call(
            id=f"{call_id}{i}",
            name=name,
            pieces=_fragments(
                json.dumps(fault.tool_arguments.get(name) or example(offer.tools.get(name, {})))
            ),
        )
        for i, name in enumerate(names)
    )


def _wants_tools(offer: Offer, fault: Fault) -> bool:
    if not offer.tools or offer.choice == "none":
        return False
    return offer.choice != "auto" or offer.rounds < fault.tool_rounds


def _reasoning(fault: Fault, offer: Offer) -> tuple[tuple[str, ...], float]:
    """The reasoning deltas and the pause before each (a thinking phase spreads them out)."""
    if not offer.thinking or not (fault.reasoning or fault.thinking):
        return (), 0.0
    words = pieces(fault.reasoning or _DEFAULT_REASONING)
    if not fault.thinking:
        return words, 0.0
    count = max(len(words), math.ceil(fault.thinking / fault.thinking_interval))
    # Long enough phases repeat the reasoning; each delta keeps its leading space.
    spread = tuple(itertools.islice(itertools.cycle((" " + words[0], *words[1:])), count))
    return (words[0], *spread[1:]), fault.thinking / count


def _answer_text(body: dict[str, Any], offer: Offer, fault: Fault) -> str:
    if fault.reply is not None:
        return fault.reply
    messages = _messages(body)
    users = [m for m in messages if m.get("role") == "user"]
    last = _text_of(users[-1].get("content")) if users else prompt_text(body)
    review = findings_answer(ChatRequest(messages=[Message(role="user", content=last)]))
    if review is not None:  # `fallover review` asks for findings about the lines it sent
        return review
    if offer.schema is not None:
        return json.dumps(example(offer.schema))
    if offer.after_tool:
        return _review(_text_of(messages[-1].get("content")))
    text = _review(_unfence(last))
    return json.dumps({"answer": text}) if offer.json_mode else text


def _until_stop(text: str, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """The text up to the earliest stop sequence (which is not sent), and that sequence."""
    found = [(text.find(stop), stop) for stop in stops if stop in text]
    if not found:
        return text, None
    at, stop = min(found)
    return text[:at], stop


def plan(body: dict[str, Any], fault: Fault, *, protocol: str, call_id: str) -> Turn:
    """The answer to ``body`` under ``fault``; ``call_id`` prefixes its tool-call ids."""
    offer = _offer_anthropic(body) if protocol == "anthropic" else _offer_openai(body)
    reasoning, pause = _reasoning(fault, offer)
    if fault.content_filter:
        return Turn(reasoning=reasoning, reasoning_pause=pause, finish="content_filter")
    if fault.refusal is not None:
        refusal = pieces(fault.refusal)
        return Turn(reasoning=reasoning, reasoning_pause=pause, refusal=refusal, finish="refusal")
    if _wants_tools(offer, fault):
        calls = _calls(offer, fault, call_id)
        turn = Turn(reasoning=reasoning, reasoning_pause=pause, calls=calls, finish="tool_calls")
    else:
        text, stopped = _until_stop(_answer_text(body, offer, fault), offer.stop)
        turn = Turn(reasoning=reasoning, reasoning_pause=pause, text=pieces(text), stop=stopped)
    if offer.max_tokens is not None and turn.output_tokens > offer.max_tokens:
        # Out of tokens: the answer stops mid-way, as a real model's does.
        keep = max(offer.max_tokens - len(reasoning), 0)
        return Turn(
            reasoning=reasoning[: offer.max_tokens],
            reasoning_pause=pause,
            text=turn.text[:keep],
            finish="length",
        )
    return turn
