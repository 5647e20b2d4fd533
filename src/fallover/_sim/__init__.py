"""The fault-injecting OpenAI/Anthropic-compatible simulator."""

from ._scenario import Fault, Scenario, load_scenario
from ._server import Simulator, spawn

__all__ = ["Fault", "Scenario", "Simulator", "load_scenario", "spawn"]
