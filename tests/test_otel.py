"""OpenTelemetry: GenAI spans and metrics per call, the log lines, and nothing when off."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import fallover as f
from fallover.testing import Fault, MockClient, MockTransport, Response

from .conftest import SECRET, FakeClock, SimFactory, ask

USAGE = f.Usage(input_tokens=3, output_tokens=4, cache_read_tokens=2, reasoning_tokens=1)


@dataclass
class Otel:
    """What fallover recorded during one test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def calls(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.kind is SpanKind.CLIENT]

    def attempts(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name.startswith("attempt ")]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out[m.name] = list(m.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Otel]:
    """Fresh in-memory providers that fallover records into, for one test."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    f.instrument(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    yield Otel(exporter, reader)
    f.instrument()


def answer(text: str = "fine", model: str = "m-2024") -> MockClient:
    async def handler(request: f.ChatRequest) -> f.ChatResponse:
        return f.ChatResponse(
            text=text, model=model, alias="openai/good", finish_reason="stop", usage=USAGE
        )

    return MockClient(handler, alias="openai/good")


def failing(alias: str = "anthropic/bad", exc: Exception | None = None) -> MockClient:
    async def handler(request: f.ChatRequest) -> str:
        raise exc or f.RateLimited("slow down", alias=alias, status=429)

    return MockClient(handler, alias=alias)


async def test_healthy_call_is_one_client_span_with_genai_attributes(otel: Otel) -> None:
    """A healthy call: one CLIENT span `chat {pool}` with the GenAI attributes, one attempt."""
    router = f.AsyncRouter([answer(), failing()], name="review")
    await router.complete(ask())
    (call,) = otel.calls()
    assert call.name == "chat review"
    attrs = dict(call.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "review"
    assert attrs["gen_ai.response.model"] == "m-2024"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 3
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 2
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 1
    assert attrs["fallover.alias"] == "openai/good"
    assert "error.type" not in attrs
    (attempt,) = otel.attempts()
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    assert dict(attempt.attributes or {})["fallover.outcome"] == "ok"


async def test_fallover_gives_two_attempt_spans_the_first_with_error_type(otel: Otel) -> None:
    """A fallover: two attempt spans, the first with error.type; a park event on the call."""
    await f.AsyncRouter([failing(), answer()]).complete(ask())
    first, second = otel.attempts()
    a1, a2 = dict(first.attributes or {}), dict(second.attributes or {})
    assert (a1["fallover.alias"], a1["fallover.outcome"], a1["error.type"]) == (
        "anthropic/bad",
        "error",
        "RateLimited",
    )
    assert first.status.status_code is StatusCode.ERROR
    assert "slow down" in (first.status.description or "")
    assert (a2["fallover.alias"], a2["fallover.outcome"]) == ("openai/good", "ok")
    assert "error.type" not in a2
    (call,) = otel.calls()
    assert call.status.status_code is StatusCode.UNSET
    (park,) = [e for e in call.events if e.name == "fallover.park"]
    assert dict(park.attributes or {})["fallover.alias"] == "anthropic/bad"
    metrics = otel.metrics()
    assert [(dict(p.attributes), p.value) for p in metrics["fallover.fallovers"]] == [
        ({"fallover.alias": "anthropic/bad", "error.type": "RateLimited"}, 1)
    ]
    assert [p.value for p in metrics["fallover.parks"]] == [1]


async def test_exhaustion_marks_the_call_span_failed(otel: Otel) -> None:
    """Every member fails: the call span has error.type AllModelsFailed, each attempt its own."""
    # Errors a person must act on: their parks are not waited for, so the call ends at once.
    router = f.AsyncRouter(
        [
            failing("a/one", f.AuthFailed("bad key", alias="a/one", status=401)),
            failing("b/two", f.ModelNotFound("no such model", alias="b/two", status=404)),
        ]
    )
    with pytest.raises(f.AllModelsFailed):
        await router.complete(ask())
    (call,) = otel.calls()
    assert dict(call.attributes or {})["error.type"] == "AllModelsFailed"
    assert call.status.status_code is StatusCode.ERROR
    assert [dict(s.attributes or {})["error.type"] for s in otel.attempts()] == [
        "AuthFailed",
        "ModelNotFound",
    ]
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "AllModelsFailed" and duration.count == 1


async def test_cancellation_ends_the_spans_without_a_provider_error(otel: Otel) -> None:
    """A cancelled call: its spans end, outcome cancelled, no error recorded, no duration."""
    never = anyio.Event()

    async def hang(request: f.ChatRequest) -> str:
        await never.wait()
        return "unreachable"

    router = f.AsyncRouter([MockClient(hang, alias="a/slow"), answer()])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(router.complete, ask())
            await anyio.wait_all_tasks_blocked()
            assert otel.calls() == []  # still running
            tg.cancel_scope.cancel()
    (call,) = otel.calls()
    (attempt,) = otel.attempts()
    for span in (call, attempt):
        attrs = dict(span.attributes or {})
        assert attrs["fallover.outcome"] == "cancelled"
        assert "error.type" not in attrs
        assert span.status.status_code is StatusCode.UNSET
    assert "gen_ai.client.operation.duration" not in otel.metrics()


async def test_stream_span_ends_with_the_stream_and_records_time_to_first_chunk(
    otel: Otel,
) -> None:
    """A stream: the call span ends when the stream does; time to first chunk is recorded."""

    async def pieces() -> AsyncIterator[str]:
        for piece in ("a", "b", "c"):
            yield piece

    async def handler(request: f.ChatRequest) -> AsyncIterator[str]:
        return pieces()

    router = f.AsyncRouter([MockClient(handler, alias="openai/s"), failing()])
    events = router.stream(ask())
    first = await anext(events)
    assert isinstance(first, f.TextDelta)
    assert otel.calls() == []  # the call is still streaming
    rest = [event async for event in events]
    assert isinstance(rest[-1], f.Completed)
    (call,) = otel.calls()
    attrs = dict(call.attributes or {})
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["fallover.outcome"] == "ok"
    assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
    (ttfc,) = otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert isinstance(ttfc, HistogramDataPoint) and ttfc.count == 1


async def test_a_stream_closed_early_ends_its_span_as_cancelled(otel: Otel) -> None:
    """A consumer that stops reading ends the call span, outcome cancelled, no error."""

    async def pieces() -> AsyncIterator[str]:
        for piece in ("a", "b", "c"):
            yield piece

    async def handler(request: f.ChatRequest) -> AsyncIterator[str]:
        return pieces()

    events = f.AsyncRouter([MockClient(handler, alias="openai/s"), failing()]).stream(ask())
    await anext(events)
    await events.aclose()  # type: ignore[attr-defined]
    (call,) = otel.calls()
    assert dict(call.attributes or {})["fallover.outcome"] == "cancelled"
    assert call.status.status_code is StatusCode.UNSET


async def test_token_usage_sums_over_calls(otel: Otel) -> None:
    """Seven calls of 3 input and 4 output tokens: the token histogram sums 21 and 28."""
    router = f.AsyncRouter([answer(), failing()], name="pool")
    for _ in range(7):
        await router.complete(ask())
    points = otel.metrics()["gen_ai.client.token.usage"]
    sums = {p.attributes["gen_ai.token.type"]: (p.sum, p.count) for p in points}
    assert sums == {"input": (21, 7), "output": (28, 7)}
    assert all(p.attributes["gen_ai.request.model"] == "pool" for p in points)
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.count == 7 and duration.attributes["gen_ai.provider.name"] == "openai"


async def test_probe_is_an_event_and_counted(otel: Otel, clock: FakeClock) -> None:
    """When a park runs out, the call that probes the member says so on its span and counter."""
    calls = 0

    async def flaky(request: f.ChatRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise f.RateLimited("slow down", alias="a/flaky", status=429)
        return "back"

    router = f.AsyncRouter(
        [MockClient(flaky, alias="a/flaky"), answer()], store=f.MemoryCooldowns(clock=clock)
    )
    await router.complete(ask())
    clock.advance(60)
    resp = await router.complete(ask())
    assert resp.alias == "a/flaky"
    probing = otel.calls()[1]
    assert [dict(e.attributes or {}) for e in probing.events if e.name == "fallover.probe"] == [
        {"fallover.alias": "a/flaky"}
    ]
    assert [(dict(p.attributes), p.value) for p in otel.metrics()["fallover.probes"]] == [
        ({"fallover.alias": "a/flaky"}, 1)
    ]


async def test_no_contents_without_the_opt_in(otel: Otel) -> None:
    """Prompt and answer text reach no span unless content capture is turned on."""
    router = f.AsyncRouter([answer("ANSWER-TEXT"), failing()])
    await router.complete(ask("PROMPT-TEXT"))
    text = repr([(s.attributes, s.events) for s in otel.spans()])
    assert "PROMPT-TEXT" not in text and "ANSWER-TEXT" not in text


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


@pytest.mark.parametrize("how", ["keyword", "environment"])
async def test_contents_recorded_on_opt_in(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the opt-in, the call span carries input and output messages as GenAI JSON."""
    exporter = InMemorySpanExporter()
    if how == "environment":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        f.instrument(tracer_provider=_provider(exporter))
    else:
        f.instrument(tracer_provider=_provider(exporter), capture_content=True)
    try:
        await f.AsyncRouter([answer("ANSWER-TEXT"), failing()]).complete(ask("PROMPT-TEXT"))
    finally:
        f.instrument()
    (call,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    attrs = dict(call.attributes or {})
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "PROMPT-TEXT"}]}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "ANSWER-TEXT"}],
            "finish_reason": "stop",
        }
    ]


