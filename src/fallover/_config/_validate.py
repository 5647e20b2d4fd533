"""Rules the schema cannot express, checked once when a config is loaded.

Rules shared with the clients and the router come from ``fallover._rules``;
their ``ValueError`` becomes a ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .. import _rules
from .._errors import ConfigError
from ._presets import PRESETS
from ._schema import Config, ProviderConfig, RoutingConfig

__all__ = ["validate"]


@contextlib.contextmanager
def at(path: str | None, key: str) -> Iterator[None]:
    """Turn a shared rule's ``ValueError`` into a ConfigError at ``key`` of ``path``."""
    try:
        yield
    except ValueError as exc:
        raise ConfigError(str(exc), path=path, key=key) from None


def validate(config: Config) -> None:
    """Raise ConfigError for the first rule ``config`` breaks."""
    path = config.path
    _routing(config.routing, path, "routing")
    for name, pool in config.pools.items():
        key = f"pools.{name}"
        if not name or "/" in name:
            # A gateway request's model is a pool's name or provider/model.
            raise ConfigError(
                f"{name!r} cannot name a pool: a name is not empty and has no '/' "
                "(a gateway reads that as provider/model)",
                path=path,
                key=key,
            )
        if name == config.routing.name:
            raise ConfigError(
                f"{name!r} is already routing.name: name each pool once", path=path, key=key
            )
        _routing(pool.over(config.routing, name), path, key)
    for name, p in config.providers.items():
        _provider(name, p, path)


def _provider(name: str, p: ProviderConfig, path: str | None) -> None:
    key = f"providers.{name}"
    given = [k for k in ("api_key", "api_key_env", "api_key_cmd") if getattr(p, k)]
    if len(given) > 1:
        raise ConfigError(f"set only one of {', '.join(given)}", path=path, key=key)
    if name not in PRESETS and p.protocol is None:
        raise ConfigError(
            'protocol is required for a provider that is not built in ("openai" or "anthropic")',
            path=path,
            key=f"{key}.protocol",
        )
    if name not in PRESETS and p.base_url is None:
        raise ConfigError(
            "base_url is required for a provider that is not built in",
            path=path,
            key=f"{key}.base_url",
        )
    if p.capabilities is not None:
        with at(path, f"{key}.capabilities"):
            _rules.check_capabilities(p.capabilities)
    if p.extra_body is not None:
        with at(path, f"{key}.extra_body"):
            _rules.check_extra_body(p.extra_body)


def _routing(r: RoutingConfig, path: str | None, key: str) -> None:
    with at(path, f"{key}.policy"):
        _rules.check_policy(r.policy)
    with at(path, f"{key}.cooldown_max"):
        _rules.check_cooldowns(r.cooldown, r.cooldown_max)
    with at(path, f"{key}.store"):
        _rules.check_store(r.store)
