"""Routing: the router, the walk of one call, park stores, policies and fan-out.

See docs/architecture.md, "Routing", for where each decision is made.
"""

from ._fanout import fan_out
from ._pacing import Pace
from ._redis import RedisCooldowns
from ._router import AsyncRouter
from ._store import CooldownStore, MemoryCooldowns

__all__ = ["AsyncRouter", "CooldownStore", "MemoryCooldowns", "Pace", "RedisCooldowns", "fan_out"]
