"""The gateway (``fallover serve``): the pools as OpenAI- and Anthropic-compatible HTTP APIs."""

from ._gateway import Gateway
from ._run import DEFAULT_POOL, gateway_from_config, main, serve

__all__ = ["DEFAULT_POOL", "Gateway", "gateway_from_config", "main", "serve"]
