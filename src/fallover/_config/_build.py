"""Building: a Plan into clients, and a pool of two or more into an AsyncRouter.

The protocol a member speaks picks its client class from one table; adding a
protocol is one row here and one client class, never another branch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._client import LLMClient
from .._endpoint import AnthropicClient, OpenAIClient
from .._errors import ConfigError
from .._routing import AsyncRouter, Pace
from ._keys import read_key
from ._load import load_config
from ._resolve import Member, Plan, plan
from ._schema import Config, Protocol
from ._validate import at

__all__ = ["CLIENTS", "build_client"]

CLIENTS: Mapping[Protocol, Callable[..., LLMClient]] = {
    "openai": OpenAIClient,
    "anthropic": AnthropicClient,
}


def build_client(
    config: Config | None = None, model: str | None = None, *, pool: str | None = None
) -> LLMClient:
    """An AsyncRouter for a pool of two or more members, else the plain client.

    ``model="provider/model"`` pins one endpoint and ignores ``routing``;
    ``pool="NAME"`` builds ``[pools.NAME]`` (or the pool ``routing.name`` names).
    """
    config = config if config is not None else load_config()
    p = plan(config, model, pool=pool)
    r = p.routing
    if len(p.members) == 1:
        return _client(p.members[0], p, max_retry_wait=r.max_retry_wait)
    # Inside a pool, a member leaves max_retry_wait to the pool's call.
    clients = [_client(m, p, max_retry_wait=None) for m in p.members]
    # The router checks its settings with the rules the config was checked with;
    # what it still refuses is named at the pool's table.
    with at(p.path, p.where):
        return AsyncRouter(
            clients,
            policy=r.policy,  # type: ignore[arg-type]  # validated when the config was loaded
            call_timeout=r.call_timeout,
            cooldown=r.cooldown,
            cooldown_max=r.cooldown_max,
            max_retry_wait=r.max_retry_wait,
            store=_store(p),
            name=r.name,
            weights=[m.weight for m in p.members],
            limits={
                m.alias: Pace(rpm=m.rpm, tpm=m.tpm)
                for m in p.members
                if m.rpm is not None or m.tpm is not None
            },
            hedge_after=r.hedge_after,
        )


def _client(member: Member, p: Plan, *, max_retry_wait: float | None) -> LLMClient:
    api_key = read_key(
        member.key, alias=member.alias, provider=member.provider, path=p.path, where=member.where
    )
    return CLIENTS[member.protocol](
        model=member.model,
        api_key=api_key,
        base_url=member.base_url,
        timeout=member.timeout,
        first_token_timeout=member.first_token_timeout,
        idle_timeout=member.idle_timeout,
        max_retries=member.max_retries,
        max_retry_wait=max_retry_wait,
        headers=member.headers,
        context_window=member.context_window,
        alias=member.alias,
        max_body_bytes=member.max_body_bytes,
        max_line_bytes=member.max_line_bytes,
        max_connections=member.max_connections,
        capabilities=member.capabilities,
        extra_body=member.extra_body,
        provider=member.provider,
    )


def _store(p: Plan) -> Any:
    r = p.routing
    if r.store == "memory":
        return None
    try:
        from .._routing import RedisCooldowns
    except ImportError as exc:
        raise ConfigError(
            "a redis store needs the redis package: pip install 'fallover[redis]'",
            path=p.path,
            key=f"{p.where}.store",
        ) from exc
    name = r.name or ",".join(m.alias for m in p.members)
    return RedisCooldowns(r.store, pool=name)
