"""Configuration fields for capabilities, extra bodies, pacing, weights, hedging, pools and the gateway."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import fallover as f
from fallover._config import PoolConfig, ServerConfig, plan

from .conftest import Upstream

DOCS = Path(__file__).resolve().parent.parent / "docs"
ALL = {"tools", "vision", "json_schema", "reasoning"}


@pytest.fixture(autouse=True)
def clean_env(config_env: Path) -> Path:
    """No keys, no config, an empty home and cwd for every test."""
    return config_env


def config(text: str, name: str = "fallover.toml") -> f.Config:
    """Write ``text`` to ``name`` and load it."""
    Path(name).write_text(text)
    return f.load_config(name)


def error(text: str, name: str = "fallover.toml") -> f.ConfigError:
    """The ConfigError that loading ``text`` raises."""
    with pytest.raises(f.ConfigError) as info:
        config(text, name)
    return info.value


POOLS = (
    "[routing]\n"
    'name = "review"\n'
    "cooldown = 2.0\n"
    'models = [{ provider = "openai" }, { provider = "deepseek" }]\n'
    "[pools.fast]\n"
    "cooldown_max = 30.0\n"
    'models = [{ provider = "deepseek", weight = 3 }, { provider = "dashscope" }]\n'
)


# -- capabilities ------------------------------------------------------------------------


def test_capabilities_default_to_the_presets() -> None:
    """A built-in provider's member takes what its preset declares."""
    (member,) = plan(f.Config(), "deepseek").members
    assert member.capabilities == {"tools", "reasoning"}


@pytest.mark.parametrize(
    ("model", "reasons"),
    [("o3-mini", True), ("gpt-5.1", True), ("gpt-4o", False), ("gpt-5-chat-latest", False)],
)
def test_capabilities_follow_the_model_family(model: str, reasons: bool) -> None:
    """OpenAI's reasoning models take reasoning; gpt-4o and the gpt-5 chat variants do not."""
    capabilities = plan(f.Config(), f"openai/{model}").members[0].capabilities
    assert ("reasoning" in capabilities) is reasons
    assert {"tools", "vision", "json_schema"} <= capabilities


def test_declared_capabilities_win_over_the_preset() -> None:
    """providers.X.capabilities replaces the preset's list."""
    c = config('[providers.anthropic]\ncapabilities = ["tools"]\n')
    assert plan(c, "anthropic").members[0].capabilities == {"tools"}


