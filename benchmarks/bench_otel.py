"""Telemetry: what a call pays for OpenTelemetry when it is off, and when it is on."""

from __future__ import annotations

import sys
import time
from typing import Any

import fallover as f
from fallover import _otel

from ._common import REQ, Env, Figure, Goal, Stats, per_call, ratio

SCENARIO = """
[models.otel-a]
reply = "ok"
[models.otel-b]
reply = "ok"
"""


def _hook_cost(n: int, repeats: int) -> Stats:
    """Seconds per ``TELEMETRY.call()``: the whole of what a call pays while telemetry is off."""
    call = _otel.TELEMETRY.call
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            call("pool", REQ, stream=False)
        samples.append((time.perf_counter() - start) / n)
    return Stats.of(samples)


def _sdk() -> tuple[Any, Any]:
    """Tracer and meter providers that record everything and export nowhere."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


async def off(env: Env) -> Figure:
    """Off means free: the hook's cost beside a whole routed call, API not loaded and loaded."""
    n = env.n(3000, 200)

    async def answer(request: f.ChatRequest) -> str:
        return "ok"

    router = f.AsyncRouter([f.MockClient(answer, alias="m/a"), f.MockClient(answer, alias="m/b")])
    rows: list[list[str]] = []
    data: dict[str, Any] = {}
    goals: list[Goal] = []
    states = [("API loaded, no provider", "loaded")]
    if "opentelemetry.trace" not in sys.modules:
        states.insert(0, ("API not loaded", "absent"))
    for label, key in states:
        if key == "loaded":
            import opentelemetry.metrics
            import opentelemetry.trace  # noqa: F401  (what an application's import does)
        routed = await per_call(lambda: router.complete(REQ), n, env.repeats)
        hook = _hook_cost(n * 10, env.repeats)
        share = hook.median / routed.median
        data[key] = {"router_call": routed.json(), "hook": hook.json(), "share": share}
        rows.append([label, routed.us(), f"{hook.median * 1e9:,.0f} ns", f"{share:.2%}"])
        goals.append(Goal(f"hook ÷ routed call, {label}", share * 100, 2.0, unit="%"))
    return Figure(
        "otel_off",
        "Telemetry off",
        "With no OpenTelemetry provider, a call pays for one `TELEMETRY.call()` that returns "
        "None (the other hooks are `if rec is not None` tests). Measured beside a routed call "
        "over two scripted members (no HTTP), the cheapest call the router makes, so the share "
        "is the largest it can be.",
        ["state", "routed call", "hook", "hook ÷ call"],
        rows,
        data,
        goals,
    )


async def on(env: Env) -> Figure:
    """A routed call over loopback HTTP with telemetry off, then recording spans and metrics."""
    n = env.n(300, 20)
    router = f.AsyncRouter([env.client("otel-a"), env.client("otel-b")])
    async with router:
        quiet = await per_call(lambda: router.complete(REQ), n, env.repeats)
        tracer_provider, meter_provider = _sdk()
        f.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
        try:
            loud = await per_call(lambda: router.complete(REQ), n, env.repeats)
        finally:
            f.instrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()
    return Figure(
        "otel_on",
        "Telemetry on",
        "`AsyncRouter.complete` over two healthy members on loopback, first with no provider, "
        "then with the OpenTelemetry SDK recording every span (exported nowhere) and metric.",
        ["off", "on", "on ÷ off"],
        [[quiet.us(), loud.us(), f"{ratio(loud, quiet):.2f}×"]],
        {"off": quiet.json(), "on": loud.json(), "on_vs_off": ratio(loud, quiet)},
    )


FIGURES = [off, on]
