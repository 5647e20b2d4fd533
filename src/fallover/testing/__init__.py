"""Public helpers for testing code that uses fallover.

- ``MockTransport(handler)`` beneath the real clients (with ``Request`` and
  ``Response``), so retries, parsing and stream assembly run for real;
- ``MockClient(handler)``, a whole scripted member;
- ``set_testing(True)``: every member retry wait is instant (and recorded);
- the fault-injecting simulator: ``Simulator``, ``Scenario``, ``Fault``, ``spawn``.
"""

from .._backoff import set_testing
from ._mock import MockAnswer, MockClient, MockTransport, Request, Response
from ._sim_scenario import Fault, Scenario, load_scenario
from ._sim_server import Simulator, spawn

__all__ = [
    "Fault",
    "MockAnswer",
    "MockClient",
    "MockTransport",
    "Request",
    "Response",
    "Scenario",
    "Simulator",
    "load_scenario",
    "set_testing",
    "spawn",
]

# Tracebacks and reprs name the public path, not the private module.
for _obj in (
    Fault,
    MockClient,
    MockTransport,
    Request,
    Response,
    Scenario,
    Simulator,
    load_scenario,
    set_testing,
    spawn,
):
    _obj.__module__ = __name__
del _obj