def test_a_provider_not_built_in_is_assumed_capable() -> None:
    """A declared provider without capabilities takes everything."""
    c = config('[providers.local]\nprotocol = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert plan(c, "local/m").members[0].capabilities == ALL


def test_an_unknown_capability_names_the_key_and_the_choices() -> None:
    """A typo in capabilities names the key and lists the valid ones."""
    err = error('[providers.deepseek]\ncapabilities = ["tools", "vison"]\n')
    assert err.key == "providers.deepseek.capabilities"
    assert "'vison' is not a capability" in str(err)
    assert "json_schema, reasoning, tools or vision" in str(err)


def test_capabilities_must_be_a_list() -> None:
    """capabilities = "tools" is a type error at that key."""
    err = error('[providers.deepseek]\ncapabilities = "tools"\n')
    assert err.key == "providers.deepseek.capabilities" and "a list" in str(err)


async def test_built_clients_take_the_resolved_capabilities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """build_client gives each client its preset's or its declared capabilities."""
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k1")
    monkeypatch.setenv("MOONSHOT_API_KEY", "k2")
    c = config('[providers.moonshot]\nmodel = "kimi-k2.5"\ncapabilities = ["tools", "vision"]\n')
    async with f.build_client(c, "deepseek") as deepseek, f.build_client(c, "moonshot") as kimi:
        assert deepseek.capabilities == {"tools", "reasoning"}
        assert kimi.capabilities == {"tools", "vision"}


async def test_extra_body_and_headers_reach_the_provider(upstream: Upstream) -> None:
    """A built client merges extra_body into the request body and sends the headers."""
    c = config(
        f'[providers.local]\nprotocol = "openai"\nbase_url = "{upstream.base_url}"\n'
        'model = "m"\nextra_body = { top_k = 20, chat_template_kwargs = { x = true } }\n'
        'headers = { "X-Team" = "review" }\n'
    )
    async with f.build_client(c, "local") as client:
        answer = await client.complete(
            f.ChatRequest(messages=[f.Message(role="user", content="hi")])
        )
    assert answer.text == "ok"
    ((headers, body),) = upstream.requests
    assert body["top_k"] == 20 and body["chat_template_kwargs"] == {"x": True}
    assert body["model"] == "m" and headers["X-Team"] == "review"


# -- extra_body, headers, rpm, tpm -------------------------------------------------------


def test_extra_body_and_headers_are_carried_to_the_member() -> None:
    """extra_body (nested tables kept) and headers reach the resolved member."""
    c = config(
        "[providers.dashscope]\n"
        "extra_body = { enable_thinking = false, search_options = { forced = true } }\n"
        'headers = { "X-Team" = "review" }\n'
    )
    (member,) = plan(c, "dashscope").members
    assert member.extra_body == {"enable_thinking": False, "search_options": {"forced": True}}
    assert member.headers == {"X-Team": "review"}


@pytest.mark.parametrize("field", ["model", "messages", "stream"])
def test_extra_body_cannot_set_what_fallover_writes(field: str) -> None:
    """An extra body that would change the model, the messages or streaming is refused."""
    err = error(f'[providers.openai]\nextra_body = {{ {field} = "x", top_k = 5 }}\n')
    assert err.key == "providers.openai.extra_body"
    assert f"extra_body cannot set {field!r}" in str(err)


def test_extra_body_must_be_a_table() -> None:
    """extra_body = 3 is a type error at that key."""
    assert error("[providers.openai]\nextra_body = 3\n").key == "providers.openai.extra_body"


def test_rpm_and_tpm_are_carried_to_the_member() -> None:
    """rpm and tpm reach the resolved member; unset they are None."""
    c = config("[providers.openai]\nrpm = 500\ntpm = 200000\n")
    assert (plan(c, "openai").members[0].rpm, plan(c, "openai").members[0].tpm) == (500, 200000)
    assert plan(c, "deepseek").members[0].rpm is None


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("rpm = 0", "providers.openai.rpm"),
        ("tpm = -1", "providers.openai.tpm"),
        ("rpm = 1.5", "providers.openai.rpm"),
        ('tpm = "many"', "providers.openai.tpm"),
    ],
)
def test_rpm_and_tpm_are_positive_whole_numbers(text: str, key: str) -> None:
    """Zero, negative, fractional or text limits name their key."""
    assert error(f"[providers.openai]\n{text}\n").key == key


async def test_max_connections_reaches_the_built_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """providers.X.max_connections is the built client's limit; unset, the documented 1000."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    for text, limit in (("[providers.openai]\nmax_connections = 7\n", 7), ("", 1000)):
        async with f.build_client(config(text), "openai") as client:
            assert isinstance(client, f.OpenAIClient)
            assert client.max_connections == limit


@pytest.mark.parametrize("value", ["0", "-3", "1.5", '"many"', "true"])
def test_max_connections_is_a_positive_whole_number(value: str) -> None:
    """A zero, negative, fractional, text or boolean limit names its key."""
    e = error(f"[providers.openai]\nmax_connections = {value}\n")
    assert e.key == "providers.openai.max_connections"


# -- routing: weight, hedge_after, policies ----------------------------------------------


def test_weights_are_carried_with_a_default_of_one() -> None:
    """An entry's weight reaches its member; an entry without one weighs 1."""
    c = config(
        '[routing]\npolicy = "weighted"\n'
        'models = [{ provider = "openai", weight = 2.5 }, { provider = "deepseek" }]\n'
    )
    assert [m.weight for m in plan(c).members] == [2.5, 1.0]


@pytest.mark.parametrize("weight", ["0", "-1", '"heavy"'])
def test_a_weight_is_a_positive_number(weight: str) -> None:
    """A zero, negative or text weight names the entry's key."""
    err = error(
        f'[routing]\nmodels = [{{ provider = "openai" }}, {{ provider = "deepseek", weight = {weight} }}]\n'
    )
    assert err.key == "routing.models[1].weight"


