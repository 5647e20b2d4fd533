"""Built-in providers: base URL, wire protocol, default model, key variable, capabilities.

Each is used as if declared under ``[providers.NAME]``; a declaration in the
config overrides any field. The order here is the order of the automatic pool
(``build_client`` with no model configured uses every preset whose key is set).

Capabilities are what the provider's documentation says its default model
takes through the endpoint used here (a request needing more skips the member
rather than failing on it); a model family that differs is listed in
``by_model``. Choosing another model of a provider may need ``capabilities``
set in the config. Local servers (ollama, vllm) serve whatever model is
loaded, so they are assumed capable, like providers that are not built in.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from typing import Literal

import msgspec

from .._types import CAPABILITIES

TOOLS = frozenset({"tools"})
VISION = frozenset({"vision"})
JSON_SCHEMA = frozenset({"json_schema"})
REASONING = frozenset({"reasoning"})

__all__ = ["PRESETS", "Preset", "auto_pool"]


class Preset(msgspec.Struct, kw_only=True, frozen=True):
    """One built-in provider."""

    protocol: Literal["openai", "anthropic"]
    base_url: str
    model: str
    key_env: str | None
    key_required: bool = True
    base_url_env: str | None = None
    capabilities: frozenset[str] = CAPABILITIES
    # (model name glob, capabilities): the first pattern the model matches wins.
    by_model: tuple[tuple[str, frozenset[str]], ...] = ()
    docs: str = ""

    def capabilities_of(self, model: str) -> frozenset[str]:
        """What ``model`` of this provider takes, by its name's family, else the default."""
        for pattern, capabilities in self.by_model:
            if fnmatch.fnmatchcase(model, pattern):
                return capabilities
        return self.capabilities

    @property
    def joins_auto_pool(self) -> bool:
        """A provider that needs a key joins the automatic pool when its key is set."""
        return self.key_env is not None and self.key_required


