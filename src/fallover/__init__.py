"""fallover: route LLM calls over an ordered pool of endpoints, falling over on failure."""

from ._config import Config, build_client, load_config
from ._cooldown import CooldownStore, MemoryCooldowns
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
)
from ._fanout import fan_out
from ._providers._anthropic import AnthropicClient
from ._providers._base import LLMClient
from ._providers._mock import MockClient
from ._providers._openai import OpenAIClient
from ._router import AsyncRouter
from ._types import (
    Attempt,
    ChatRequest,
    ChatResponse,
    Completed,
    Message,
    Restarted,
    StreamEvent,
    TextDelta,
    Usage,
)

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
    "LLMClient",
    "MalformedResponse",
    "MemberUnusable",
    "MemoryCooldowns",
    "Message",
    "MockClient",
    "ModelNotFound",
    "OpenAIClient",
    "ProviderError",
    "ProviderTimeout",
    "QuotaExhausted",
    "RateLimited",
    "RequestRejected",
    "Restarted",
    "RoutingTimeout",
    "ServerFailed",
    "StreamEvent",
    "StreamInterrupted",
    "TextDelta",
    "Unavailable",
    "Usage",
    "build_client",
    "fan_out",
    "load_config",
]