async def test_a_weighted_pool_is_built_with_its_weights(upstream: Upstream) -> None:
    """A 99:1 weighted pool built from the config sends nearly every call to the heavy member."""
    provider = f'protocol = "openai"\nbase_url = "{upstream.base_url}"\nmodel = "m"\n'
    c = config(
        f"[providers.heavy]\n{provider}[providers.light]\n{provider}"
        '[routing]\npolicy = "weighted"\n'
        'models = [{ provider = "light", weight = 1 }, { provider = "heavy", weight = 99 }]\n'
    )
    request = f.ChatRequest(messages=[f.Message(role="user", content="hi")])
    async with f.build_client(c) as router:
        answers = [(await router.complete(request)).alias for _ in range(50)]
    assert answers.count("heavy/m") >= 40  # unweighted, about 25


def test_hedge_after_defaults_to_off_and_is_carried() -> None:
    """hedge_after is 0 (off) unless set; its value reaches the plan."""
    assert f.load_config().routing.hedge_after == 0
    c = config('[routing]\nhedge_after = 0.25\nmodels = [{ provider = "openai" }]\n')
    assert plan(c).routing.hedge_after == 0.25


def test_hedge_after_is_not_negative() -> None:
    """A negative hedge_after names its key."""
    assert error("[routing]\nhedge_after = -0.1\n").key == "routing.hedge_after"


@pytest.mark.parametrize("policy", ["priority", "round-robin", "weighted", "latency"])
def test_every_policy_is_accepted(policy: str) -> None:
    """The four policies load."""
    assert config(f'[routing]\npolicy = "{policy}"\n').routing.policy == policy


# -- pools --------------------------------------------------------------------------------


def test_a_named_pool_takes_its_own_keys_over_routings() -> None:
    """[pools.fast] has its members and keys, and [routing]'s for keys it leaves out."""
    p = plan(config(POOLS), pool="fast")
    assert [m.alias for m in p.members] == ["deepseek/deepseek-chat", "dashscope/qwen-plus"]
    assert [m.weight for m in p.members] == [3, 1.0]
    assert (p.pool, p.routing.cooldown, p.routing.cooldown_max) == ("fast", 2.0, 30.0)
    assert p.routing.call_timeout == f.load_config().routing.call_timeout


async def test_build_client_builds_a_named_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_client(config, pool="fast") is a router over that pool, named after it."""
    monkeypatch.setenv("DEEPSEEK_API_KEY", "k1")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "k2")
    router = f.build_client(config(POOLS), pool="fast")
    assert isinstance(router, f.AsyncRouter) and router.alias == "fast"
    assert [m.alias for m in router.members] == ["deepseek/deepseek-chat", "dashscope/qwen-plus"]
    await router.aclose()


def test_routing_name_chooses_the_main_pool() -> None:
    """pool= routing.name resolves [routing]'s members."""
    p = plan(config(POOLS), pool="review")
    assert [m.alias for m in p.members] == ["openai/gpt-4o-mini", "deepseek/deepseek-chat"]


def test_an_unknown_pool_lists_the_known_ones() -> None:
    """build_client(pool="slow") names the pool and lists routing.name and [pools.*]."""
    with pytest.raises(f.ConfigError) as info:
        f.build_client(config(POOLS), pool="slow")
    assert info.value.key == "pools.slow" and info.value.path == "fallover.toml"
    assert "no pool named 'slow' (known: review, fast)" in str(info.value)


def test_an_unknown_pool_with_no_pools_says_how_to_add_one() -> None:
    """With no pools at all, the error says how to name one."""
    with pytest.raises(f.ConfigError, match=r"known: none: add \[pools.NAME\]"):
        f.build_client(f.load_config(), pool="fast")


def test_a_pool_and_a_pinned_model_together_are_refused() -> None:
    """build_client(model=..., pool=...) is a ValueError: they contradict."""
    with pytest.raises(ValueError, match="not both"):
        f.build_client(config(POOLS), model="openai/gpt-4o", pool="fast")


def test_an_unknown_key_in_a_pool_names_the_pool() -> None:
    """A typo in [pools.fast] names that table and its keys."""
    err = error('[pools.fast]\npolcy = "latency"\nmodels = [{ provider = "openai" }]\n')
    assert err.key == "pools.fast.polcy"
    assert "unknown key 'polcy' in [pools.fast]" in str(err) and "hedge_after" in str(err)


def test_a_pool_needs_models() -> None:
    """[pools.fast] without models says the key is needed."""
    err = error('[pools.fast]\npolicy = "latency"\n')
    assert err.key == "pools.fast.models" and "[pools.fast] needs the key 'models'" in str(err)


