"""The gateway's own instruments, and the Prometheus text ``/metrics`` serves.

One instrumentation: the gateway records through the OpenTelemetry metrics
API (HTTP server semantic conventions), like the library's call metrics, and
``/metrics`` renders the prometheus-client registry that an OpenTelemetry
``PrometheusMetricReader`` feeds. ``fallover serve`` installs that reader on
the global meter provider when the process has none, so every instrument in
the process (the gateway's and the routing's) reaches one registry. Without
the OpenTelemetry API installed, nothing is recorded.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["GatewayMetrics", "install_prometheus", "render"]

log = logging.getLogger("fallover")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayMetrics:
    """``http.server.request.duration`` and ``http.server.active_requests`` for the gateway."""

    def __init__(self, meter_provider: Any | None = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError:  # the otel extra is not installed: record nothing
            self._duration: Any = None
            self._active: Any = None
            return
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("fallover.serve")
        self._duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of gateway requests, from the body read to the last byte.",
        )
        self._active = meter.create_up_down_counter(
            "http.server.active_requests",
            unit="{request}",
            description="Gateway requests in flight.",
        )

    def started(self, route: str) -> None:
        """A request on ``route`` began."""
        if self._active is not None:
            self._active.add(1, {"http.route": route, "http.request.method": "POST"})

    def finished(self, route: str, status: int, seconds: float, model: str) -> None:
        """A request on ``route`` ended with ``status`` after ``seconds``."""
        if self._active is None:
            return
        self._active.add(-1, {"http.route": route, "http.request.method": "POST"})
        self._duration.record(
            seconds,
            {
                "http.route": route,
                "http.request.method": "POST",
                "http.response.status_code": status,
                "fallover.model": model,
            },
        )


def install_prometheus() -> bool:
    """Feed the global meter provider into prometheus-client's registry; False when unavailable.

    A provider the application already configured is left alone (its readers decide).
    """
    try:
        from opentelemetry import metrics
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
    except ImportError:
        log.warning(
            "fallover serve: /metrics is empty: install opentelemetry-sdk and "
            "opentelemetry-exporter-prometheus (pip install 'fallover[serve]')"
        )
        return False
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        return True
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    return True


def render(registry: Any | None) -> bytes | None:
    """The registry in Prometheus text format, or None when prometheus-client is missing."""
    try:
        import prometheus_client
    except ImportError:
        return None
    return bytes(prometheus_client.generate_latest(registry or prometheus_client.REGISTRY))
