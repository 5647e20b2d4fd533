"""Review many files concurrently through one client, reporting each as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anyio

from .._client import LLMClient
from ._ask import ask
from ._change import Change
from ._outcome import FileReview

__all__ = ["review_all"]


async def review_all(
    client: LLMClient,
    changes: Sequence[Change],
    *,
    instruction: str,
    concurrency: int,
    on_done: Callable[[int, FileReview], object],
) -> None:
    """Review every change, at most ``concurrency`` at once; ``on_done(index, review)`` each.

    A file's failure never stops the others; cancelling the caller cancels every
    review still running, and the ones already reported stay reported.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, change: Change) -> None:
        async with limiter:
            review = await ask(client, change, instruction)
        on_done(index, review)

    async with anyio.create_task_group() as tg:
        for i, change in enumerate(changes):
            tg.start_soon(one, i, change)
