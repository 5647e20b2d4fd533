"""Wire quirks of each provider behind the OpenAI protocol, keyed by provider name.

A dialect says only how a request is *written* for one provider: which field
carries the token limit, how reasoning is switched on, how many stop
sequences it takes, and which fields of an answer must be sent back unchanged
on the next turn (``provider_state``). What a provider's models *can do*
(tools, vision, JSON schema, reasoning) is declared by the presets, not here.
Each entry cites the documentation it follows; an unknown provider gets the
plain OpenAI-compatible form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

__all__ = ["DIALECTS", "Dialect", "closed_schema", "dialect", "strict_schema"]

ReasoningSwitch = Literal[
    "reasoning_effort",  # {"reasoning_effort": effort}
    "thinking",  # {"thinking": {"type": "enabled"}}
    "thinking+effort",  # both of the above
    "enable_thinking",  # {"enable_thinking": true, "thinking_budget": budget?}
    "openrouter",  # {"reasoning": {"effort": effort} or {"max_tokens": budget}}
    "chat_template",  # {"chat_template_kwargs": {"enable_thinking": true}, "reasoning_effort": ...}
]


class Dialect(msgspec.Struct, kw_only=True, frozen=True):
    """How one provider wants the OpenAI protocol written."""

    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    reasoning: ReasoningSwitch = "reasoning_effort"
    max_stop: int | None = None
    # Tool choice beyond "auto" (GLM takes only "auto").
    forced_tool_choice: bool = True
    # The tool-schema "strict" flag is accepted.
    tool_strict: bool = True
    # Assistant-message fields to send back unchanged to the same provider.
    replay_fields: tuple[str, ...] = ()
    # Tool calls carry an "extra_content" object to send back unchanged (Gemini thought signatures).
    replay_tool_call_extra: bool = False


DEFAULT: Final = Dialect()

DIALECTS: Final[Mapping[str, Dialect]] = {
    # https://platform.openai.com/docs/api-reference/chat/create : max_tokens is deprecated
    # and refused by o-series models; stop takes "up to 4 sequences".
    "openai": Dialect(max_tokens_field="max_completion_tokens", max_stop=4),
    # https://api-docs.deepseek.com/guides/thinking_mode : {"thinking": {"type": "enabled"}}
    # with reasoning_effort; reasoning_content must go back during a tool-call loop.
    "deepseek": Dialect(reasoning="thinking+effort", replay_fields=("reasoning_content",)),
    # https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope :
    # enable_thinking (with thinking_budget), outside the OpenAI fields.
    "dashscope": Dialect(reasoning="enable_thinking"),
    # https://platform.moonshot.cn/docs/api/chat : kimi-k2.5+ take {"thinking": {"type": ...}}
    # and want reasoning_content kept in the history of a tool-call loop.
    "moonshot": Dialect(reasoning="thinking", replay_fields=("reasoning_content",)),
    # https://docs.z.ai/guides/capabilities/thinking-mode : {"thinking": {"type":
    # "enabled"}}; interleaved thinking wants reasoning_content back; tool_choice is "auto" only.
    "zhipu": Dialect(
        reasoning="thinking",
        forced_tool_choice=False,
        tool_strict=False,
        replay_fields=("reasoning_content",),
    ),
    # https://www.volcengine.com/docs/82379/1330310 : {"thinking": {"type": "enabled"}},
    # reasoning_effort; stop takes up to 4 strings.
    "ark": Dialect(reasoning="thinking+effort", max_stop=4),
    # https://openrouter.ai/docs/use-cases/reasoning-tokens : {"reasoning": {...}}; answers carry
    # reasoning_details, to be passed back unchanged.
    "openrouter": Dialect(reasoning="openrouter", replay_fields=("reasoning_details",)),
    # https://ai.google.dev/gemini-api/docs/openai : reasoning_effort; tool calls carry
    # extra_content.google.thought_signature, required back on the next turn; stop takes 5.
    "gemini": Dialect(max_stop=5, replay_tool_call_extra=True),
    # https://docs.ollama.com/api/openai-compatibility : reasoning_effort.
    "ollama": DEFAULT,
    # https://docs.vllm.ai/en/latest/features/reasoning_outputs.html : thinking is switched by
    # the model's chat template (chat_template_kwargs.enable_thinking); gpt-oss reads
    # reasoning_effort.
    "vllm": Dialect(reasoning="chat_template"),
}


def dialect(provider: str) -> Dialect:
    """The dialect of ``provider``; the plain OpenAI-compatible form for one not listed."""
    return DIALECTS.get(provider, DEFAULT)


def strict_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` as OpenAI strict mode wants it.

    Every object is closed (``additionalProperties: false`` unless given) and
    lists every property as required, recursively, as the official SDK's
    ``to_strict_json_schema`` does.
    """
    return _normalise(dict(schema), require_all=True)


def closed_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every object closed, ``required`` left as given.

    Anthropic structured outputs ask for ``additionalProperties: false`` on
    every object and do support optional properties.
    """
    return _normalise(dict(schema), require_all=False)


def _normalise(schema: Mapping[str, Any], *, require_all: bool) -> dict[str, Any]:
    out = dict(schema)
    for key in ("$defs", "definitions"):
        defs = out.get(key)
        if isinstance(defs, Mapping):
            out[key] = {k: _sub(v, require_all) for k, v in defs.items()}
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    props = out.get("properties")
    if isinstance(props, Mapping):
        if require_all:
            out["required"] = list(props)
        out["properties"] = {k: _sub(v, require_all) for k, v in props.items()}
    items = out.get("items")
    if isinstance(items, Mapping):
        out["items"] = _sub(items, require_all)
    for key in ("anyOf", "allOf", "oneOf"):
        variants = out.get(key)
        if isinstance(variants, list):
            out[key] = [_sub(v, require_all) for v in variants]
    return out


def _sub(schema: Any, require_all: bool) -> Any:
    return _normalise(schema, require_all=require_all) if isinstance(schema, Mapping) else schema
