"""Configuration: lookup chain, schema errors, resolution, keys and secrets."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

import fallover as f
from fallover._config import plan

from .conftest import Upstream


@pytest.fixture(autouse=True)
def clean_env(config_env: Path) -> Path:
    """No keys, no config, an empty home and cwd for every test."""
    return config_env


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def error(text: str, name: str = "fallover.toml") -> f.ConfigError:
    write(Path(name), text)
    with pytest.raises(f.ConfigError) as info:
        f.build_client(f.load_config())
    return info.value


# -- lookup ------------------------------------------------------------------------


def test_no_file_anywhere_is_valid() -> None:
    """With no file, load_config returns the defaults."""
    config = f.load_config()
    assert config.path is None and config.providers == {}


def test_lookup_chain_order(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit path, then $FALLOVER_CONFIG, then ./fallover.toml, then XDG."""
    xdg = write(clean_env / "xdg" / "fallover" / "config.toml", 'model = "openai/xdg"')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(clean_env / "xdg"))
    assert f.load_config().model == "openai/xdg"
    write(Path("fallover.toml"), 'model = "openai/local"')
    assert f.load_config().model == "openai/local"
    env = write(clean_env / "env.toml", 'model = "openai/env"')
    monkeypatch.setenv("FALLOVER_CONFIG", str(env))
    assert f.load_config().model == "openai/env"
    assert f.load_config(xdg).model == "openai/xdg"


def test_default_xdg_is_under_home(clean_env: Path) -> None:
    """Without XDG_CONFIG_HOME, ~/.config/fallover/config.toml is read."""
    write(clean_env / "home" / ".config" / "fallover" / "config.toml", 'model = "openai/home"')
    assert f.load_config().model == "openai/home"


def test_explicit_missing_file_is_an_error() -> None:
    """An explicit path that does not exist names the path."""
    with pytest.raises(f.ConfigError, match="no such config file") as info:
        f.load_config("nope.toml")
    assert info.value.path == "nope.toml"


def test_json_by_extension() -> None:
    """A .json file is decoded as JSON."""
    write(
        Path("c.json"), json.dumps({"model": "openai/gpt-x", "routing": {"policy": "round-robin"}})
    )
    config = f.load_config("c.json")
    assert config.model == "openai/gpt-x" and config.routing.policy == "round-robin"


# -- errors name the file and key ------------------------------------------------------


def test_unknown_key_names_key_and_table() -> None:
    """routing.polcy is named with its table and the known keys."""
    err = error('[routing]\npolcy = "priority"\n')
    assert err.key == "routing.polcy" and err.path == "fallover.toml"
    assert "unknown key 'polcy' in [routing]" in str(err) and "policy" in str(err)


def test_unknown_provider_key_names_the_provider() -> None:
    """A typo inside [providers.x] names that table and its keys."""
    err = error('[providers.openai]\nbase_ur = "http://x"\n')
    assert err.key == "providers.openai.base_ur"
    assert "unknown key 'base_ur' in [providers.openai]" in str(err) and "base_url" in str(err)


def test_bad_policy_message() -> None:
    """A bad policy says which ones exist."""
    err = error('[routing]\npolicy = "fastest"\n')
    assert str(err) == (
        "fallover.toml: routing.policy: 'fastest' is not a policy "
        "(choose priority, round-robin, weighted or latency)"
    )


def test_unknown_provider_lists_known_ones() -> None:
    """A typo in a routing entry's provider lists the known providers."""
    err = error(
        '[providers.deepseek]\nmodel = "deepseek-chat"\n'
        '[routing]\nmodels = [{ provider = "openai", model = "gpt-4o" }, { provider = "deepsek" }]\n'
    )
    assert err.key == "routing.models[1].provider"
    assert str(err).startswith(
        "fallover.toml: routing.models[1].provider: 'deepsek' is not a provider (known: anthropic, "
    )
    assert "deepseek" in str(err)


def test_entry_without_model() -> None:
    """An entry whose provider has no model says where to set one."""
    err = error(
        'model = "openai/gpt-4o"\n[providers.local]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:1/v1"\n'
        '[routing]\nmodels = [{ provider = "local" }, { provider = "openai" }]\n'
    )
    assert err.key == "routing.models[0]"
    assert "no model (set model here or providers.local.model)" in str(err)


