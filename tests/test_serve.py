"""fallover's gateway, driven by the official openai and anthropic SDKs, in front of the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import anyio
import openai
import pytest
from aiohttp import web

import fallover
from fallover.testing import Fault, Scenario, Simulator

from .conftest import SECRET


class Served:
    """A gateway listening on loopback, and what started it."""

    def __init__(self, gateway: fallover.Gateway, url: str) -> None:
        self.gateway = gateway
        self.url = url

    def openai(self, key: str = "client-key", **kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, max_retries=0, **kw)

    def anthropic(self, key: str = "client-key", **kw: Any) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, max_retries=0, **kw)


async def _listen(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{port}"


ServeFactory = Callable[..., Awaitable[Served]]


def _completion(text: str) -> web.Response:
    """A whole OpenAI answer from model ``a``."""
    return web.json_response(
        {
            "id": "x",
            "object": "chat.completion",
            "model": "a",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
    )


@contextlib.asynccontextmanager
async def _gateway_in_front_of(
    serve: ServeFactory, upstream: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> AsyncIterator[openai.AsyncOpenAI]:
    """An OpenAI SDK client of a gateway whose pool is ``upstream`` (``up/a``) and a mock."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream)
    runner, url = await _listen(app)
    try:
        pool = fallover.AsyncRouter(
            [
                fallover.OpenAIClient(model="a", base_url=f"{url}/v1", alias="up/a"),
                fallover.MockClient(_echo, alias="mock/b"),
            ]
        )
        gw = await serve({"pool": pool})
        async with gw.openai() as client:
            yield client
    finally:
        await runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[ServeFactory]:
    """Start gateways: ``await serve(models)`` or ``await serve(config=...)``."""
    started: list[tuple[web.AppRunner, fallover.Gateway]] = []

    async def start(
        models: Mapping[str, fallover.LLMClient] | None = None,
        *,
        config: fallover.Config | None = None,
        **kw: Any,
    ) -> Served:
        if config is not None:
            gateway = fallover.Gateway.from_config(config, **kw)
        else:
            assert models is not None
            gateway = fallover.Gateway(models, **kw)
        runner, url = await _listen(gateway.app())
        started.append((runner, gateway))
        return Served(gateway, url)

    yield start
    for runner, gateway in started:
        await runner.cleanup()
        await gateway.aclose()


def sim_config(tmp_path: Path, base: str, *, store: str = "memory") -> fallover.Config:
    """A pool "review" of an OpenAI-protocol and an Anthropic-protocol member on the simulator."""
    path = tmp_path / "fallover.toml"
    path.write_text(
        f"""
[providers.sima]
protocol = "openai"
base_url = "{base}/v1"
model = "model-a"

[providers.simb]
protocol = "anthropic"
base_url = "{base}"
model = "model-b"

[routing]
name = "review"
store = "{store}"
call_timeout = 10
models = [{{ provider = "sima" }}, {{ provider = "simb" }}]
"""
    )
    return fallover.load_config(path)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(Scenario()) as s:
        yield s


async def _served_sim(serve: ServeFactory, sim: Simulator, tmp_path: Path, **kw: Any) -> Served:
    return await serve(config=sim_config(tmp_path, sim.base_url), **kw)


