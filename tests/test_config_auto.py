"""The automatic pool: one answer to "which presets does an empty config use", everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import fallover as f

SRC = Path(f.__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_env(config_env: Path) -> Path:
    """No keys, no config, an empty home and cwd for every test."""
    return config_env


async def fallover(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """Run the command from this checkout's source with only ``env``'s keys set."""
    environ = {**os.environ, "PYTHONPATH": str(SRC), **env}  # config_env cleared the rest
    with anyio.fail_after(60):
        return await anyio.run_process(
            [sys.executable, "-m", "fallover", *args], check=False, cwd=cwd, env=environ
        )


async def test_only_an_optional_key_reviews_against_the_simulator() -> None:
    """With only VLLM_API_KEY set, review uses the built-in simulator instead of exiting 2."""
    Path("a.py").write_text("print('a')\n")
    done = await fallover(Path.cwd(), "review", "a.py", VLLM_API_KEY="x")
    assert done.returncode == 0, done.stderr.decode()
    assert "built-in simulator" in done.stderr.decode()


async def test_check_agrees_with_review_on_an_optional_key() -> None:
    """With only VLLM_API_KEY set, check reports no pool, as review decides."""
    done = await fallover(Path.cwd(), "check", VLLM_API_KEY="x")
    assert done.returncode == 0, done.stderr.decode()
    assert "none configured" in done.stdout.decode()


def test_an_optional_key_never_joins_the_automatic_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """VLLM_API_KEY beside a required key: the pool is that provider alone."""
    monkeypatch.setenv("VLLM_API_KEY", "x")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k")
    client = f.build_client(f.load_config())
    assert client.alias == "deepseek/deepseek-chat"


def test_an_optional_key_alone_is_no_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_client with only VLLM_API_KEY says no provider key is set."""
    monkeypatch.setenv("VLLM_API_KEY", "x")
    with pytest.raises(f.ConfigError, match="no provider key") as info:
        f.build_client(f.load_config())
    assert info.value.key == "model"


def test_config_reports_the_public_module() -> None:
    """fallover.Config names its public module in reprs and tracebacks."""
    assert f.Config.__module__ == "fallover"
    assert f.load_config() == f.Config()