async def test_no_secret_in_any_span_or_metric_under_faults(
    otel: Otel, simulator: SimFactory
) -> None:
    """Faults of every kind, one echoing the key: no span, event or metric carries the key."""
    sim = await simulator(
        e503=Fault(statuses=[503], repeat=True),
        reset=Fault(reset=True),
        html=Fault(statuses=[502], html=True, repeat=True),
        cut=Fault(stream_cut_after=1),
        e404=Fault(statuses=[404], repeat=True),
    )
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}"}}

    def client(model: str, **kw: object) -> f.OpenAIClient:
        return f.OpenAIClient(
            model=model, base_url=sim.base_url + "/v1", api_key=SECRET, alias=f"sim/{model}", **kw
        )

    def echoing() -> f.OpenAIClient:
        return client("echo", transport=MockTransport(lambda r: Response(401, json=echo)))

    faulty = [client(m) for m in ("e503", "reset", "html")] + [echoing()]
    async with f.AsyncRouter([*faulty, client("ok")]) as router:
        assert (await router.complete(ask())).alias == "sim/ok"
    async with f.AsyncRouter([echoing(), client("e404")]) as router:
        with pytest.raises(f.AllModelsFailed):
            await router.complete(ask())
    async with f.AsyncRouter([client("cut"), client("ok")]) as router:
        events = [e async for e in router.stream(ask(), on_interrupt="restart")]
        assert isinstance(events[-1], f.Completed)
    seen = repr(
        [
            (s.name, s.attributes, s.status.description, [e.attributes for e in s.events])
            for s in otel.spans()
        ]
    ) + repr(otel.reader.get_metrics_data())
    assert len(otel.attempts()) == 9
    assert SECRET not in seen


