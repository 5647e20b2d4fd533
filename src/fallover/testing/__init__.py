"""Public helpers for testing code that uses fallover: the fault-injecting simulator."""

from ._sim_scenario import Fault, Scenario, load_scenario
from ._sim_server import Simulator, spawn

__all__ = ["Fault", "Scenario", "Simulator", "load_scenario", "spawn"]

# Tracebacks and reprs name the public path, not the private module.
for _cls in (Fault, Scenario, Simulator):
    _cls.__module__ = __name__
del _cls
