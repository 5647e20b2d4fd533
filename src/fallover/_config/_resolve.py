"""Resolution: a Config (and an optional pinned model) into a Plan of members.

Nothing here reads a key or opens a connection: ``fallover check`` prints a
plan, ``build_client`` builds one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from .. import _defaults as d
from .._errors import ConfigError
from .._redact import redact_url
from .._types import CAPABILITIES
from ._keys import KeySource, key_source
from ._presets import PRESETS, Preset, auto_pool
from ._schema import Config, Protocol, ProviderConfig, RouteEntry, RoutingConfig

__all__ = ["Member", "Plan", "plan", "pools", "unconfigured"]

T = TypeVar("T")


class Member(msgspec.Struct, kw_only=True, frozen=True):
    """One resolved endpoint: everything but the key itself."""

    alias: str
    provider: str
    protocol: Protocol
    base_url: str
    model: str
    key: KeySource
    timeout: float | None = d.TIMEOUT
    first_token_timeout: float | None = d.FIRST_TOKEN_TIMEOUT
    idle_timeout: float | None = d.IDLE_TIMEOUT
    max_retries: int | None = None  # None: the standalone or pooled default, per call
    context_window: int | None = None
    headers: dict[str, str] | None = None
    max_body_bytes: int = d.MAX_BODY_BYTES
    max_line_bytes: int = d.MAX_LINE_BYTES
    max_connections: int | None = d.MAX_CONNECTIONS
    capabilities: frozenset[str] = CAPABILITIES
    extra_body: dict[str, Any] | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float = d.WEIGHT
    where: str = "model"  # the config key that put it in the pool

    def __repr__(self) -> str:
        return (
            f"Member(alias={self.alias!r}, base_url={redact_url(self.base_url)!r}, "
            f"key={self.key_source!r})"
        )

    @property
    def key_source(self) -> str:
        """Where the key comes from, without the key."""
        return self.key.describe()

    @property
    def key_env(self) -> str | None:
        """The environment variable holding the key, if that is its source."""
        return self.key.env

    @property
    def key_literal(self) -> str | None:
        """The key written in the config file, if that is its source."""
        return self.key.literal


class Plan(msgspec.Struct, kw_only=True, frozen=True):
    """The resolved pool and its routing settings."""

    members: tuple[Member, ...]
    routing: RoutingConfig  # a named pool's own keys over [routing]'s; name is the pool's
    path: str | None
    auto: bool = False  # the automatic pool: presets whose keys are set
    where: str = "routing"  # the config table of these routing settings

    @property
    def pool(self) -> str | None:
        """The pool's name (``routing.name`` or a ``[pools.NAME]``), or None."""
        return self.routing.name


def pools(config: Config) -> tuple[str, ...]:
    """The names a pool can be chosen by: ``routing.name`` then every ``[pools.NAME]``."""
    main = (config.routing.name,) if config.routing.name else ()
    return (*main, *config.pools)


def unconfigured(
    config: Config, model: str | None = None, *, env: Mapping[str, str] | None = None
) -> bool:
    """No file, nothing pinned and no preset key set: there is no pool to build.

    ``plan`` raises ConfigError in this case; the command line uses its
    built-in simulator instead. Both read this one predicate.
    """
    if model or config.path or config.model or config.routing.models:
        return False
    return not auto_pool(env)


