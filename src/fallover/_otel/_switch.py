"""Whether telemetry is on, decided cheaply per call; and the log lines a person reads.

Off must cost nothing: while no OpenTelemetry provider is set, a call costs a
dictionary lookup (the API is not even imported when the application has not
imported it) or two attribute reads (once it has). The global providers can
be set only once, so a provider once seen is kept; until then each call looks
again, so spans flow from the first call after the application configures an
SDK, with no call into fallover. ``instrument()`` points fallover at given
providers instead (tests, the gateway's Prometheus registry).
"""

from __future__ import annotations

import logging
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from .._types import ChatRequest
    from ._record import CallRecorder, Live

__all__ = ["TELEMETRY", "Telemetry", "fell_over", "instrument", "parked", "probed"]

log = logging.getLogger("fallover")

CAPTURE_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""The opt-in to record message contents, shared with OpenTelemetry's GenAI instrumentations."""

_PROVIDER_ENVS: Final = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
_UNSET: Final = object()
_MODULES: Final = sys.modules


def _capture_from_env() -> bool:
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@final
class Telemetry:
    """The one switch the router asks at the start of each call."""

    __slots__ = (
        "_absent",
        "_capture",
        "_env_provider",
        "_fast",
        "_live",
        "_meter_provider",
        "_metrics",
        "_seen_meter",
        "_seen_tracer",
        "_trace",
        "_tracer_provider",
    )

    def __init__(self) -> None:
        self._trace: ModuleType | None = None  # opentelemetry.trace, once the application loads it
        self._metrics: ModuleType | None = None  # where the API keeps the global meter provider
        # The API loads a provider named in the environment on first use; look once.
        self._env_provider = any(name in os.environ for name in _PROVIDER_ENVS)
        self._absent = False
        self._fast = True  # the API's module globals are readable (else: its public getters)
        self._seen_tracer: object = _UNSET
        self._seen_meter: object = _UNSET
        self._live: Live | None = None
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        self._capture: bool | None = None

    def call(
        self, pool: str, request: ChatRequest, *, stream: bool, standalone: bool = False
    ) -> CallRecorder | None:
        """A recorder for one call of ``pool``, or None when nothing is recorded.

        ``standalone``: record only a call made directly, not one a recorded pool
        makes (a plain client inside a pool is already that pool's attempt span).
        """
        tr = self._trace
        if tr is None:
            # One dictionary lookup while the application has not imported the API.
            if "opentelemetry" not in _MODULES and not self._env_provider:
                return None
            tr = self._bind()
            if tr is None:
                return None
        if self._fast:
            # The API's own globals: two attribute reads, where its getters would also
            # consult the environment on every call while no provider is set.
            changed = (
                tr._TRACER_PROVIDER is not self._seen_tracer
                or self._metrics._METER_PROVIDER is not self._seen_meter  # type: ignore[union-attr]
            )
        else:
            changed = (
                tr.get_tracer_provider() is not self._seen_tracer
                or self._metrics.get_meter_provider() is not self._seen_meter  # type: ignore[union-attr]
            )
        if changed:
            self._resolve()
        live = self._live
        if live is None:
            return None
        inner = live.inside.get()
        if inner and standalone:
            return None
        return live.recorder(live, pool, request, stream=stream, inner=inner)

    def _bind(self) -> ModuleType | None:
        """Take hold of the API now that the application has loaded it; None if it cannot be."""
        if self._absent:
            return None
        try:
            import opentelemetry.metrics._internal as metrics_internal
            import opentelemetry.trace as trace
        except ImportError:
            self._env_provider = False  # a provider named in the environment cannot load either
            self._absent = True  # not installed (or blocked): never look again
            return None
        # A provider named in the environment is loaded by the API's first getter call.
        trace.get_tracer_provider()
        metrics_internal.get_meter_provider()
        self._fast = hasattr(trace, "_TRACER_PROVIDER") and hasattr(
            metrics_internal, "_METER_PROVIDER"
        )
        self._trace = trace
        self._metrics = metrics_internal
        return trace

    def _resolve(self) -> None:
        """Build (or drop) the recording side for the providers in force now."""
        from opentelemetry import metrics, trace

        from .. import __version__
        from ._record import Instruments, Live

        mt = self._metrics
        if self._fast:
            self._seen_tracer = trace._TRACER_PROVIDER
            self._seen_meter = mt._METER_PROVIDER  # type: ignore[union-attr]
        else:
            self._seen_tracer = trace.get_tracer_provider()
            self._seen_meter = metrics.get_meter_provider()
        tracer_provider = self._tracer_provider or trace.get_tracer_provider()
        meter_provider = self._meter_provider or metrics.get_meter_provider()
        # A proxy stands in while no global provider is set: nothing to record yet.
        idle_meters = (metrics.NoOpMeterProvider, getattr(mt, "_ProxyMeterProvider", ()))
        tracer = None
        if not isinstance(tracer_provider, trace.NoOpTracerProvider | trace.ProxyTracerProvider):
            tracer = tracer_provider.get_tracer("fallover", __version__)
        instruments = None
        if not isinstance(meter_provider, idle_meters):
            instruments = Instruments(meter_provider.get_meter("fallover", __version__))
        capture = self._capture if self._capture is not None else _capture_from_env()
        if tracer is None and instruments is None:
            self._live = None
        else:
            self._live = Live(tracer, instruments, capture)

    def configure(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        capture_content: bool | None,
    ) -> None:
        """See ``instrument``."""
        wants_api = tracer_provider is not None or meter_provider is not None
        if wants_api and not self._bind_now():
            raise RuntimeError(
                "fallover.instrument() needs the OpenTelemetry API: pip install 'fallover[otel]'"
            )
        if wants_api:
            from opentelemetry import metrics, trace

            tp, mp = tracer_provider, meter_provider
            if tp is not None and not isinstance(tp, trace.TracerProvider):
                raise TypeError(
                    f"instrument(tracer_provider=...) got {type(tracer_provider).__name__}, "
                    "expected an opentelemetry TracerProvider"
                )
            if mp is not None and not isinstance(mp, metrics.MeterProvider):
                raise TypeError(
                    f"instrument(meter_provider=...) got {type(meter_provider).__name__}, "
                    "expected an opentelemetry MeterProvider"
                )
        if capture_content is not None and not isinstance(capture_content, bool):
            raise TypeError(
                f"instrument(capture_content=...) must be True, False or None, "
                f"got {capture_content!r}"
            )
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._capture = capture_content
        if self._trace is not None:
            self._resolve()

    def _bind_now(self) -> bool:
        return self._trace is not None or self._bind() is not None


