"""Telemetry: what a call pays for OpenTelemetry when it is off, and when it is on."""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import fallover as f
from fallover import _otel
from fallover.testing import MockClient

from ._common import REQ, Env, Figure, Goal, Stats, per_call, ratio

SCENARIO = """
[models.otel-a]
reply = "ok"
[models.otel-b]
reply = "ok"
"""


def _hook_cost(n: int) -> float:
    """Seconds per ``TELEMETRY.call()`` (the loop's own cost taken out)."""
    call = _otel.TELEMETRY.call
    start = time.perf_counter()
    for _ in range(n):
        pass
    loop = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        call("pool", REQ, stream=False)
    return max(time.perf_counter() - start - loop, 0.0) / n


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

    router = f.AsyncRouter([MockClient(answer, alias="m/a"), MockClient(answer, alias="m/b")])
    rows: list[list[str]] = []
    data: dict[str, Any] = {}
    goals: list[Goal] = []
    states = [("API loaded, no provider", "loaded")]
    if "opentelemetry" not in sys.modules:
        states.insert(0, ("API not loaded", "absent"))
    for label, key in states:
        if key == "loaded":
            import opentelemetry.metrics
            import opentelemetry.trace  # noqa: F401  (what an application's import does)
        # Interleaved, so both sides of each ratio see the same load on a shared machine.
        calls, hooks, shares = [], [], []
        for _ in range(env.repeats):
            routed = await per_call(lambda: router.complete(REQ), n, 1)
            hook = _hook_cost(n * 10)
            calls.append(routed.median)
            hooks.append(hook)
            shares.append(hook / routed.median)
        routed_s, hook_s, share = Stats.of(calls), Stats.of(hooks), statistics.median(shares)
        data[key] = {"router_call": routed_s.json(), "hook": hook_s.json(), "share": share}
        rows.append([label, routed_s.us(), f"{hook_s.median * 1e9:,.0f} ns", f"{share:.2%}"])
        goals.append(Goal(f"hook ÷ routed call, {label}", share * 100, 2.0, unit="%"))
    return Figure(
        "otel_off",
        "Telemetry off",
        "With no OpenTelemetry provider, a call pays for one `TELEMETRY.call()` that returns "
        "None (the other hooks are `if rec is not None` tests). Measured beside a routed call "
        "over two scripted members (no HTTP), the cheapest call the router makes, so the share "
        "is the largest it can be; a call over HTTP costs tens of times more.",
        ["state", "routed call", "hook", "hook ÷ call"],
        rows,
        data,
        goals,
    )


async def on(env: Env) -> Figure:
    """A routed call over loopback HTTP with telemetry off, then recording spans and metrics."""
    n = env.n(300, 20)
    router = f.AsyncRouter([env.client("otel-a"), env.client("otel-b")])
    tracer_provider, meter_provider = _sdk()
    quiet: list[float] = []
    loud: list[float] = []
    async with router:
        try:
            for _ in range(env.repeats):  # interleaved: both see the same load
                f.instrument()
                quiet.append((await per_call(lambda: router.complete(REQ), n, 1)).median)
                f.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
                loud.append((await per_call(lambda: router.complete(REQ), n, 1)).median)
        finally:
            f.instrument()
            tracer_provider.shutdown()
            meter_provider.shutdown()
    off_s, on_s = Stats.of(quiet), Stats.of(loud)
    return Figure(
        "otel_on",
        "Telemetry on",
        "`AsyncRouter.complete` over two healthy members on loopback, with no provider and "
        "with the OpenTelemetry SDK recording every span (exported nowhere) and metric, "
        "measured in turns.",
        ["off", "on", "on ÷ off"],
        [[off_s.us(), on_s.us(), f"{ratio(on_s, off_s):.2f}×"]],
        {"off": off_s.json(), "on": on_s.json(), "on_vs_off": ratio(on_s, off_s)},
    )


FIGURES = [off, on]
