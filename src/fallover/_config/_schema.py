"""The configuration schema: one msgspec Struct per table, unknown keys rejected.

Types and bounds a decoder can check live here (a timeout is a positive
number); rules across fields live in ``_validate.py``; defaults come from
``fallover._defaults``.
"""

import re
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from .. import _defaults as d
from .._redact import redact_url

__all__ = [
    "Config",
    "Count",
    "PoolConfig",
    "Port",
    "Positive",
    "Protocol",
    "ProviderConfig",
    "RouteEntry",
    "RoutingConfig",
    "Seconds",
    "ServerConfig",
    "Tokens",
]

Seconds: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
Delay: TypeAlias = Annotated[float, msgspec.Meta(ge=0)]
Positive: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]
Tokens: TypeAlias = Annotated[int, msgspec.Meta(gt=0)]
Port: TypeAlias = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Protocol: TypeAlias = Literal["openai", "anthropic"]

# Header names whose values are credentials: never shown.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


class ProviderConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """``[providers.NAME]``: one provider's endpoint, key and defaults."""

    protocol: Protocol | None = None
    base_url: str | None = None
    api_key: str | None = None
    api_key_env: str | None = None
    api_key_cmd: str | list[str] | None = None
    model: str | None = None
    models: list[str] | None = None
    timeout: Seconds | None = None
    first_token_timeout: Seconds | None = None
    idle_timeout: Seconds | None = None
    max_retries: Count | None = None
    context_window: Tokens | None = None
    headers: dict[str, str] | None = None
    max_body_bytes: Tokens | None = None
    max_line_bytes: Tokens | None = None
    max_connections: Tokens | None = None
    capabilities: list[str] | None = None
    extra_body: dict[str, Any] | None = None
    rpm: Tokens | None = None
    tpm: Tokens | None = None

    def __repr__(self) -> str:
        fields: dict[str, Any] = {
            f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not None
        }
        if self.api_key is not None:
            fields["api_key"] = "<redacted>"
        if self.base_url is not None:
            fields["base_url"] = redact_url(self.base_url)
        if self.headers:
            fields["headers"] = shown_headers(self.headers)
        return f"ProviderConfig({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def shown_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with the values of credential-like names redacted."""
    return {k: "<redacted>" if _SECRET_HEADER.search(k) else v for k, v in headers.items()}


class RouteEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One ``routing.models`` entry."""

    provider: str
    model: str | None = None
    context_window: Tokens | None = None
    weight: Positive | None = None


class RoutingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[routing]``: the pool and how calls walk it."""

    policy: str = d.POLICY
    models: list[RouteEntry] | None = None
    call_timeout: Seconds | None = d.CALL_TIMEOUT
    cooldown: Seconds = d.COOLDOWN
    cooldown_max: Seconds = d.COOLDOWN_MAX
    max_retry_wait: Seconds = d.MAX_RETRY_WAIT
    hedge_after: Delay = d.HEDGE_AFTER
    store: str = d.STORE
    name: str | None = None

    def __repr__(self) -> str:
        return f"RoutingConfig({_shown_fields(self)})"


def _shown_fields(table: msgspec.Struct) -> str:
    """``key=value, ...`` of the fields that are set, a store URL without its password."""
    return ", ".join(
        f"{f}={redact_url(v) if f == 'store' else v!r}"
        for f in table.__struct_fields__
        if (v := getattr(table, f)) is not None
    )


class PoolConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """``[pools.NAME]``: another pool; the table's name is the pool's name.

    A key left out takes its value from ``[routing]``.
    """

    models: Annotated[list[RouteEntry], msgspec.Meta(min_length=1)]
    policy: str | None = None
    call_timeout: Seconds | None = None
    cooldown: Seconds | None = None
    cooldown_max: Seconds | None = None
    max_retry_wait: Seconds | None = None
    hedge_after: Delay | None = None
    store: str | None = None

    def __repr__(self) -> str:
        return f"PoolConfig({_shown_fields(self)})"

    def over(self, routing: RoutingConfig, name: str) -> RoutingConfig:
        """The routing settings of this pool: its own keys, else ``routing``'s."""
        own = {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not None}
        return msgspec.structs.replace(routing, **own, name=name)


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[server]``: ``fallover serve``, the gateway."""

    host: str = d.SERVER_HOST
    port: Port = d.SERVER_PORT
    api_keys_env: str | None = None
    max_body_bytes: Tokens = d.SERVER_MAX_BODY_BYTES
    max_concurrency: Tokens = d.SERVER_MAX_CONCURRENCY


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A whole configuration; ``path`` is the file it came from (None: no file)."""

    model: str | None = None
    providers: dict[str, ProviderConfig] = {}
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    pools: dict[str, PoolConfig] = {}
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    path: str | None = None

    def __repr__(self) -> str:
        return (
            f"Config(path={self.path!r}, model={self.model!r}, "
            f"providers={sorted(self.providers)!r}, routing={self.routing!r}, "
            f"pools={sorted(self.pools)!r})"
        )


# Tracebacks and reprs read ``fallover.Config``: it is public under that name. (The
# annotations above are not strings, so msgspec never looks them up in that module.)
Config.__module__ = "fallover"