async def test_one_info_line_per_fallover_and_per_park(caplog: pytest.LogCaptureFixture) -> None:
    """The `fallover` logger says, at INFO, which member fell over or was parked, and why."""
    caplog.set_level(logging.INFO, logger="fallover")
    await f.AsyncRouter([failing(), answer()]).complete(ask())
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines == [
        "parked anthropic/bad for 5.0s: RateLimited: slow down",
        "anthropic/bad failed, falling over: RateLimited: slow down",
    ]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_spans_until_an_sdk_is_configured_then_spans_with_no_call_into_fallover() -> None:
    """No global provider: nothing recorded; once the app sets one, the next call is traced."""
    done = _run(
        """
        import asyncio, fallover as f
        from fallover.testing import MockClient
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        async def ok(request):
            return "fine"

        router = f.AsyncRouter([MockClient(ok, alias="a/x"), MockClient(ok, alias="b/y")])
        req = f.ChatRequest(messages=[f.Message(role="user", content="hi")])
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        asyncio.run(router.complete(req))
        trace.set_tracer_provider(provider)
        asyncio.run(router.complete(req))
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['attempt a/x', 'chat a/x,b/y']"


def test_prometheus_scrape_shows_the_same_instruments() -> None:
    """A Prometheus reader on the global meter provider (as the gateway sets) shows the calls."""
    done = _run(
        """
        import asyncio, fallover as f
        from fallover.testing import MockClient
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import REGISTRY, generate_latest

        async def bad(request):
            raise f.RateLimited("slow down", alias="a/bad", status=429)

        async def ok(request):
            return f.ChatResponse(text="fine", model="m", alias="b/ok",
                                  usage=f.Usage(input_tokens=3, output_tokens=4))

        metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
        router = f.AsyncRouter([MockClient(bad, alias="a/bad"), MockClient(ok, alias="b/ok")],
                               name="review")
        asyncio.run(router.complete(f.ChatRequest(messages=[f.Message(role="user", content="hi")])))
        print(generate_latest(REGISTRY).decode())
        """
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "gen_ai_client_operation_duration_seconds_count{" in text
    assert 'gen_ai_request_model="review"' in text
    assert "gen_ai_client_token_usage_sum{" in text and 'gen_ai_token_type="output"' in text
    assert "fallover_fallovers_total{" in text and 'fallover_alias="a/bad"' in text
    assert "fallover_parks_total{" in text


def test_without_the_api_nothing_is_imported_and_instrument_says_what_to_install() -> None:
    """With OpenTelemetry absent, calls work, nothing is imported, instrument() names the extra."""
    done = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if not installed
        import asyncio, fallover as f
        from fallover.testing import MockClient

        async def ok(request):
            return "fine"

        router = f.AsyncRouter([MockClient(ok, alias="a/x"), MockClient(ok, alias="b/y")])
        req = f.ChatRequest(messages=[f.Message(role="user", content="hi")])
        print(asyncio.run(router.complete(req)).text)
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.")))
        try:
            f.instrument(tracer_provider=object())
        except RuntimeError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    text, imported, error = done.stdout.splitlines()
    assert (text, imported) == ("fine", "[]")
    assert "pip install 'fallover[otel]'" in error


def test_instrument_refuses_what_is_not_a_provider() -> None:
    """instrument() names the argument that is not an OpenTelemetry provider."""
    with pytest.raises(TypeError, match=r"tracer_provider=\.\.\.\) got str"):
        f.instrument(tracer_provider="console")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"meter_provider=\.\.\.\) got int"):
        f.instrument(meter_provider=3)  # type: ignore[arg-type]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_nested_pool_hangs_under_its_attempt_and_counts_tokens_once(
    otel: Otel, streamed: bool
) -> None:
    """A pool inside a pool: its call span is a child of the outer attempt; tokens count once."""
    inner = f.AsyncRouter([failing("a/inner"), answer()], name="inner")
    outer = f.AsyncRouter([inner, failing("c/last")], name="outer")
    if streamed:
        assert isinstance([e async for e in outer.stream(ask())][-1], f.Completed)
    else:
        await outer.complete(ask())
    by_name = {s.name: s for s in otel.spans()}
    outer_call, inner_call = by_name["chat outer"], by_name["chat inner"]
    outer_attempt = by_name["attempt inner"]
    assert outer_attempt.parent is not None
    assert outer_attempt.parent.span_id == outer_call.context.span_id
    assert inner_call.parent is not None
    assert inner_call.parent.span_id == outer_attempt.context.span_id
    assert "gen_ai.usage.input_tokens" in dict(outer_call.attributes or {})
    assert "gen_ai.usage.input_tokens" not in dict(inner_call.attributes or {})
    points = otel.metrics()["gen_ai.client.token.usage"]
    assert {p.attributes["gen_ai.token.type"]: p.sum for p in points} == {"input": 3, "output": 4}
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["gen_ai.request.model"] == "outer" and duration.count == 1
    assert [(dict(p.attributes), p.value) for p in otel.metrics()["fallover.fallovers"]] == [
        ({"fallover.alias": "a/inner", "error.type": "RateLimited"}, 1)
    ]


def openai_answer(request: object) -> Response:
    return Response(
        json={
            "id": "c1",
            "object": "chat.completion",
            "model": "m-0601",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "hi"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
    )


def plain(model: str = "m") -> f.OpenAIClient:
    return f.OpenAIClient(
        model=model,
        api_key=SECRET,
        base_url="https://api.example/v1",
        transport=MockTransport(openai_answer),
    )


async def test_a_plain_client_records_its_own_call(otel: Otel) -> None:
    """A client used alone is a CLIENT span `chat {model}` with its provider and tokens."""
    async with plain() as client:
        await client.complete(ask())
    (call,) = otel.spans()
    assert call.name == "chat m" and call.kind is SpanKind.CLIENT
    attrs = dict(call.attributes or {})
    assert (attrs["gen_ai.provider.name"], attrs["gen_ai.request.model"]) == ("openai", "m")
    assert (attrs["gen_ai.response.model"], attrs["gen_ai.usage.output_tokens"]) == ("m-0601", 4)
    (duration,) = otel.metrics()["gen_ai.client.operation.duration"]
    assert duration.count == 1


async def test_a_plain_client_stream_ends_its_span_with_the_stream(
    otel: Otel, simulator: SimFactory
) -> None:
    """A client's stream used alone: its span ends with the stream, first chunk timed."""
    sim = await simulator(ok=Fault(reply="one two three"))
    async with f.OpenAIClient(model="ok", base_url=sim.base_url + "/v1", api_key=SECRET) as c:
        events = c.stream(ask())
        await anext(events)
        assert otel.calls() == []
        assert isinstance([e async for e in events][-1], f.Completed)
    (call,) = otel.calls()
    assert call.name == "chat ok"
    assert "gen_ai.response.time_to_first_chunk" in dict(call.attributes or {})
    assert len(otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]) == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_plain_client_in_a_pool_is_the_pools_attempt(
    otel: Otel, simulator: SimFactory, streamed: bool
) -> None:
    """Inside a pool a client records no call of its own: one call span, tokens once."""
    sim = await simulator(a=Fault(reply="fine"))
    members = [f.OpenAIClient(model=m, base_url=sim.base_url + "/v1", api_key=SECRET) for m in "ab"]
    async with f.AsyncRouter(members, name="pool") as router:
        if streamed:
            events = [e async for e in router.stream(ask())]
            assert isinstance(events[-1], f.Completed)
            usage = events[-1].response.usage
        else:
            usage = (await router.complete(ask())).usage
    assert sorted(s.name for s in otel.spans()) == ["attempt openai/a", "chat pool"]
    assert usage is not None
    points = otel.metrics()["gen_ai.client.token.usage"]
    assert {p.attributes["gen_ai.token.type"]: (p.sum, p.count) for p in points} == {
        "input": (usage.input_tokens, 1),
        "output": (usage.output_tokens, 1),
    }