async def test_unnamed_routing_pool_is_served_as_default(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """The [routing] pool without a name is the model "default"; its member is pinned too."""
    path = tmp_path / "fallover.toml"
    path.write_text(
        f'[providers.sima]\nprotocol = "openai"\nbase_url = "{sim.base_url}/v1"\n'
        'model = "model-a"\n[routing]\nmodels = [{ provider = "sima" }]\n'
    )
    gw = await serve(config=fallover.load_config(path))
    assert gw.gateway.models == ("default", "sima/model-a")
    async with gw.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-fallover-alias"] == "sima/model-a"


# -- plain calls -------------------------------------------------------------------------------


async def test_openai_sdk_plain_call(serve: ServeFactory, sim: Simulator, tmp_path: Path) -> None:
    """An OpenAI SDK call to a pool gets the first member's answer and names it in a header."""
    sim.set_scenario(Scenario(models={"model-a": Fault(reply="hello from a")}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="review", messages=[{"role": "user", "content": "hi"}]
        )
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from a"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert raw.headers["x-fallover-alias"] == "sima/model-a"
    assert raw.headers["x-fallover-attempts"] == "sima/model-a=ok"


async def test_anthropic_sdk_plain_call(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """An Anthropic SDK call to a pool gets a Messages answer, even from an OpenAI member."""
    sim.set_scenario(Scenario(models={"model-a": Fault(reply="hello from a")}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.anthropic() as client:
        raw = await client.messages.with_raw_response.create(
            model="review", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    message = await raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "hello from a"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert raw.headers["x-fallover-alias"] == "sima/model-a"


async def test_pin_one_member_across_protocols(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """``model="provider/model"`` pins one member: an OpenAI caller is served by an Anthropic member."""
    sim.set_scenario(Scenario(models={"model-b": Fault(reply="from b")}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="simb/model-b", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.parse().choices[0].message.content == "from b"
    assert raw.headers["x-fallover-alias"] == "simb/model-b"
    assert sim.requests_for("model-a") == 0


async def test_fallover_names_the_member_and_the_attempts(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """When the first member fails the second answers; the attempts header shows the failure."""
    sim.set_scenario(
        Scenario(models={"model-a": Fault(statuses=[503]), "model-b": Fault(reply="b here")})
    )
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="review", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.parse().choices[0].message.content == "b here"
    assert raw.headers["x-fallover-alias"] == "simb/model-b"
    assert raw.headers["x-fallover-attempts"] == "sima/model-a=error/503, simb/model-b=ok"


async def test_models_lists_pools_and_pins(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """/v1/models lists the pool and each member, in each SDK's own shape."""
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as oc:
        names = [m.id async for m in oc.models.list()]
    async with gw.anthropic() as ac:
        anames = [m.id async for m in ac.models.list()]
    assert names == anames == ["review", "sima/model-a", "simb/model-b"]


# -- streams -----------------------------------------------------------------------------------


async def test_openai_stream_helper(serve: ServeFactory, sim: Simulator, tmp_path: Path) -> None:
    """The OpenAI SDK's stream helper assembles the relayed chunks into the whole answer."""
    sim.set_scenario(Scenario(models={"model-b": Fault(reply="one two three")}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with (
        gw.openai() as client,
        client.chat.completions.stream(
            model="simb/model-b",
            messages=[{"role": "user", "content": "hi"}],
            stream_options={"include_usage": True},
        ) as stream,
    ):
        pieces = [e.delta async for e in stream if e.type == "content.delta" and e.delta]
        final = await stream.get_final_completion()
    assert pieces == ["one", " two", " three"]
    assert final.choices[0].message.content == "one two three"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and final.usage.completion_tokens == 3


async def test_anthropic_stream_helper(serve: ServeFactory, sim: Simulator, tmp_path: Path) -> None:
    """The Anthropic SDK's stream helper reads the relayed events as a Messages stream."""
    sim.set_scenario(Scenario(models={"model-a": Fault(reply="one two three")}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with (
        gw.anthropic() as client,
        client.messages.stream(
            model="review", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert pieces == ["one", " two", " three"]
    assert final.content[0].text == "one two three"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


async def test_stream_names_the_member_in_its_last_event(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """A stream's finishing chunk carries a ``fallover`` field naming the member and attempts."""
    sim.set_scenario(Scenario(models={"model-a": Fault(statuses=[500])}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as client:
        stream = await client.chat.completions.create(
            model="review", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        chunks = [c async for c in stream]
    debug = chunks[-1].model_extra["fallover"]  # type: ignore[index]
    assert debug["alias"] == "simb/model-b"
    assert [(a["alias"], a["outcome"], a["status"]) for a in debug["attempts"]] == [
        ("sima/model-a", "error", 500),
        ("simb/model-b", "ok", None),
    ]


async def test_broken_stream_reaches_the_openai_client_as_an_error(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """A stream cut upstream after text ends in an error for the client, never a clean end."""
    sim.set_scenario(Scenario(models={"model-a": Fault(reply="a b c d", stream_cut_after=2)}))
    gw = await _served_sim(serve, sim, tmp_path)
    got: list[str] = []
    async with gw.openai() as client:
        stream = await client.chat.completions.create(
            model="sima/model-a", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="stream"):
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
    assert got == ["a", " b"]


async def test_broken_stream_reaches_the_anthropic_client_as_an_error(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """The Anthropic stream helper raises on an upstream break after text instead of finishing."""
    sim.set_scenario(Scenario(models={"model-a": Fault(reply="a b c d", stream_cut_after=2)}))
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.anthropic() as client:
        with pytest.raises(anthropic.APIStatusError, match="stream"):
            async with client.messages.stream(
                model="sima/model-a", max_tokens=50, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                await stream.get_final_message()


# -- tools -------------------------------------------------------------------------------------

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def _tool_member(requests: list[fallover.ChatRequest]) -> fallover.MockClient:
    async def handler(request: fallover.ChatRequest) -> fallover.ChatResponse:
        requests.append(request)
        return fallover.ChatResponse(
            text="",
            model="tool-model",
            alias="mock/tool-model",
            finish_reason="tool_calls",
            tool_calls=(
                fallover.ToolCall(id="call_1", name="weather", arguments='{"city": "Oslo"}'),
            ),
        )

    return fallover.MockClient(handler, alias="mock/tool-model")


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_tools_round_trip(serve: ServeFactory, stream: bool) -> None:
    """OpenAI tools, tool turns and tool calls pass through the neutral model both ways."""
    seen: list[fallover.ChatRequest] = []
    gw = await serve({"tools": _tool_member(seen)})
    messages: list[Any] = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "need a city"},
    ]
    tools: Any = [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]
    async with gw.openai() as client:
        if stream:
            async with client.chat.completions.stream(
                model="tools", messages=messages, tools=tools, tool_choice="required"
            ) as s:
                final = await s.get_final_completion()
        else:
            final = await client.chat.completions.create(
                model="tools", messages=messages, tools=tools, tool_choice="required"
            )
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
        "call_1",
        "weather",
        {"city": "Oslo"},
    )
    assert final.choices[0].finish_reason == "tool_calls"
    (request,) = seen
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[2].tool_calls == (fallover.ToolCall(id="c0", name="weather"),)
    assert request.messages[3].tool_call_id == "c0"
    assert request.tools[0].name == "weather" and request.tools[0].parameters == WEATHER
    assert request.tool_choice == "required"


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_tools_round_trip(serve: ServeFactory, stream: bool) -> None:
    """Anthropic tool_use and tool_result blocks pass through the neutral model both ways."""
    seen: list[fallover.ChatRequest] = []
    gw = await serve({"tools": _tool_member(seen)})
    messages: Any = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c0", "name": "weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c0", "content": "need a city"},
                {"type": "text", "text": "try Oslo"},
            ],
        },
    ]
    tools: Any = [{"name": "weather", "input_schema": WEATHER}]
    async with gw.anthropic() as client:
        if stream:
            async with client.messages.stream(
                model="tools", max_tokens=100, messages=messages, tools=tools
            ) as s:
                final = await s.get_final_message()
        else:
            final = await client.messages.create(
                model="tools", max_tokens=100, messages=messages, tools=tools
            )
    block = final.content[-1]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("call_1", "weather", {"city": "Oslo"})
    assert final.stop_reason == "tool_use"
    (request,) = seen
    assert [m.role for m in request.messages] == ["user", "assistant", "tool", "user"]
    assert request.messages[1].tool_calls == (fallover.ToolCall(id="c0", name="weather"),)
    assert request.messages[2].tool_call_id == "c0"


# -- errors and bad input ----------------------------------------------------------------------


async def test_unknown_model_is_404_in_each_shape(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """An unknown model is a 404 that each SDK reads as NotFoundError, naming the model."""
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.openai() as oc:
        with pytest.raises(openai.NotFoundError, match="nope"):
            await oc.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
    async with gw.anthropic() as ac:
        with pytest.raises(anthropic.NotFoundError, match="nope") as info:
            await ac.messages.create(
                model="nope", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def _post(url: str, body: bytes, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=dict(headers or {})) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"[]", "body: expected `object`"),
        (b'{"model": "review"}', "messages: required"),
        (b'{"model": "review", "messages": []}', "messages: must hold"),
        (b'{"model": "review", "messages": [{"role": "bot"}]}', "messages[0].role"),
        (b'{"model": 7, "messages": []}', "model: expected `str`"),
        (
            b'{"model": "review", "messages": [{"role": "user", "content": "x"}], "n": 2}',
            "n: only 1",
        ),
        (
            b'{"model": "review", "messages": [{"role": "tool", "content": "x"}]}',
            "messages[0].tool_call_id",
        ),
        (
            b'{"model": "review", "messages": [{"role": "user", "content": '
            b'[{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}]}',
            "messages[0].content[0].image_url.url",
        ),
    ],
)
async def test_bad_openai_requests_are_400_naming_the_field(
    serve: ServeFactory, sim: Simulator, tmp_path: Path, body: bytes, field: str
) -> None:
    """An invalid OpenAI request is a 400 whose message names what is wrong."""
    gw = await _served_sim(serve, sim, tmp_path)
    status, payload = await _post(f"{gw.url}/v1/chat/completions", body)
    assert status == 400
    assert payload["error"]["type"] == "invalid_request_error"
    assert field in payload["error"]["message"]
    assert not sim.log  # nothing was sent upstream


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"model": "review", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (
            b'{"model": "review", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "review", "max_tokens": 5, "messages": [{"role": "user", "content": '
            b'[{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]}',
            "messages[0].content[0]",
        ),
        (
            b'{"model": "review", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],'
            b' "thinking": {"type": "enabled"}}',
            "thinking.budget_tokens",
        ),
    ],
)
async def test_bad_anthropic_requests_are_400_naming_the_field(
    serve: ServeFactory, sim: Simulator, tmp_path: Path, body: bytes, field: str
) -> None:
    """An invalid Anthropic request is a 400 invalid_request_error naming the field."""
    gw = await _served_sim(serve, sim, tmp_path)
    status, payload = await _post(f"{gw.url}/v1/messages", body)
    assert status == 400
    assert payload["type"] == "error"
    assert payload["error"]["type"] == "invalid_request_error"
    assert field in payload["error"]["message"]


async def test_body_over_the_limit_is_413(serve: ServeFactory) -> None:
    """A body over max_body_bytes is refused with 413 in the caller's shape."""
    gw = await serve({"m": fallover.MockClient(_echo)}, max_body_bytes=1000)
    big = json.dumps(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 2000}]}
    ).encode()
    status, payload = await _post(f"{gw.url}/v1/messages", big)
    assert status == 413
    assert payload["error"]["type"] == "request_too_large"
    async with gw.openai() as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x" * 2000}]
            )
    assert info.value.status_code == 413


async def _echo(request: fallover.ChatRequest) -> str:
    return request.messages[-1].text


async def test_hostile_bodies_leave_other_calls_unharmed(serve: ServeFactory) -> None:
    """Garbage, deep nesting and odd values each get a 4xx, and a good call still succeeds."""
    gw = await serve({"m": fallover.MockClient(_echo)})
    url = f"{gw.url}/v1/chat/completions"
    hostile = [
        b"\xff\xfe\x00garbage",
        b"[" * 10000 + b"]" * 10000,
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 1e999}',
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        b'{"model": "m", "messages": [{"role": "user", "content": {"a": 1}}]}',
        b'{"model": "' + b"m" * 100000 + b'", "messages": [{"role": "user", "content": "x"}]}',
        b"",
    ]
    statuses = [(await _post(url, body))[0] for body in hostile]
    assert all(400 <= s < 500 for s in statuses), statuses
    async with gw.openai() as client:
        ok = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "still fine"}]
        )
    assert ok.choices[0].message.content == "still fine"


async def test_concurrency_bound_answers_429(serve: ServeFactory) -> None:
    """Past max_concurrency calls in flight, one more is 429 with Retry-After."""
    entered, release = anyio.Event(), anyio.Event()

    async def slow(request: fallover.ChatRequest) -> str:
        entered.set()
        await release.wait()
        return "done"

    gw = await serve({"m": fallover.MockClient(slow)}, max_concurrency=1)
    async with gw.openai() as client, anyio.create_task_group() as tg:
        results: list[str | None] = []

        async def first() -> None:
            r = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "a"}]
            )
            results.append(r.choices[0].message.content)

        tg.start_soon(first)
        await entered.wait()
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "b"}]
            )
        assert info.value.response.headers["retry-after"] == "1"
        release.set()
    assert results == ["done"]


async def test_parked_pool_is_429_with_retry_after(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """A pool whose every member is rate-limited answers 429 with Retry-After, call after call."""
    sim.set_scenario(
        Scenario(
            default=Fault(fail_rate=1.0, fail_status=429, retry_after=30),
        )
    )
    gw = await _served_sim(serve, sim, tmp_path)
    async with gw.anthropic() as client:
        for _ in range(2):
            with pytest.raises(anthropic.RateLimitError) as info:
                await client.messages.create(
                    model="review", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                )
            retry_after = int(info.value.response.headers["retry-after"])
            assert 1 <= retry_after <= 30
            assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_upstream_key_never_reaches_the_client(serve: ServeFactory) -> None:
    """An upstream that echoes the gateway's key in its error: the client never sees the key."""
    app = web.Application()

    async def echo_key(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        return web.json_response(
            {"error": {"type": "invalid_request_error", "message": f"bad request from {auth}"}},
            status=400,
        )

    app.router.add_post("/v1/chat/completions", echo_key)
    runner, url = await _listen(app)
    try:
        member = fallover.OpenAIClient(model="m", base_url=f"{url}/v1", api_key=SECRET)
        gw = await serve({"m": member})
        for path, body in (
            (
                "/v1/chat/completions",
                {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            ),
            (
                "/v1/messages",
                {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            ),
        ):
            async with (
                aiohttp.ClientSession() as session,
                session.post(gw.url + path, json=body) as resp,
            ):
                text = await resp.text()
            assert resp.status == 400
            assert SECRET not in text and SECRET[:12] not in text
    finally:
        await runner.cleanup()


# -- auth --------------------------------------------------------------------------------------


async def test_keys_are_required_when_configured(serve: ServeFactory) -> None:
    """With keys set, a missing or wrong key is 401; Bearer and x-api-key both work."""
    gw = await serve({"m": fallover.MockClient(_echo)}, api_keys=["k1", "k2"])
    async with gw.openai(key="wrong") as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
    async with gw.anthropic(key="wrong") as wrong:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    status, payload = await _post(
        f"{gw.url}/v1/messages",
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}',
    )
    assert (status, payload["error"]["type"]) == (401, "authentication_error")
    async with gw.openai(key="k2") as bearer:
        r = await bearer.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "via bearer"}]
        )
        assert r.choices[0].message.content == "via bearer"
    async with gw.anthropic(key="k1") as xkey:
        m = await xkey.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "via x-api-key"}]
        )
        assert m.content[0].text == "via x-api-key"  # type: ignore[union-attr]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gw.url}/v1/models") as listing,
        session.get(f"{gw.url}/healthz") as health,
    ):
        assert listing.status == 401
        assert health.status == 200


