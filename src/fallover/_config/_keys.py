"""Where a member's API key comes from, and reading it when the client is built.

A key is never read while resolving a plan (``fallover check`` shows where it
would come from), and never shown: a command that fails is named, its output
is not.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import msgspec

from .. import _defaults as d
from .._errors import ConfigError
from .._redact import redact
from ._presets import Preset
from ._schema import ProviderConfig

__all__ = ["KeySource", "key_source", "read_key"]


class KeySource(msgspec.Struct, kw_only=True, frozen=True):
    """One of: an environment variable, the key itself, a command; or nothing."""

    env: str | None = None
    literal: str | None = None
    cmd: str | list[str] | None = None
    required: bool = True

    def __repr__(self) -> str:
        return f"KeySource({self.describe()!r})"

    def describe(self) -> str:
        """Where the key comes from, without the key: ``env OPENAI_API_KEY``."""
        if self.literal:
            return "api_key (in the config file)"
        if self.env:
            return f"env {self.env}"
        if self.cmd:
            return "cmd " + redact(_shown(self.cmd))
        return "none"


def key_source(preset: Preset | None, declared: ProviderConfig) -> KeySource:
    """A declaration's own key setting, else the preset's variable, else none."""
    if declared.api_key or declared.api_key_env or declared.api_key_cmd:
        return KeySource(
            env=declared.api_key_env, literal=declared.api_key, cmd=declared.api_key_cmd
        )
    if preset is not None:
        return KeySource(env=preset.key_env, required=preset.key_required)
    return KeySource(required=False)  # a declared provider with no key: a local server


def read_key(
    source: KeySource, *, alias: str, provider: str, path: str | None, where: str
) -> str | None:
    """The key itself; ConfigError at ``where`` when a required one is missing."""
    if source.literal:
        return source.literal
    if source.env:
        value = os.environ.get(source.env)
        if value:
            return value.strip()
        if source.required:
            raise ConfigError(
                f"{alias} needs an API key: set the environment variable {source.env}",
                path=path,
                key=where,
            )
        return None
    if source.cmd:
        return _run(source.cmd, path=path, key=f"providers.{provider}.api_key_cmd")
    return None


def _shown(cmd: str | list[str]) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)


def _run(cmd: str | list[str], *, path: str | None, key: str) -> str:
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    shown = redact(shlex.join(argv))  # a command may carry a token inline
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            timeout=d.KEY_CMD_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise ConfigError(f"command not found: {shown}", path=path, key=key) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"command {shown} took longer than {d.KEY_CMD_TIMEOUT:g}s", path=path, key=key
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
