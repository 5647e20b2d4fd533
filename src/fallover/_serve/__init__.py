"""The gateway (``fallover serve``): the pools as OpenAI- and Anthropic-compatible HTTP APIs."""

from ._gateway import MAX_BODY_BYTES, MAX_CONCURRENT, Gateway
from ._run import gateway_from_config, main, serve

__all__ = ["MAX_BODY_BYTES", "MAX_CONCURRENT", "Gateway", "gateway_from_config", "main", "serve"]
