"""Provider-like rate limits and heavy-tailed latency, on an injected clock (no sleeping)."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from fallover.testing import Fault, Scenario, Simulator

from .conftest import FakeClock, Recorder
from .sdk import HELLO, claude, oai


@pytest.fixture
async def limited(clock: FakeClock) -> AsyncIterator[Simulator]:
    """A simulator on a fake clock: 3 requests a minute for `r`, 100 tokens a minute for `t`."""
    scenario = Scenario(
        models={
            "r": Fault(limit_requests=3, limit_window=60),
            "t": Fault(limit_tokens=100, limit_window=60, reply="a b c"),
        }
    )
    async with Simulator(scenario, clock=clock) as sim:
        yield sim


async def post(
    sim: Simulator, model: str, *, protocol: str = "openai", prompt: str = "hi"
) -> tuple[int, Mapping[str, str], Any]:
    """One request; returns status, headers (any case) and the JSON body."""
    path = "/v1/messages" if protocol == "anthropic" else "/v1/chat/completions"
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": prompt}]}
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim.base_url + path, json=body, headers={"anthropic-version": "2023-06-01"}) as r,
    ):
        return r.status, r.headers.copy(), await r.json()


async def test_openai_request_limit_headers_and_429(limited: Simulator, clock: FakeClock) -> None:
    """Each answer announces what is left; past the limit a 429 says when to come back."""
    answers = [await post(limited, "r") for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    first, last = answers[0][1], answers[3][1]
    assert first["x-ratelimit-limit-requests"] == "3"
    assert first["x-ratelimit-remaining-requests"] == "2"
    assert first["x-ratelimit-reset-requests"] == "20s"  # one request refills in 60 s / 3
    assert answers[2][1]["x-ratelimit-reset-requests"] == "1m0s"
    assert last["x-ratelimit-remaining-requests"] == "0"
    assert last["retry-after"] == "20" and last["retry-after-ms"] == "20000"
    error = answers[3][2]["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    clock.advance(19.9)
    assert (await post(limited, "r"))[0] == 429
    clock.advance(0.1)
    status, headers, _ = await post(limited, "r")
    assert status == 200 and headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.advance(59.6)
    assert (await post(limited, "r"))[1]["x-ratelimit-reset-requests"] == "20.4s"
    clock.advance(19.6)
    assert (await post(limited, "r"))[1]["x-ratelimit-reset-requests"] == "20.8s"
    assert "x-ratelimit-limit-tokens" not in headers


async def test_token_limit_counts_input_and_output(limited: Simulator, clock: FakeClock) -> None:
    """An answer costs its prompt and output tokens; a prompt that no longer fits gets a 429."""
    prompt = "x" * 160  # 40 tokens at four characters a token, and the answer is 3
    answers = [await post(limited, "t", prompt=prompt) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    assert answers[0][2]["usage"]["total_tokens"] == 43
    assert answers[0][1]["x-ratelimit-remaining-tokens"] == "57"
    assert answers[1][1]["x-ratelimit-remaining-tokens"] == "14"
    assert answers[1][1]["x-ratelimit-reset-tokens"] == "51.6s"  # 86 tokens at 100 a minute
    assert answers[2][2]["error"]["type"] == "tokens"
    assert answers[2][1]["retry-after-ms"] == "15600"  # until 40 tokens are back
    assert (await post(limited, "t"))[0] == 200  # a short prompt still fits (3 tokens)
    clock.advance(18)  # 11 tokens left, 30 more back
    assert (await post(limited, "t", prompt=prompt))[0] == 200


async def test_anthropic_limit_headers(limited: Simulator, clock: FakeClock) -> None:
    """Anthropic's headers: limit, remaining, and the reset as an RFC 3339 time."""
    before = datetime.datetime.now(datetime.UTC)
    answers = [await post(limited, "r", protocol="anthropic") for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    headers = answers[0][1]
    assert headers["anthropic-ratelimit-requests-limit"] == "3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "2"
    reset = datetime.datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"])
    assert reset.tzinfo is not None and headers["anthropic-ratelimit-requests-reset"][-1] == "Z"
    seconds = (reset - before).total_seconds()
    assert 20 <= seconds <= 22  # 20 s from now, rounded up to a whole second
    refused = answers[3]
    assert refused[1]["retry-after"] == "20" and "retry-after-ms" not in refused[1]
    assert refused[2]["error"]["type"] == "rate_limit_error"


async def test_sdks_see_rate_limit_errors_with_the_headers(limited: Simulator) -> None:
    """Both SDKs raise RateLimitError for a limiter 429, with the limit headers on it."""
    async with oai(limited) as client:
        for _ in range(3):
            await client.chat.completions.create(model="r", messages=HELLO)
        with pytest.raises(openai.RateLimitError) as oerr:
            await client.chat.completions.create(model="r", messages=HELLO)
    assert oerr.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    limited.reset()
    async with claude(limited) as client:
        for _ in range(3):
            await client.messages.create(model="r", max_tokens=50, messages=HELLO)
        with pytest.raises(anthropic.RateLimitError) as aerr:
            await client.messages.create(model="r", max_tokens=50, messages=HELLO)
    assert aerr.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_a_limited_request_does_not_reach_the_model(clock: FakeClock) -> None:
    """A 429 from the limiter does not advance the scripted statuses, and is logged as such."""
    scenario = Scenario(models={"m": Fault(limit_requests=1, limit_window=1, statuses=[503])})
    async with Simulator(scenario, clock=clock) as sim:
        statuses = [(await post(sim, "m"))[0]]
        statuses.append((await post(sim, "m"))[0])
        clock.advance(1)
        statuses.append((await post(sim, "m"))[0])
    assert statuses == [503, 429, 200]
    assert [e["fault"] for e in sim.log] == ["sequence", "rate_limit", "ok"]
    assert sim.requests_for("m") == 3


async def test_heavy_tail_latency_is_seeded() -> None:
    """slow_rate of the calls wait slow_latency, the rest latency, drawn from the seed."""
    runs = []
    for _ in range(2):
        recorder = Recorder()
        fault = Fault(latency=0.02, slow_rate=0.1, slow_latency=2.0)
        async with Simulator(Scenario(models={"m": fault}, seed=5), sleep=recorder) as sim:
            for _ in range(60):
                await post(sim, "m")
        runs.append(recorder.delays)
        slow = [e["seq"] for e in sim.log if e["fault"] == "slow"]
        assert len(slow) == recorder.delays.count(2.0)
    assert runs[0] == runs[1] and set(runs[0]) == {0.02, 2.0}
    assert 0 < runs[0].count(2.0) < 20
