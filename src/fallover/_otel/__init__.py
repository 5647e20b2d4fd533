"""OpenTelemetry instrumentation (docs/observability.md).

The router asks ``TELEMETRY.call()`` at the start of each call and reports to
the recorder it gets (None when nothing is recorded); the log lines a person
reads are written by ``fell_over``/``parked`` whether or not telemetry is on.
"""

from ._switch import CAPTURE_ENV, TELEMETRY, Telemetry, fell_over, instrument, parked, probed

__all__ = ["CAPTURE_ENV", "TELEMETRY", "Telemetry", "fell_over", "instrument", "parked", "probed"]
