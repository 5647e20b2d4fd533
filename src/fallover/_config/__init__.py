"""Configuration: the file, the plan it resolves to, and the clients built from it.

One concern per module:

- ``_schema``: the tables as msgspec Structs (unknown keys rejected);
- ``_load``: where the file is looked up, decoding, and msgspec's errors
  turned into ``ConfigError`` naming the file and the key;
- ``_validate``: rules across fields, using the shared ``fallover._rules``;
- ``_presets``: the built-in providers and the automatic pool;
- ``_resolve``: a Config into a Plan of members, touching no key;
- ``_keys``: where a key comes from (env, literal, command), read at build time;
- ``_build``: a Plan into clients and an AsyncRouter.

Defaults come from ``fallover._defaults``.
"""

from ._build import CLIENTS, build_client
from ._keys import KeySource
from ._load import decode, find_config, load_config
from ._presets import PRESETS, Preset, auto_pool
from ._resolve import Member, Plan, plan, pools, unconfigured
from ._schema import (
    Config,
    PoolConfig,
    ProviderConfig,
    RouteEntry,
    RoutingConfig,
    ServerConfig,
)

__all__ = [
    "CLIENTS",
    "PRESETS",
    "Config",
    "KeySource",
    "Member",
    "Plan",
    "PoolConfig",
    "Preset",
    "ProviderConfig",
    "RouteEntry",
    "RoutingConfig",
    "ServerConfig",
    "auto_pool",
    "build_client",
    "decode",
    "find_config",
    "load_config",
    "plan",
    "pools",
    "unconfigured",
]