def test_duplicate_member() -> None:
    """The same provider/model twice is an error naming both places."""
    err = error(
        '[routing]\nmodels = [{ provider = "openai" }, { provider = "openai", model = "gpt-4o-mini" }]\n'
    )
    assert err.key == "routing.models[1]" and "routing.models[0]" in str(err)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[routing]\ncooldown = -1\n", "routing.cooldown"),
        ("[routing]\ncall_timeout = 0\n", "routing.call_timeout"),
        ("[providers.openai]\ntimeout = -5\n", "providers.openai.timeout"),
        ("[providers.openai]\nmax_retries = -1\n", "providers.openai.max_retries"),
        ('[providers.openai]\ntimeout = "soon"\n', "providers.openai.timeout"),
        ("[routing]\ncooldown = 10\ncooldown_max = 5\n", "routing.cooldown_max"),
        ('[routing]\nstore = "mongodb://x"\n', "routing.store"),
        ('[providers.x]\nbase_url = "http://h/v1"\n', "providers.x.protocol"),
        ('[providers.openai]\napi_key = "a"\napi_key_env = "B"\n', "providers.openai"),
    ],
)
def test_values_are_validated(text: str, key: str) -> None:
    """Non-positive timeouts, wrong types and contradictions name their key."""
    assert error(text).key == key


def test_broken_toml_names_file_and_line() -> None:
    """A TOML syntax error names the file and the line."""
    err = error('model = "openai/x"\n[routing\n')
    assert err.path == "fallover.toml" and "line 2" in str(err)


# -- resolution ---------------------------------------------------------------------


def test_entry_model_falls_back_to_provider_never_top_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An entry's model is its own, else its provider's; the top-level model is not used."""
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k2")
    write(
        Path("fallover.toml"),
        'model = "openai/top"\n[routing]\nmodels = [{ provider = "openai" }, { provider = "deepseek" }]\n',
    )
    p = plan(f.load_config())
    assert [m.alias for m in p.members] == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]


async def test_pool_members_fail_fast_alone_they_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a pool leaves members' settings as given (the pool applies its own per call)."""
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k2")
    write(
        Path("fallover.toml"),
        "[providers.anthropic]\nmax_retries = 2\n"
        '[routing]\nmodels = [{ provider = "openai" }, { provider = "anthropic" }]\n',
    )
    config = f.load_config()
    router = f.build_client(config)
    assert isinstance(router, f.AsyncRouter)
    assert [m.max_retries for m in router.members] == [5, 2]  # type: ignore[attr-defined]
    alone = f.build_client(config, model="openai/gpt-4o")
    assert (
        isinstance(alone, f.OpenAIClient)
        and alone.max_retries == 5
        and alone.alias == "openai/gpt-4o"
    )
    await router.aclose()
    await alone.aclose()


async def test_pool_of_one_is_the_plain_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """One routing entry builds the plain client, not a router."""
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    write(Path("fallover.toml"), '[routing]\nmodels = [{ provider = "openai" }]\n')
    client = f.build_client(f.load_config())
    assert isinstance(client, f.OpenAIClient)
    await client.aclose()


async def test_builtins_from_env_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL is used; a declaration overrides single fields."""
    monkeypatch.setenv("OPENAI_API_KEY", "k1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1234/v1")
    write(
        Path("fallover.toml"),
        'model = "openai"\n[providers.openai]\ntimeout = 7\ncontext_window = 1000\n',
    )
    client = f.build_client(f.load_config())
    assert isinstance(client, f.OpenAIClient)
    assert client.base_url == "http://127.0.0.1:1234/v1"
    assert (client.timeout, client.context_window, client.model) == (7, 1000, "gpt-4o-mini")
    await client.aclose()


async def test_pinned_model_may_contain_slashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """--model openrouter/openai/gpt-4o keeps the model's own slash."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    client = f.build_client(f.load_config(), model="openrouter/openai/gpt-4o")
    assert client.alias == "openrouter/openai/gpt-4o"
    await client.aclose()