@pytest.mark.slow
async def test_the_gateways_metrics_page_shows_the_routing_instruments(
    simulator: SimFactory, tmp_path: Path
) -> None:
    """`fallover serve`'s /metrics carries the call, token and fallover instruments."""
    from prometheus_client.parser import text_string_to_metric_families

    sim = await simulator(e503=Fault(statuses=[503], repeat=True), ok=Fault(reply="fine"))
    base = sim.base_url + "/v1"
    config = tmp_path / "fallover.toml"
    config.write_text(
        f'[providers.bad]\nprotocol = "openai"\nbase_url = "{base}"\nmodel = "e503"\n'
        f'[providers.good]\nprotocol = "openai"\nbase_url = "{base}"\nmodel = "ok"\n'
        '[routing]\nname = "review"\nmodels = [{ provider = "bad" }, { provider = "good" }]\n'
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fallover",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stderr is not None
        with anyio.fail_after(30):
            while b"listening on http://" not in (line := await proc.stderr.readline()):
                assert line, "fallover serve exited before listening"
        url = f"http://127.0.0.1:{port}"
        body = {"model": "review", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"{url}/metrics") as resp:
                text = await resp.text()
    finally:
        proc.terminate()
        await proc.wait()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert (
        value("gen_ai_client_operation_duration_seconds_count", gen_ai_request_model="review") == 1
    )
    assert value("fallover_fallovers_total", fallover_alias="bad/e503") == 1
    assert value("fallover_parks_total", fallover_alias="bad/e503", error_type="ServerFailed") == 1
    assert value("gen_ai_client_token_usage_count", gen_ai_token_type="output") == 1


# -- hedging: two attempts at once, each its own span -------------------------------------


def current_span_id() -> int:
    return trace.get_current_span().get_span_context().span_id


def hedged_pair(seen: dict[str, list[int]]) -> tuple[MockClient, MockClient]:
    """A primary that never answers and a backup that does in three pieces; each notes the
    span current while it runs."""

    async def silent(request: f.ChatRequest) -> str:
        seen.setdefault("a/slow", []).append(current_span_id())
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def pieces() -> AsyncIterator[str]:
        for piece in ("x", "y", "z"):
            seen.setdefault("b/quick", []).append(current_span_id())
            yield piece

    async def quick(request: f.ChatRequest) -> AsyncIterator[str]:
        return pieces()

    return MockClient(silent, alias="a/slow"), MockClient(quick, alias="b/quick")


def check_hedged_spans(otel: Otel, seen: dict[str, list[int]]) -> None:
    (call,) = otel.calls()
    attrs = dict(call.attributes or {})
    assert (attrs["fallover.outcome"], attrs["fallover.alias"]) == ("ok", "b/quick")
    assert (attrs["fallover.attempts"], attrs["gen_ai.provider.name"]) == (2, "b")
    spans = {dict(s.attributes or {})["fallover.alias"]: s for s in otel.attempts()}
    assert sorted(spans) == ["a/slow", "b/quick"]
    for span in spans.values():
        assert span.parent is not None and span.parent.span_id == call.context.span_id
    loser, winner = dict(spans["a/slow"].attributes or {}), dict(spans["b/quick"].attributes or {})
    assert loser["fallover.outcome"] == "cancelled" and "error.type" not in loser
    assert spans["a/slow"].status.status_code is StatusCode.UNSET
    assert winner["fallover.outcome"] == "ok" and "error.type" not in winner
    # Each member ran under its own attempt's span, the winner's to its last piece.
    assert seen["a/slow"] == [spans["a/slow"].context.span_id]
    assert seen["b/quick"] == [spans["b/quick"].context.span_id] * 3
    metrics = otel.metrics()
    assert "fallover.fallovers" not in metrics and "fallover.parks" not in metrics
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1 and "error.type" not in duration.attributes


async def test_hedged_complete_records_each_attempt_on_its_own_span(otel: Otel) -> None:
    """A hedged complete(): two attempt spans under one call, the winner ok, the loser cancelled."""
    seen: dict[str, list[int]] = {}
    router = f.AsyncRouter(list(hedged_pair(seen)), hedge_after=0.01)
    with anyio.fail_after(5):
        resp = await router.complete(ask())
    assert resp.text == "xyz"
    check_hedged_spans(otel, seen)


async def test_hedged_stream_records_each_attempt_on_its_own_span(otel: Otel) -> None:
    """A hedged stream(): two attempt spans under one call, the winner ok, the loser cancelled."""
    seen: dict[str, list[int]] = {}
    router = f.AsyncRouter(list(hedged_pair(seen)), hedge_after=0.01)
    with anyio.fail_after(5):
        events = [event async for event in router.stream(ask())]
    assert [type(event) for event in events] == [f.TextDelta] * 3 + [f.Completed]
    check_hedged_spans(otel, seen)
    (first_chunk,) = otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert first_chunk.count == 1


async def test_a_hedge_cut_off_by_the_budget_ends_both_attempts_interrupted(otel: Otel) -> None:
    """Both hedged members silent until call_timeout: each attempt span ends interrupted."""

    async def silent(request: f.ChatRequest) -> str:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    members = [MockClient(silent, alias="a/one"), MockClient(silent, alias="b/two")]
    router = f.AsyncRouter(members, hedge_after=0.01, call_timeout=0.2)
    with anyio.fail_after(5), pytest.raises(f.RoutingTimeout):
        await router.complete(ask())
    outcomes = {
        dict(s.attributes or {})["fallover.alias"]: dict(s.attributes or {})["fallover.outcome"]
        for s in otel.attempts()
    }
    assert outcomes == {"a/one": "interrupted", "b/two": "interrupted"}
    (call,) = otel.calls()
    assert dict(call.attributes or {})["error.type"] == "RoutingTimeout"
