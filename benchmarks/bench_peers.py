"""Peers in the same run: LiteLLM's Router and the official openai SDK, same server."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import fallover as f

from ._common import REQ, Env, Figure, Goal, per_call, ratio, skipped

TITLE = "Peers: LiteLLM Router and the openai SDK"


async def peers(env: Env) -> Figure:
    """A healthy call and a 503 fallover through LiteLLM's Router, beside fallover's router."""
    try:
        os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        import litellm
        import openai
        from litellm import Router
    except ImportError:
        return skipped("peers", TITLE, "litellm is not installed (pip install 'fallover[bench]')")
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    n = env.n(300, 20)

    def deployment(name: str, model: str) -> dict[str, Any]:
        params = {"model": f"openai/{model}", "api_base": env.base + "/v1", "api_key": "sk-b"}
        return {"model_name": name, "litellm_params": params}

    msgs = [{"role": "user", "content": "Review: def f(): return 1"}]
    healthy = Router(
        model_list=[deployment("primary", "fast"), deployment("backup", "backup")],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
    )
    faulty = Router(
        model_list=[deployment("primary", "e503"), deployment("backup", "backup")],
        fallbacks=[{"primary": ["backup"]}],
        num_retries=0,
        allowed_fails=10**9,
        cooldown_time=0,
    )

    async def ll() -> None:
        r = await healthy.acompletion(model="primary", messages=msgs)
        assert r.choices[0].message.content

    async def ll503() -> None:
        await faulty.acompletion(model="primary", messages=msgs)

    sdk = openai.AsyncOpenAI(base_url=env.base + "/v1", api_key="sk-b", max_retries=2)

    async def oa() -> None:
        r = await sdk.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "x"}]
        )
        assert r.choices[0].message.content

    ours = f.AsyncRouter([env.client("fast"), env.client("backup")])
    ours503 = f.AsyncRouter(
        [env.client("e503"), env.client("backup")], cooldown=1e-6, cooldown_max=1e-6
    )
    async with ours, ours503:
        mine = await per_call(lambda: ours.complete(REQ), n, env.repeats)
        mine503 = await per_call(lambda: ours503.complete(REQ), n // 5 or 3, env.repeats)
        theirs = await per_call(ll, n, env.repeats)
        theirs503 = await per_call(ll503, n // 5 or 3, env.repeats)
        official = await per_call(oa, n, env.repeats)
    await sdk.close()
    return Figure(
        "peers",
        TITLE,
        f"LiteLLM {_version('litellm')} `Router.acompletion` (no retries, one fallback, cost-map "
        f"fetch off) and `openai` {openai.__version__} `AsyncOpenAI`, against the same simulator.",
        ["scenario", "fallover router", "LiteLLM Router", "openai SDK (no routing)"],
        [
            ["healthy", mine.us(), theirs.us(), official.us()],
            ["primary 503 → backup", mine503.us(), theirs503.us(), "—"],
        ],
        {
            "fallover": mine.json(),
            "fallover_503": mine503.json(),
            "litellm": theirs.json(),
            "litellm_503": theirs503.json(),
            "openai_sdk": official.json(),
        },
        [
            Goal("LiteLLM ÷ fallover, healthy", ratio(theirs, mine), 10, better="higher"),
            Goal(
                "LiteLLM ÷ fallover, 503 fallover", ratio(theirs503, mine503), 10, better="higher"
            ),
        ],
    )


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


FIGURES = [peers]
