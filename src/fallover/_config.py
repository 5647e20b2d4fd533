"""Configuration: the schema, where it is looked up, and how it becomes a client.

``load_config()`` finds and decodes the file (DESIGN section 6);
``build_client()`` resolves providers, models and keys into an AsyncRouter for a
pool of two or more, or the plain client for one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import stat
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from ._classify import redact, redact_url
from ._client import LLMClient
from ._errors import ConfigError
from ._presets import PRESETS, Preset
from ._providers._anthropic import AnthropicClient
from ._providers._base import BaseClient
from ._providers._openai import OpenAIClient
from ._router import POLICIES, AsyncRouter

__all__ = [
    "Config",
    "Member",
    "Plan",
    "ProviderConfig",
    "RouteEntry",
    "RoutingConfig",
    "build_client",
    "find_config",
    "load_config",
    "plan",
]

log = logging.getLogger("fallover")

Seconds: TypeAlias = Annotated[float, msgspec.Meta(gt=0)]
Count: TypeAlias = Annotated[int, msgspec.Meta(ge=0)]
Tokens: TypeAlias = Annotated[int, msgspec.Meta(gt=0)]
Protocol_: TypeAlias = Literal["openai", "anthropic"]

KEY_CMD_TIMEOUT = 10.0
# Header names whose values are credentials: never shown.
_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)


class ProviderConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """``[providers.NAME]``: one provider's endpoint, key and defaults."""

    protocol: Protocol_ | None = None
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

    def __repr__(self) -> str:
        fields = {
            f: getattr(self, f) for f in self.__struct_fields__ if getattr(self, f) is not None
        }
        if self.api_key is not None:
            fields["api_key"] = "<redacted>"
        if self.headers:
            fields["headers"] = {
                k: "<redacted>" if _SECRET_HEADER.search(k) else v for k, v in self.headers.items()
            }
        return f"ProviderConfig({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class RouteEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One ``routing.models`` entry."""

    provider: str
    model: str | None = None
    context_window: Tokens | None = None


class RoutingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``[routing]``: the pool and how calls walk it."""

    policy: str = "priority"
    models: list[RouteEntry] | None = None
    call_timeout: Seconds | None = 180.0
    cooldown: Seconds = 5.0
    cooldown_max: Seconds = 60.0
    max_retry_wait: Seconds = 10.0
    store: str = "memory"
    name: str | None = None

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f}={redact_url(v) if f == 'store' else v!r}"
            for f in self.__struct_fields__
            if (v := getattr(self, f)) is not None
        )
        return f"RoutingConfig({fields})"


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A whole configuration; ``path`` is the file it came from (None: defaults)."""

    model: str | None = None
    providers: dict[str, ProviderConfig] = {}
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    path: str | None = None

    def __repr__(self) -> str:
        return (
            f"Config(path={self.path!r}, model={self.model!r}, "
            f"providers={sorted(self.providers)!r}, routing={self.routing!r})"
        )


# -- finding and reading -------------------------------------------------------------