TELEMETRY: Final = Telemetry()


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    capture_content: bool | None = None,
) -> None:
    """Send fallover's spans and metrics to these providers instead of the global ones.

    Without a call to this, fallover follows OpenTelemetry's global providers,
    so an application that configures an SDK gets spans and metrics with no
    call into fallover. A provider left as None follows the global one again;
    ``instrument()`` with no arguments restores the default. ``capture_content``
    records message contents on the call spans; None follows the environment
    variable ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off unless
    ``true``). See docs/observability.md.
    """
    TELEMETRY.configure(tracer_provider, meter_provider, capture_content)


# -- what a person reads: one INFO line per fallover and per park ---------------------------


def fell_over(recorder: CallRecorder | None, alias: str, exc: BaseException, reason: str) -> None:
    """Tell that a call left ``alias`` because of ``exc`` (worded as ``reason``)."""
    log.info("%s failed, falling over: %s", alias, reason)
    if recorder is not None:
        recorder.fell_over(alias, exc)


def parked(
    recorder: CallRecorder | None, alias: str, seconds: float, exc: BaseException, reason: str
) -> None:
    """Tell that ``alias`` is parked for ``seconds`` because of ``exc`` (worded as ``reason``)."""
    log.info("parked %s for %.1fs: %s", alias, seconds, reason)
    if recorder is not None:
        recorder.park(alias, seconds, exc)


def probed(recorder: CallRecorder | None, alias: str) -> None:
    """Tell that a call is probing ``alias`` after its park ran out."""
    log.debug("probing %s", alias)
    if recorder is not None:
        recorder.probe(alias)
