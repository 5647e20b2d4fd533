"""Finding the configuration file and decoding it into a Config.

msgspec's validation errors are translated here, once, into ``ConfigError``
naming the file and the key path (``routing.models[1].provider``) in words a
config author reads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import msgspec.inspect as mi

from .._errors import ConfigError
from ._schema import Config
from ._validate import validate

__all__ = ["decode", "find_config", "load_config"]

log = logging.getLogger("fallover")

T = TypeVar("T")

# Config fields holding a table of tables ([providers.NAME]): each entry is
# decoded on its own, because msgspec reports a dict key as ``[...]`` and an
# error must name the entry.
_TABLES_OF_TABLES: tuple[str, ...] = ("providers", "pools")
# Config fields that are not keys of the file.
_NOT_KEYS: frozenset[str] = frozenset(("path",))


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


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Find and decode the configuration (TOML, or JSON by extension); no file is valid."""
    found = find_config(path)
    if found is None:
        return Config()
    name = str(found)
    config = decode(_read(found, name), name)
    _warn_if_exposed(found, config)
    return config


def _read(found: Path, name: str) -> dict[str, Any]:
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
    return data


def decode(data: dict[str, Any], path: str | None) -> Config:
    """The validated Config for decoded file contents; errors name ``path`` and the key."""
    for key in _NOT_KEYS & data.keys():
        raise ConfigError(f"unknown key {key!r} at the top level", path=path, key=key)
    for field in _TABLES_OF_TABLES:
        tables = data.get(field)
        if isinstance(tables, dict):
            entry = _field_type(Config, field)
            for name, value in tables.items():
                _convert(value, entry, path, at=f"{field}.{name}")
    config = msgspec.structs.replace(_convert(data, Config, path, at=""), path=path)
    validate(config)
    return config


def _convert(value: Any, type_: type[T], path: str | None, *, at: str) -> T:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        raise _translate(exc, type_, path, at) from None


# -- msgspec's words into a config author's -------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<at>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_STEP = re.compile(r"\.([^.\[]+)|(\[[^\]]*\])")
_KINDS = {
    "float": "a number",
    "int": "a whole number",
    "str": "a string",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "null": "nothing",
}


def _translate(
    exc: msgspec.ValidationError, root: type[Any], path: str | None, prefix: str
) -> ConfigError:
    m = _AT.match(str(exc))
    msg, at = (m.group("msg"), m.group("at") or "") if m else (str(exc), "")
    table = _join(prefix, at)
    unknown = _UNKNOWN.match(msg)
    if unknown:
        name = unknown.group("name")
        known = ", ".join(_fields_at(root, at))
        where = f"[{table}]" if table else "the top level"
        return ConfigError(
            f"unknown key {name!r} in {where} (known: {known})",
            path=path,
            key=_join(table, f".{name}"),
        )
    missing = _MISSING.match(msg)
    if missing:
        name = missing.group("name")
        where = f"[{table}]" if table else "the top level"
        return ConfigError(
            f"{where} needs the key {name!r}", path=path, key=_join(table, f".{name}")
        )
    return ConfigError(_plain(msg), path=path, key=table or None)


def _join(prefix: str, at: str) -> str:
    """``providers.x`` + ``.headers[...]`` → ``providers.x.headers``."""
    at = at.replace("[...]", "")
    if not prefix:
        return at.lstrip(".")
    return prefix + at if at.startswith("[") or not at else f"{prefix}.{at.lstrip('.')}"


def _field_type(struct: type[Any], name: str) -> type[Any]:
    """The Struct type of the values of ``struct.name`` (a table of tables)."""
    info = _unwrap(next(f.type for f in _struct(struct).fields if f.name == name))
    assert isinstance(info, mi.DictType)
    assert isinstance(info.value_type, mi.StructType)
    return info.value_type.cls


def _struct(struct: type[Any]) -> mi.StructType:
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return info


def _fields_at(root: type[Any], at: str) -> list[str]:
    """The keys of the table at msgspec path ``at`` below ``root`` (for 'unknown key')."""
    info: mi.Type = _struct(root)
    for name, _index in _STEP.findall(at):
        info = _unwrap(info)
        if name and isinstance(info, mi.StructType):
            info = next(f.type for f in info.fields if f.name == name)
        elif isinstance(info, mi.ListType | mi.DictType):
            info = info.item_type if isinstance(info, mi.ListType) else info.value_type
    info = _unwrap(info)
    if not isinstance(info, mi.StructType):
        return []
    return [f.name for f in info.fields if not (info.cls is Config and f.name in _NOT_KEYS)]


def _unwrap(info: mi.Type) -> mi.Type:
    """The table or list inside an optional field."""
    if isinstance(info, mi.UnionType):
        for t in info.types:
            if isinstance(t, mi.StructType | mi.DictType | mi.ListType):
                return t
    return info


def _plain(msg: str) -> str:
    """msgspec's "Expected `float` > 0.0, got `str`" in words a config author reads."""
    msg = msg.replace("got `float`", "got a fraction")
    msg = re.sub(
        r"`([\w |]+)`",
        lambda m: " or ".join(_KINDS.get(k, k) for k in m.group(1).split(" | ") if k != "null"),
        msg,
    )
    msg = re.sub(r"(>=?|<=?) (\d+)\.0\b", r"\1 \2", msg)
    return msg[:1].lower() + msg[1:]


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