def find_config(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The file the lookup chain picks, or None when there is none.

    Order: the explicit path (which must exist), ``$FALLOVER_CONFIG``,
    ``./fallover.toml``, ``$XDG_CONFIG_HOME/fallover/config.toml``.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError("no such config file", path=str(p))
        return p
    env = os.environ.get("FALLOVER_CONFIG")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError("no such config file (from $FALLOVER_CONFIG)", path=env)
        return p
    local = Path("fallover.toml")
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "fallover" / "config.toml"
    return user if user.is_file() else None


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<at>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")


def _dotted(at: str) -> str:
    return at.lstrip(".")


def _known_fields(at: str) -> list[str]:
    """Field names of the table at msgspec path ``at`` (for 'unknown key' messages)."""
    t: Any = Config
    for part in re.findall(r"\.([A-Za-z_][\w-]*)|\[[^\]]*\]", at):
        if not part:  # an index into routing.models
            t = RouteEntry
            continue
        if t is Config and part == "providers":
            t = "providers"
        elif t == "providers":
            t = ProviderConfig
        else:
            t = {"routing": RoutingConfig}.get(part, t)
    if isinstance(t, type) and issubclass(t, msgspec.Struct):
        return [f for f in t.__struct_fields__ if not (t is Config and f == "path")]
    return []


def _validation_error(
    exc: msgspec.ValidationError, path: str | None, *, provider: str | None = None
) -> ConfigError:
    m = _AT.match(str(exc))
    msg, at = (m.group("msg"), m.group("at") or "") if m else (str(exc), "")
    if provider is not None:
        at = f".providers.{provider}{at}"
    unknown = _UNKNOWN.match(msg)
    if unknown:
        name = unknown.group("name")
        table = _dotted(at)
        fields = list(ProviderConfig.__struct_fields__) if provider else _known_fields(at)
        known = ", ".join(fields)
        where = f"[{table}]" if table else "the top level"
        key = f"{table}.{name}" if table else name
        return ConfigError(f"unknown key {name!r} in {where} (known: {known})", path=path, key=key)
    return ConfigError(_plain(msg), path=path, key=_dotted(at) or None)


_KINDS = {
    "float": "a number",
    "int": "a whole number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def _plain(msg: str) -> str:
    """msgspec's "Expected `float` > 0.0, got `str`" in words a config author reads."""
    msg = re.sub(
        r"`([\w |]+)`",
        lambda m: " or ".join(_KINDS.get(k, k) for k in m.group(1).split(" | ") if k != "null"),
        msg,
    )
    msg = re.sub(r" > 0\.0\b", " > 0", msg)
    return msg[:1].lower() + msg[1:]


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Find and decode the configuration (TOML, or JSON by extension); no file is valid."""
    found = find_config(path)
    if found is None:
        return Config()
    name = str(found)
    try:
        raw = found.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=name) from exc
    try:
        if found.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"not valid {found.suffix.lstrip('.').upper() or 'TOML'}: {exc}", path=name
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", path=name) from exc
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a table", path=name)
    if "path" in data:
        raise ConfigError("unknown key 'path' at the top level", path=name, key="path")
    providers = data.get("providers")
    if isinstance(providers, dict):
        # Checked one by one so an error names the provider (msgspec says "providers[...]").
        for pname, pdata in providers.items():
            try:
                msgspec.convert(pdata, ProviderConfig)
            except msgspec.ValidationError as exc:
                raise _validation_error(exc, name, provider=str(pname)) from None
    try:
        config = msgspec.convert(data, Config)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc, name) from None
    config = msgspec.structs.replace(config, path=name)
    _validate(config)
    _warn_if_exposed(found, config)
    return config


def _warn_if_exposed(found: Path, config: Config) -> None:
    if not any(p.api_key for p in config.providers.values()):
        return
    try:
        mode = found.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "%s holds an api_key and is readable by others: chmod 600 it or use api_key_env",
            found,
        )


def _validate(config: Config) -> None:
    """Checks the schema cannot express."""
    path = config.path
    r = config.routing
    if r.policy not in POLICIES:
        raise ConfigError(
            f"{r.policy!r} is not a policy (choose {' or '.join(POLICIES)})",
            path=path,
            key="routing.policy",
        )
    if r.cooldown_max < r.cooldown:
        raise ConfigError(
            f"{r.cooldown_max:g} is below routing.cooldown ({r.cooldown:g})",
            path=path,
            key="routing.cooldown_max",
        )
    if not (r.store == "memory" or r.store.startswith(("redis://", "rediss://", "unix://"))):
        raise ConfigError(
            f'{r.store!r} is not a store (use "memory" or a redis:// URL)',
            path=path,
            key="routing.store",
        )
    for name, p in config.providers.items():
        given = [k for k in ("api_key", "api_key_env", "api_key_cmd") if getattr(p, k)]
        if len(given) > 1:
            raise ConfigError(
                f"set only one of {', '.join(given)}", path=path, key=f"providers.{name}"
            )
        if name not in PRESETS and p.protocol is None:
            raise ConfigError(
                "protocol is required for a provider that is not built in "
                '("openai" or "anthropic")',
                path=path,
                key=f"providers.{name}.protocol",
            )
        if name not in PRESETS and p.base_url is None:
            raise ConfigError(
                "base_url is required for a provider that is not built in",
                path=path,
                key=f"providers.{name}.base_url",
            )


# -- resolution ----------------------------------------------------------------------


class Member(msgspec.Struct, kw_only=True, frozen=True):
    """One resolved endpoint: everything but the key itself."""

    alias: str
    provider: str
    protocol: Protocol_
    base_url: str
    model: str
    key_source: str  # "env OPENAI_API_KEY", "api_key", "cmd pass show x", "none"
    key_env: str | None = None
    key_literal: str | None = None
    key_cmd: str | list[str] | None = None
    key_required: bool = True
    timeout: float | None = 60.0
    first_token_timeout: float | None = None
    idle_timeout: float | None = None
    max_retries: int | None = None
    context_window: int | None = None
    headers: dict[str, str] | None = None
    max_body_bytes: int | None = None
    max_line_bytes: int | None = None
    where: str = "model"  # the config key that put it in the pool

    def __repr__(self) -> str:
        return f"Member(alias={self.alias!r}, base_url={self.base_url!r}, key={self.key_source!r})"


class Plan(msgspec.Struct, kw_only=True, frozen=True):
    """The resolved pool and its routing settings."""

    members: tuple[Member, ...]
    routing: RoutingConfig
    path: str | None
    auto: bool = False  # built from presets whose keys are present, without a config


def _provider(config: Config, name: str, key: str) -> tuple[Preset | None, ProviderConfig]:
    preset = PRESETS.get(name)
    declared = config.providers.get(name)
    if preset is None and declared is None:
        known = ", ".join(sorted({*PRESETS, *config.providers}))
        raise ConfigError(f"{name!r} is not a provider (known: {known})", path=config.path, key=key)
    return preset, declared or ProviderConfig()


def _member(
    config: Config, provider: str, model: str | None, *, key: str, context_window: int | None = None
) -> Member:
    preset, p = _provider(config, provider, f"{key}.provider" if key.endswith("]") else key)
    model = model or p.model or (preset.model if preset else None)
    if not model:
        raise ConfigError(
            f"no model (set model here or providers.{provider}.model)", path=config.path, key=key
        )
    protocol: Protocol_ = p.protocol or (preset.protocol if preset else "openai")
    base_url = p.base_url
    if base_url is None and preset is not None:
        base_url = (os.environ.get(preset.base_url_env) if preset.base_url_env else None) or (
            preset.base_url
        )
    assert base_url is not None  # _validate requires it for undeclared presets
    key_env = key_literal = None
    key_cmd: str | list[str] | None = None
    if p.api_key or p.api_key_env or p.api_key_cmd:
        key_literal, key_env, key_cmd = p.api_key, p.api_key_env, p.api_key_cmd
        required = True
    elif preset is not None:
        key_env, required = preset.key_env, preset.key_required
    else:
        required = False  # a declared provider with no key: a local server
    if key_literal:
        source = "api_key (in the config file)"
    elif key_env:
        source = f"env {key_env}"
    elif key_cmd:
        source = "cmd " + redact(key_cmd if isinstance(key_cmd, str) else shlex.join(key_cmd))
    else:
        source = "none"
    return Member(
        alias=f"{provider}/{model}",
        provider=provider,
        protocol=protocol,
        base_url=base_url,
        model=model,
        key_source=source,
        key_env=key_env,
        key_literal=key_literal,
        key_cmd=key_cmd,
        key_required=required,
        timeout=p.timeout if p.timeout is not None else 60.0,
        first_token_timeout=p.first_token_timeout,
        idle_timeout=p.idle_timeout,
        max_retries=p.max_retries,
        context_window=context_window or p.context_window,
        headers=p.headers,
        max_body_bytes=p.max_body_bytes,
        max_line_bytes=p.max_line_bytes,
        where=key,
    )


def _split(spec: str, *, config: Config, key: str) -> tuple[str, str | None]:
    provider, sep, model = spec.partition("/")
    if not provider:
        raise ConfigError(f"{spec!r} is not provider/model", path=config.path, key=key)
    return provider, (model if sep else None)


def plan(config: Config, model: str | None = None, *, env: Mapping[str, str] | None = None) -> Plan:
    """Resolve the pool without touching any key."""
    r = config.routing
    if model is not None:
        provider, m = _split(model, config=config, key="--model")
        return Plan(
            members=(_member(config, provider, m, key="--model"),), routing=r, path=config.path
        )
    if r.models:
        members = tuple(
            _member(
                config,
                entry.provider,
                entry.model,
                key=f"routing.models[{i}]",
                context_window=entry.context_window,
            )
            for i, entry in enumerate(r.models)
        )
        seen: dict[str, int] = {}
        for i, mem in enumerate(members):
            if mem.alias in seen:
                raise ConfigError(
                    f"{mem.alias} is already routing.models[{seen[mem.alias]}]",
                    path=config.path,
                    key=f"routing.models[{i}]",
                )
            seen[mem.alias] = i
        return Plan(members=members, routing=r, path=config.path)
    if config.model:
        provider, m = _split(config.model, config=config, key="model")
        return Plan(
            members=(_member(config, provider, m, key="model"),), routing=r, path=config.path
        )
    # Nothing chosen: every preset whose key is present, in PRESETS order.
    environ = os.environ if env is None else env
    auto = tuple(
        _member(config, name, None, key=f"providers.{name}")
        for name, preset in PRESETS.items()
        if preset.key_env and preset.key_required and environ.get(preset.key_env)
    )
    if not auto:
        raise ConfigError(
            "no model configured and no provider key in the environment "
            '(set model = "provider/model", or a key such as OPENAI_API_KEY)',
            path=config.path,
            key="model",
        )
    return Plan(members=auto, routing=r, path=config.path, auto=True)


def _key(member: Member, path: str | None) -> str | None:
    if member.key_literal:
        return member.key_literal
    if member.key_env:
        value = os.environ.get(member.key_env)
        if value:
            return value.strip()
        if member.key_required:
            raise ConfigError(
                f"{member.alias} needs an API key: set the environment variable {member.key_env}",
                path=path,
                key=member.where,
            )
        return None
    if member.key_cmd:
        return _run_key_cmd(member, path)
    return None


def _run_key_cmd(member: Member, path: str | None) -> str:
    cmd = member.key_cmd
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])
    shown = redact(shlex.join(argv))  # a command may carry a token inline
    key = f"providers.{member.provider}.api_key_cmd"
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=KEY_CMD_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ConfigError(f"command not found: {shown}", path=path, key=key) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"command {shown} took longer than {KEY_CMD_TIMEOUT:g}s", path=path, key=key
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot run {shown}: {exc.strerror}", path=path, key=key) from None
    if done.returncode != 0:
        # Never echo its output: it may hold the secret or part of it.
        raise ConfigError(
            f"command {shown} exited with status {done.returncode}", path=path, key=key
        )
    value = done.stdout.decode("utf-8", "replace").strip()
    if not value:
        raise ConfigError(f"command {shown} printed no key", path=path, key=key)
    return value


def _client(member: Member, api_key: str | None, *, max_retry_wait: float | None) -> BaseClient:
    cls = AnthropicClient if member.protocol == "anthropic" else OpenAIClient
    extra: dict[str, Any] = {}
    if member.max_body_bytes is not None:
        extra["max_body_bytes"] = member.max_body_bytes
    if member.max_line_bytes is not None:
        extra["max_line_bytes"] = member.max_line_bytes
    return cls(
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
        **extra,
    )


def build_client(config: Config | None = None, model: str | None = None) -> LLMClient:
    """An AsyncRouter for a pool of two or more members, else the plain client.

    ``model="provider/model"`` pins one endpoint and ignores ``routing``.
    """
    config = config if config is not None else load_config()
    p = plan(config, model)
    r = p.routing
    if len(p.members) == 1:
        only = p.members[0]
        return _client(only, _key(only, p.path), max_retry_wait=r.max_retry_wait)
    clients = [_client(m, _key(m, p.path), max_retry_wait=None) for m in p.members]
    return AsyncRouter(
        clients,
        policy=r.policy,  # type: ignore[arg-type]  # validated in _validate
        call_timeout=r.call_timeout,
        cooldown=r.cooldown,
        cooldown_max=r.cooldown_max,
        max_retry_wait=r.max_retry_wait,
        store=_store(r, p),
        name=r.name,
    )


def _store(r: RoutingConfig, p: Plan) -> Any:
    if r.store == "memory":
        return None
    try:
        from ._redis import RedisCooldowns
    except ImportError as exc:
        raise ConfigError(
            "a redis store needs the redis package: pip install 'fallover[redis]'",
            path=p.path,
            key="routing.store",
        ) from exc
    name = r.name or ",".join(m.alias for m in p.members)
    return RedisCooldowns(r.store, pool=name)