def plan(
    config: Config,
    model: str | None = None,
    *,
    pool: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """Resolve the pool without touching any key.

    The pool is, first match wins: the pinned ``model``; the named ``pool``;
    ``routing.models``; the top-level ``model``; the automatic pool (``auto_pool``).
    """
    r = config.routing
    if model is not None and pool is not None:
        raise ValueError("pin a model or choose a pool, not both")
    if model is not None:
        provider, m = _split(model, config=config, key="--model")
        return Plan(
            members=(_member(config, provider, m, key="--model"),), routing=r, path=config.path
        )
    if pool is not None and pool in config.pools:
        key = f"pools.{pool}"
        return Plan(
            members=_entries(config, config.pools[pool].models, f"{key}.models"),
            routing=config.pools[pool].over(r, pool),
            path=config.path,
            where=key,
        )
    if pool is not None and (pool != r.name or not r.models):
        known = ", ".join(pools(config)) or "none: add [pools.NAME] or routing.name"
        raise ConfigError(
            f"no pool named {pool!r} (known: {known})", path=config.path, key=f"pools.{pool}"
        )
    if r.models:
        members = _entries(config, r.models, "routing.models")
        return Plan(members=members, routing=r, path=config.path)
    if config.model:
        provider, m = _split(config.model, config=config, key="model")
        return Plan(
            members=(_member(config, provider, m, key="model"),), routing=r, path=config.path
        )
    names = auto_pool(env)
    if not names:
        raise ConfigError(
            "no model configured and no provider key in the environment "
            '(set model = "provider/model", or a key such as OPENAI_API_KEY)',
            path=config.path,
            key="model",
        )
    members = tuple(_member(config, name, None, key=f"providers.{name}") for name in names)
    return Plan(members=members, routing=r, path=config.path, auto=True)


def _entries(config: Config, entries: Sequence[RouteEntry], key: str) -> tuple[Member, ...]:
    members = tuple(
        _member(
            config,
            entry.provider,
            entry.model,
            key=f"{key}[{i}]",
            context_window=entry.context_window,
            weight=entry.weight,
        )
        for i, entry in enumerate(entries)
    )
    _no_duplicates(members, config.path, key)
    return members


def _no_duplicates(members: tuple[Member, ...], path: str | None, key: str) -> None:
    seen: dict[str, int] = {}
    for i, mem in enumerate(members):
        if mem.alias in seen:
            raise ConfigError(
                f"{mem.alias} is already {key}[{seen[mem.alias]}]", path=path, key=f"{key}[{i}]"
            )
        seen[mem.alias] = i


def _provider(config: Config, name: str, key: str) -> tuple[Preset | None, ProviderConfig]:
    preset = PRESETS.get(name)
    declared = config.providers.get(name)
    if preset is None and declared is None:
        known = ", ".join(sorted({*PRESETS, *config.providers}))
        raise ConfigError(f"{name!r} is not a provider (known: {known})", path=config.path, key=key)
    return preset, declared or ProviderConfig()


def _member(
    config: Config,
    provider: str,
    model: str | None,
    *,
    key: str,
    context_window: int | None = None,
    weight: float | None = None,
) -> Member:
    preset, p = _provider(config, provider, f"{key}.provider" if key.endswith("]") else key)
    model = model or p.model or (preset.model if preset else None)
    if not model:
        raise ConfigError(
            f"no model (set model here or providers.{provider}.model)", path=config.path, key=key
        )
    protocol: Protocol = p.protocol or (preset.protocol if preset else "openai")
    base_url = p.base_url
    if base_url is None and preset is not None:
        base_url = (os.environ.get(preset.base_url_env) if preset.base_url_env else None) or (
            preset.base_url
        )
    assert base_url is not None  # validate() requires it for a provider that is not a preset
    return Member(
        alias=f"{provider}/{model}",
        provider=provider,
        protocol=protocol,
        base_url=base_url,
        model=model,
        key=key_source(preset, p),
        timeout=p.timeout if p.timeout is not None else d.TIMEOUT,
        first_token_timeout=_or(p.first_token_timeout, d.FIRST_TOKEN_TIMEOUT),
        idle_timeout=_or(p.idle_timeout, d.IDLE_TIMEOUT),
        max_retries=p.max_retries,
        context_window=context_window or p.context_window,
        headers=p.headers,
        max_body_bytes=_or(p.max_body_bytes, d.MAX_BODY_BYTES),
        max_line_bytes=_or(p.max_line_bytes, d.MAX_LINE_BYTES),
        max_connections=_or(p.max_connections, d.MAX_CONNECTIONS),
        capabilities=_capabilities(preset, p, model),
        extra_body=p.extra_body,
        rpm=p.rpm,
        tpm=p.tpm,
        weight=_or(weight, d.WEIGHT),
        where=key,
    )


def _capabilities(preset: Preset | None, p: ProviderConfig, model: str) -> frozenset[str]:
    """The config's list, else the preset's for this model, else everything."""
    if p.capabilities is not None:
        return frozenset(p.capabilities)
    return preset.capabilities_of(model) if preset is not None else CAPABILITIES


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def _split(spec: str, *, config: Config, key: str) -> tuple[str, str | None]:
    provider, sep, model = spec.partition("/")
    if not provider:
        raise ConfigError(f"{spec!r} is not provider/model", path=config.path, key=key)
    return provider, (model if sep else None)