PRESETS: dict[str, Preset] = {
    # https://platform.openai.com/docs/api-reference/chat ; the SDK reads OPENAI_BASE_URL
    "openai": Preset(
        protocol="openai",
        base_url="https://api.openai.com/v1",
        model="gpt-4o-mini",
        key_env="OPENAI_API_KEY",
        base_url_env="OPENAI_BASE_URL",
        # gpt-4o family: tools, images, structured outputs; reasoning_effort is for the
        # o-series and gpt-5 (https://platform.openai.com/docs/guides/reasoning).
        capabilities=TOOLS | VISION | JSON_SCHEMA,
        by_model=(
            ("gpt-5*chat*", TOOLS | VISION | JSON_SCHEMA),  # the chat variants do not reason
            *((family, CAPABILITIES) for family in ("o1*", "o3*", "o4*", "gpt-5*")),
        ),
        docs="https://platform.openai.com/docs/api-reference/chat",
    ),
    # https://docs.anthropic.com/en/api/messages ; like the SDK, the base URL has no /v1
    "anthropic": Preset(
        protocol="anthropic",
        base_url="https://api.anthropic.com",
        model="claude-sonnet-4-5",
        key_env="ANTHROPIC_API_KEY",
        base_url_env="ANTHROPIC_BASE_URL",
        # Tools, images, extended thinking; JSON schema output as the codec writes it.
        capabilities=CAPABILITIES,
        docs="https://docs.anthropic.com/en/api/messages",
    ),
    # https://api-docs.deepseek.com/ (base_url https://api.deepseek.com, /v1 also accepted)
    "deepseek": Preset(
        protocol="openai",
        base_url="https://api.deepseek.com/v1",
        model="deepseek-chat",
        key_env="DEEPSEEK_API_KEY",
        # Tools; JSON output is json_object only; no image input; thinking is switched by
        # {"thinking": {"type": ...}} (https://api-docs.deepseek.com/guides/thinking_mode).
        capabilities=TOOLS | REASONING,
        docs="https://api-docs.deepseek.com/",
    ),
    # https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope
    "dashscope": Preset(
        protocol="openai",
        base_url="https://dashscope.aliyuncs.com/compatible-mode/v1",
        model="qwen-plus",
        key_env="DASHSCOPE_API_KEY",
        # qwen-plus: tools, JSON Schema output, enable_thinking; images need a qwen-vl model
        # (https://www.alibabacloud.com/help/en/model-studio/qwen-structured-output).
        capabilities=TOOLS | JSON_SCHEMA | REASONING,
        docs="https://help.aliyun.com/zh/model-studio/compatibility-of-openai-with-dashscope",
    ),
    # https://www.volcengine.com/docs/82379/1330310 (Ark, OpenAI-compatible /chat/completions)
    "ark": Preset(
        protocol="openai",
        base_url="https://ark.cn-beijing.volces.com/api/v3",
        model="doubao-seed-1-6-251015",
        key_env="ARK_API_KEY",
        # doubao-seed-1.6: images, tools, json_schema (beta, 250615 and later), thinking
        # (https://www.volcengine.com/docs/82379/1568221).
        capabilities=CAPABILITIES,
        docs="https://www.volcengine.com/docs/82379/1330310",
    ),
    # https://platform.moonshot.cn/docs/api/chat
    "moonshot": Preset(
        protocol="openai",
        base_url="https://api.moonshot.cn/v1",
        model="kimi-k2-0711-preview",
        key_env="MOONSHOT_API_KEY",
        # kimi-k2: tools; JSON mode is json_object only; no images, no thinking switch
        # (https://platform.moonshot.ai/docs/guide/use-json-mode-feature-of-kimi-api).
        capabilities=TOOLS,
        docs="https://platform.moonshot.cn/docs/api/chat",
    ),
    # https://docs.bigmodel.cn/cn/guide/develop/openai/introduction
    "zhipu": Preset(
        protocol="openai",
        base_url="https://open.bigmodel.cn/api/paas/v4",
        model="glm-4.5",
        key_env="ZHIPUAI_API_KEY",
        # glm-4.5: tools and thinking; response_format is text or json_object only;
        # images need glm-4.5v (https://docs.bigmodel.cn/api-reference/).
        capabilities=TOOLS | REASONING,
        docs="https://docs.bigmodel.cn/cn/guide/develop/openai/introduction",
    ),
    # https://openrouter.ai/docs/quickstart
    "openrouter": Preset(
        protocol="openai",
        base_url="https://openrouter.ai/api/v1",
        model="openai/gpt-4o-mini",
        key_env="OPENROUTER_API_KEY",
        # What a request can take depends on the routed model: assumed capable.
        capabilities=CAPABILITIES,
        docs="https://openrouter.ai/docs/quickstart",
    ),
    # https://ai.google.dev/gemini-api/docs/openai
    "gemini": Preset(
        protocol="openai",
        base_url="https://generativelanguage.googleapis.com/v1beta/openai",
        model="gemini-2.5-flash",
        key_env="GEMINI_API_KEY",
        # Tools, images, structured output and reasoning_effort on the OpenAI endpoint.
        capabilities=CAPABILITIES,
        docs="https://ai.google.dev/gemini-api/docs/openai",
    ),
    # https://github.com/ollama/ollama/blob/main/docs/openai.md (no key)
    "ollama": Preset(
        protocol="openai",
        base_url="http://127.0.0.1:11434/v1",
        model="llama3.2",
        key_env=None,
        key_required=False,
        # Whatever model is loaded: assumed capable.
        capabilities=CAPABILITIES,
        docs="https://github.com/ollama/ollama/blob/main/docs/openai.md",
    ),
    # https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html (key optional)
    "vllm": Preset(
        protocol="openai",
        base_url="http://127.0.0.1:8000/v1",
        model="",
        key_env="VLLM_API_KEY",
        key_required=False,
        # Whatever model is loaded: assumed capable.
        capabilities=CAPABILITIES,
        docs="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
}


def auto_pool(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The automatic pool: every preset that needs a key and has it set, in PRESETS order.

    The one answer to "which presets does a config that chooses nothing use",
    read by the resolution and by the command line alike.
    """
    environ = os.environ if env is None else env
    return tuple(
        name
        for name, preset in PRESETS.items()
        if preset.joins_auto_pool and preset.key_env and environ.get(preset.key_env)
    )