async def test_auto_pool_from_present_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No config: every preset whose key is set, in preset order."""
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k2")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k1")
    client = f.build_client(f.load_config())
    assert isinstance(client, f.AsyncRouter)
    assert [m.alias for m in client.members] == [
        "anthropic/claude-sonnet-4-5",
        "deepseek/deepseek-chat",
    ]
    await client.aclose()


def test_nothing_configured_is_an_error() -> None:
    """No config and no key is a ConfigError that says what to set."""
    with pytest.raises(f.ConfigError, match="OPENAI_API_KEY"):
        f.build_client(f.load_config())


# -- keys -----------------------------------------------------------------------------


def test_missing_key_names_the_variable() -> None:
    """A missing key variable is named at build time."""
    write(
        Path("fallover.toml"),
        '[providers.deepseek]\napi_key_env = "MY_DS_KEY"\n[routing]\nmodels = [{ provider = "deepseek" }, { provider = "openai" }]\n',
    )
    with pytest.raises(f.ConfigError, match="set the environment variable MY_DS_KEY") as info:
        f.build_client(f.load_config())
    assert info.value.key == "routing.models[0]"


async def test_api_key_cmd(upstream: Upstream) -> None:
    """api_key_cmd runs without a shell and its stripped stdout is the key sent."""
    cmd = f'[{json.dumps(sys.executable)}, "-c", "print(\' cmd-key \')"]'
    write(
        Path("fallover.toml"),
        f'model = "openai/m"\n[providers.openai]\nbase_url = "{upstream.base_url}"\n'
        f"api_key_cmd = {cmd}\n",
    )
    async with f.build_client(f.load_config()) as client:
        await client.complete(f.ChatRequest(messages=[f.Message(role="user", content="hi")]))
    ((headers, _),) = upstream.requests
    assert headers["Authorization"] == "Bearer cmd-key"


def test_api_key_cmd_failure_names_command_not_output() -> None:
    """A failing command is named; what it printed is not shown."""
    cmd = f"[{json.dumps(sys.executable)}, \"-c\", \"print('sk-' + 'LEAK' + 'ED'); raise SystemExit(3)\"]"
    write(Path("fallover.toml"), f'model = "openai"\n[providers.openai]\napi_key_cmd = {cmd}\n')
    with pytest.raises(f.ConfigError) as info:
        f.build_client(f.load_config())
    assert "exited with status 3" in str(info.value) and "LEAKED" not in str(info.value)
    write(
        Path("fallover.toml"),
        'model = "openai"\n[providers.openai]\napi_key_cmd = "no-such-binary-xyz"\n',
    )
    with pytest.raises(f.ConfigError, match="command not found: no-such-binary-xyz"):
        f.build_client(f.load_config())


def test_literal_key_never_in_reprs(caplog: pytest.LogCaptureFixture) -> None:
    """A literal api_key is redacted in config and client reprs."""
    write(
        Path("fallover.toml"),
        'model = "openai"\n[providers.openai]\napi_key = "sk-LITERAL-123456"\n',
    )
    config = f.load_config()
    client = f.build_client(config)
    texts = [repr(config), repr(config.providers["openai"]), repr(client), str(plan(config))]
    assert all("LITERAL" not in t for t in texts)


def test_world_readable_literal_key_warns(caplog: pytest.LogCaptureFixture) -> None:
    """A literal key in a file others can read gets one warning."""
    path = write(
        Path("fallover.toml"),
        'model = "openai"\n[providers.openai]\napi_key = "sk-LITERAL-123456"\n',
    )
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="fallover"):
        f.load_config()
    assert len(caplog.records) == 1 and "readable by others" in caplog.text
    assert "LITERAL" not in caplog.text


def test_store_credentials_and_secret_headers_never_in_reprs() -> None:
    """A Redis password and credential-like header values are redacted in reprs."""
    write(
        Path("fallover.toml"),
        '[providers.openai]\nheaders = { "api-key" = "sk-HEADER-123456", "X-Team" = "review" }\n'
        '[routing]\nstore = "redis://user:hunter2@127.0.0.1:6379/0"\n',
    )
    config = f.load_config()
    text = repr(config) + repr(config.providers["openai"]) + repr(config.routing)
    assert "hunter2" not in text and "HEADER" not in text
    assert "review" in text and "127.0.0.1:6379" in text
