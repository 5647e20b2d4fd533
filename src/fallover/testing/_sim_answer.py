"""What the simulator answers: one neutral ``Turn`` per request, decided from the body."""

from __future__ import annotations

from typing import Any

from ._sim_scenario import Fault
from ._sim_wire import Turn

__all__ = ["plan", "prompt_text"]


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


def prompt_text(body: dict[str, Any]) -> str:
    """Every message's text (and Anthropic's top-level system), for token estimates."""
    texts = [_text_of(body.get("system"))]
    texts += [_text_of(m.get("content")) for m in _messages(body)]
    return "\n".join(t for t in texts if t)


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


def pieces(text: str) -> tuple[str, ...]:
    """Split text into word-sized stream deltas that join back to it exactly."""
    words = text.split(" ")
    return tuple(w if i == 0 else " " + w for i, w in enumerate(words))


def plan(body: dict[str, Any], fault: Fault) -> Turn:
    """The answer to ``body`` under ``fault``."""
    users = [m for m in _messages(body) if m.get("role") == "user"]
    last = _text_of(users[-1].get("content")) if users else prompt_text(body)
    text = fault.reply if fault.reply is not None else _review(_unfence(last))
    return Turn(text=pieces(text))
