"""The call budget over a stream: one timer per call, not a cancel scope per chunk.

A cancel scope around every ``anext()`` costs more than the chunk itself. The
router instead arms one timer for the whole call and says, around each await
on a member, which task is waiting. When the budget runs out during such an
await the timer cancels that task once and remembers it did, so the router can
tell its own cancel from the caller's and withdraw it; when the budget runs out
while the caller holds a chunk, the next await does not start. See
docs/architecture.md, "Routing".
"""

from __future__ import annotations

import asyncio
from typing import final

__all__ = ["Alarm"]


@final
class Alarm:
    """Rings at ``deadline`` (event-loop time): cancels the task waiting on a member, if any."""

    __slots__ = ("_fired", "_handle", "spent", "waiting")

    def __init__(self, deadline: float) -> None:
        self.spent = False  # the budget has run out
        self.waiting: asyncio.Task[object] | None = None  # the task awaiting a member now
        self._fired = False
        self._handle = asyncio.get_running_loop().call_at(deadline, self._ring)

    def _ring(self) -> None:
        self.spent = True
        task = self.waiting
        if task is not None and not task.done():
            self._fired = True
            task.cancel()

    def settle(self) -> bool:
        """After an await on a member raised: True when the cause was this alarm.

        The alarm's cancel is withdrawn then; a cancel from the caller as well is
        never swallowed (False: let it propagate).
        """
        if not self._fired:
            return False
        self._fired = False
        task = asyncio.current_task()
        return task is not None and task.uncancel() == 0

    def close(self) -> None:
        """Disarm."""
        self._handle.cancel()