# -- disconnects -------------------------------------------------------------------------------


async def test_client_disconnect_closes_upstream_and_parks_nothing(serve: ServeFactory) -> None:
    """A client that goes away cancels the upstream call (its connection closes); nothing parks."""
    arrived, closed = anyio.Event(), anyio.Event()
    calls = 0

    async def upstream(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            arrived.set()
            try:
                await asyncio.Event().wait()
            finally:
                closed.set()
        return _completion("from a")

    async with _gateway_in_front_of(serve, upstream) as client:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(
                    lambda: client.chat.completions.create(
                        model="pool", messages=[{"role": "user", "content": "x"}]
                    )
                )
                await arrived.wait()
                tg.cancel_scope.cancel()
            await closed.wait()
        raw = await client.chat.completions.with_raw_response.create(
            model="pool", messages=[{"role": "user", "content": "again"}]
        )
    assert raw.headers["x-fallover-alias"] == "up/a"
    assert raw.parse().choices[0].message.content == "from a"


async def test_stream_client_disconnect_closes_upstream_and_parks_nothing(
    serve: ServeFactory,
) -> None:
    """A streaming client that leaves mid-stream closes the upstream stream; nothing parks."""
    closed = anyio.Event()
    calls = 0

    async def upstream(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        calls += 1
        if calls > 1:
            return _completion("again")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"model": "a", "choices": [{"index": 0, "delta": {"content": "first"}}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        try:
            await asyncio.Event().wait()
        finally:
            closed.set()
        return resp

    async with _gateway_in_front_of(serve, upstream) as client:
        with anyio.fail_after(10):
            stream = await client.chat.completions.create(
                model="pool", messages=[{"role": "user", "content": "x"}], stream=True
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content == "first":
                    break
            await stream.close()
            await closed.wait()
        raw = await client.chat.completions.with_raw_response.create(
            model="pool", messages=[{"role": "user", "content": "again"}]
        )
    assert raw.headers["x-fallover-alias"] == "up/a"


# -- metrics -----------------------------------------------------------------------------------


async def test_metrics_parse_as_prometheus_text(serve: ServeFactory) -> None:
    """/metrics is Prometheus text with the request duration by route and status."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    gw = await serve({"m": fallover.MockClient(_echo)}, meter_provider=provider, registry=registry)
    async with gw.openai() as client:
        for _ in range(3):
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="missing", messages=[{"role": "user", "content": "x"}]
            )
    async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    duration = families["http_server_request_duration_seconds"]
    counts = {
        (
            s.labels["http_route"],
            s.labels["http_response_status_code"],
            s.labels["fallover_model"],
        ): s.value
        for s in duration.samples
        if s.name.endswith("_count")
    }
    assert counts == {
        ("/v1/chat/completions", "200", "m"): 3,
        ("/v1/chat/completions", "404", "unknown"): 1,
    }
    provider.shutdown()


ATTEMPT_429 = fallover.Attempt(alias="a/x", outcome="error", status=429)
ATTEMPT_500 = fallover.Attempt(alias="b/y", outcome="error", status=500)


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [
        (fallover.BadRequest("bad", alias="a/x", status=400), 400, None),
        (fallover.ContextTooLong("long", alias="a/x"), 400, None),
        (fallover.ContentFiltered("no", alias="a/x"), 400, None),
        (fallover.AuthFailed("key", alias="a/x", status=401), 502, None),
        (fallover.RateLimited("slow", alias="a/x", status=429, retry_after=7.2), 429, "8"),
        (fallover.ServerFailed("down", alias="a/x", status=500), 502, None),
        (fallover.ProviderTimeout("silent", alias="a/x"), 504, None),
        (fallover.AllModelsFailed([ATTEMPT_429], retry_after=12.5), 429, "13"),
        (fallover.AllModelsFailed([ATTEMPT_429, ATTEMPT_500], retry_after=3), 503, "3"),
        (fallover.AllModelsFailed([ATTEMPT_500]), 502, None),
        (fallover.RoutingTimeout(30, [ATTEMPT_500]), 504, None),
        (RuntimeError("a bug with a secret " + SECRET), 500, None),
    ],
)
async def test_status_table(
    serve: ServeFactory, error: Exception, status: int, retry_after: str | None
) -> None:
    """Each error maps to its documented status, with Retry-After when the pool knows one."""

    async def fail(request: fallover.ChatRequest) -> str:
        raise error

    gw = await serve({"m": fallover.MockClient(fail)})
    body = b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gw.url}/v1/chat/completions", data=body) as resp,
    ):
        text = await resp.text()
    assert resp.status == status
    assert resp.headers.get("Retry-After") == retry_after
    assert SECRET not in text


async def test_metrics_include_the_routings_instruments(
    serve: ServeFactory, sim: Simulator, tmp_path: Path
) -> None:
    """One registry: the pool's GenAI call metrics and fallover counters show in /metrics."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry
    from prometheus_client.parser import text_string_to_metric_families

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    fallover.instrument(meter_provider=provider)
    try:
        sim.set_scenario(Scenario(models={"model-a": Fault(statuses=[503])}))
        gw = await _served_sim(serve, sim, tmp_path, meter_provider=provider, registry=registry)
        async with gw.openai() as client:
            await client.chat.completions.create(
                model="review", messages=[{"role": "user", "content": "x"}]
            )
        async with aiohttp.ClientSession() as session, session.get(f"{gw.url}/metrics") as resp:
            families = {f.name for f in text_string_to_metric_families(await resp.text())}
    finally:
        fallover.instrument()
        provider.shutdown()
    assert {
        "http_server_request_duration_seconds",
        "gen_ai_client_operation_duration_seconds",
        "fallover_fallovers",
    } <= families


class _GatedStore(fallover.MemoryCooldowns):
    """A store whose ``open`` finishes only when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.opens = 0

    async def open(self) -> None:
        self.entered.set()
        await self.release.wait()
        self.opens += 1


async def test_stores_are_open_before_the_gateway_listens(serve: ServeFactory) -> None:
    """The gateway opens each pool's store once, and listens only after every open has finished."""
    store = _GatedStore()
    pool = fallover.AsyncRouter(
        [fallover.MockClient(_echo, alias="m/a"), fallover.MockClient(_echo, alias="m/b")],
        store=store,
    )
    started: list[Served] = []

    async def start() -> None:
        started.append(await serve({"pool": pool, "alias": pool}))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            await store.entered.wait()
            await anyio.wait_all_tasks_blocked()
            assert started == []  # still opening: not listening yet
            store.release.set()
    assert store.opens == 1
    async with started[0].openai() as client:
        reply = await client.chat.completions.create(
            model="pool", messages=[{"role": "user", "content": "x"}]
        )
    assert reply.choices[0].message.content