def test_a_pool_has_no_name_key() -> None:
    """A pool is named by its table; a name key inside it is unknown."""
    err = error('[pools.fast]\nname = "x"\nmodels = [{ provider = "openai" }]\n')
    assert err.key == "pools.fast.name"


def test_a_pool_entry_error_names_the_pool_entry() -> None:
    """An unknown provider in a pool's entry names pools.NAME.models[i].provider."""
    c = config('[pools.fast]\nmodels = [{ provider = "openai" }, { provider = "deepsek" }]\n')
    with pytest.raises(f.ConfigError, match="'deepsek' is not a provider") as info:
        plan(c, pool="fast")
    assert info.value.key == "pools.fast.models[1].provider"


def test_a_pool_is_checked_with_the_routing_rules() -> None:
    """A pool's cooldown_max below the cooldown it inherits is an error at the pool's key."""
    err = error(
        "[routing]\ncooldown = 20.0\n[pools.fast]\ncooldown_max = 10.0\n"
        'models = [{ provider = "openai" }]\n'
    )
    assert err.key == "pools.fast.cooldown_max" and "below cooldown (20)" in str(err)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[pools."a/b"]\nmodels = [{ provider = "openai" }]\n', "pools.a/b"),
        (
            '[routing]\nname = "fast"\n' + '[pools.fast]\nmodels = [{ provider = "openai" }]\n',
            "pools.fast",
        ),
        (
            '[pools.fast]\npolicy = "fastest"\nmodels = [{ provider = "openai" }]\n',
            "pools.fast.policy",
        ),
        (
            '[pools.fast]\nstore = "mongodb://x"\nmodels = [{ provider = "openai" }]\n',
            "pools.fast.store",
        ),
        ("[pools.fast]\nmodels = []\n", "pools.fast.models"),
    ],
)
def test_bad_pools_name_their_key(text: str, key: str) -> None:
    """A name with '/', a name taken by routing.name, a bad policy or store, no members."""
    assert error(text).key == key


def test_pool_errors_in_json_name_the_key() -> None:
    """A JSON config's pool error names the file and the key too."""
    err = error(json.dumps({"pools": {"fast": {"models": [], "cooldown": -1}}}), "c.json")
    assert err.path == "c.json" and err.key is not None and err.key.startswith("pools.fast.")


# -- server -------------------------------------------------------------------------------


def test_server_defaults_are_the_documented_ones() -> None:
    """No [server]: loopback, port 8080, no keys, 16 MiB bodies, 1024 calls at once."""
    s = f.load_config().server
    assert (s.host, s.port, s.api_keys_env) == ("127.0.0.1", 8080, None)
    assert (s.max_body_bytes, s.max_concurrency) == (16 * 1024 * 1024, 1024)


def test_server_keys_are_read() -> None:
    """[server] keys reach the config."""
    s = config(
        '[server]\nhost = "0.0.0.0"\nport = 9000\napi_keys_env = "GW_KEYS"\n'
        "max_body_bytes = 1024\nmax_concurrency = 8\n"
    ).server
    assert (s.host, s.port, s.api_keys_env, s.max_body_bytes, s.max_concurrency) == (
        "0.0.0.0",
        9000,
        "GW_KEYS",
        1024,
        8,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("port = 70000", "server.port"),
        ("port = -1", "server.port"),
        ("max_body_bytes = 0", "server.max_body_bytes"),
        ("max_concurrency = 0", "server.max_concurrency"),
        ("workers = 4", "server.workers"),
    ],
)
def test_bad_server_keys_name_their_key(text: str, key: str) -> None:
    """Out-of-range ports and sizes, and unknown keys, name their key."""
    assert error(f"[server]\n{text}\n").key == key


# -- docs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["configuration.md", "zh-CN/configuration.md"])
def test_pool_and_server_keys_are_documented(page: str) -> None:
    """Every [pools.NAME] and [server] key has a row in both references."""
    rows = set(re.findall(r"^\|\s*`([a-z_]+)`\s*\|", (DOCS / page).read_text("utf-8"), re.M))
    missing = (set(PoolConfig.__struct_fields__) | set(ServerConfig.__struct_fields__)) - rows
    assert not missing, f"undocumented in {page}: {sorted(missing)}"
