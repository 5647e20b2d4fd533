"""The request checks the real APIs make, so a doomed request fails here as it would there.

Only rules both documented and enforced by the providers are checked, each with the
provider's own wording where it is known: a malformed conversation (tool results that
answer no call, calls left unanswered), out-of-range sampling settings, a missing
``max_tokens`` for Anthropic, a thinking budget that does not fit, and a thinking block
replayed with a changed signature.
"""

from __future__ import annotations

from typing import Any

from ._sim_wire import signature

__all__ = ["problem"]


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def _blocks(message: object, kind: str) -> list[dict[str, Any]]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _openai(body: dict[str, Any]) -> str | None:
    messages = _messages(body)
    if not messages:
        return "[] is too short - 'messages'"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
        return f"Invalid 'temperature': expected a value between 0 and 2, got {temperature}."
    waiting: list[str] = []  # calls of the last assistant turn not yet answered
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if message.get("tool_call_id") not in waiting:
                return (
                    f"Invalid parameter: messages.[{i}]: messages with role 'tool' must be a "
                    "response to a preceeding message with 'tool_calls'."
                )
            waiting.remove(message["tool_call_id"])
            continue
        if waiting:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(waiting)}"
            )
        calls = message.get("tool_calls") if role == "assistant" else None
        if isinstance(calls, list):
            waiting = [str(c.get("id")) for c in calls if isinstance(c, dict)]
    return None


def _anthropic(body: dict[str, Any]) -> str | None:
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return "max_tokens: Field required"
    messages = _messages(body)
    if not messages:
        return "messages: at least one message is required"
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return "temperature: range: 0..1"
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if budget >= max_tokens:
            return "`max_tokens` must be greater than `thinking.budget_tokens`."
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        following = messages[i + 1] if i + 1 < len(messages) else None
        answered = {b.get("tool_use_id") for b in _blocks(following, "tool_result")}
        missing = [str(b.get("id")) for b in _blocks(message, "tool_use")]
        missing = [call for call in missing if call not in answered]
        if missing:
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        called = {b.get("id") for b in _blocks(messages[i - 1], "tool_use")} if i else set()
        for j, block in enumerate(message.get("content") or []):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in called:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` "
                    "block must have a corresponding `tool_use` block in the previous message."
                )
            if block.get("type") == "thinking" and role == "assistant":
                text = block.get("thinking")
                if not isinstance(text, str) or block.get("signature") != signature(text):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
    return None


def problem(body: dict[str, Any], protocol: str) -> str | None:
    """Why the real API would refuse ``body`` with a 400, or None."""
    return _anthropic(body) if protocol == "anthropic" else _openai(body)
