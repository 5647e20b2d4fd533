"""fallover: route LLM calls over an ordered pool of endpoints, falling over on failure."""

from ._client import LLMClient
from ._config import Config, build_client, load_config
from ._endpoint import AnthropicClient, OpenAIClient
from ._errors import (
    AllModelsFailed,
    AuthFailed,
    BadRequest,
    ConfigError,
    ConnectionFailed,
    ContentFiltered,
    ContextTooLong,
    FalloverError,
    MalformedResponse,
    MemberUnusable,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    RoutingTimeout,
    ServerFailed,
    StreamInterrupted,
    Unavailable,
    Unsupported,
)
from ._otel import instrument
from ._routing import (
    AsyncRouter,
    CooldownStore,
    MemoryCooldowns,
    Pace,
    RedisCooldowns,
    fan_out,
)
from ._serve import Gateway
from ._types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Completed,
    Image,
    JsonSchema,
    Message,
    ProviderState,
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
from .testing import MockClient

__version__ = "0.1.0"

__all__ = [
    "AllModelsFailed",
    "AnthropicClient",
    "AsyncRouter",
    "Attempt",
    "AuthFailed",
    "BadRequest",
    "ChatRequest",
    "ChatResponse",
    "Completed",
    "Config",
    "ConfigError",
    "ConnectionFailed",
    "ContentFiltered",
    "ContextTooLong",
    "CooldownStore",
    "FalloverError",
    "Gateway",
    "Image",
    "JsonSchema",
    "LLMClient",
    "MalformedResponse",
    "MemberUnusable",
    "MemoryCooldowns",
    "Message",
    "MockClient",
    "ModelNotFound",
    "OpenAIClient",
    "Pace",
    "ProviderError",
    "ProviderState",
    "ProviderTimeout",
    "QuotaExhausted",
    "RateLimited",
    "Reasoning",
    "ReasoningDelta",
    "RedisCooldowns",
    "RequestRejected",
    "Restarted",
    "RoutingTimeout",
    "ServerFailed",
    "StreamEvent",
    "StreamInterrupted",
    "Text",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Unavailable",
    "Unsupported",
    "Usage",
    "build_client",
    "fan_out",
    "instrument",
    "load_config",
]


def _fix_module_names() -> None:
    """Name the public path in tracebacks and reprs: ``fallover.RateLimited``, not ``_errors``."""
    import msgspec

    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, type) or callable(obj):
            module = getattr(obj, "__module__", "")
            if module.startswith("fallover._"):
                if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
                    # msgspec resolves a Struct's annotations in its module's namespace, once:
                    # resolve them now, while the module still names where they live.
                    msgspec.json.Decoder(obj)
                obj.__module__ = __name__


_fix_module_names()
