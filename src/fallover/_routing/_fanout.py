"""fan_out(): many requests through one client, bounded, one result per request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import anyio

from .._client import LLMClient
from .._types import ChatRequest, ChatResponse

__all__ = ["fan_out"]


async def fan_out(
    client: LLMClient,
    requests: Sequence[ChatRequest],
    *,
    concurrency: int = 16,
    on_result: Callable[[int, ChatResponse | Exception], object] | None = None,
) -> list[ChatResponse | Exception]:
    """Complete every request, at most ``concurrency`` at once; results in input order.

    A request that fails yields its exception in its slot and never cancels the
    others. Cancelling the caller cancels every request still running.
    ``on_result(index, result)`` is called as each one finishes (for progress).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    results: list[ChatResponse | Exception | None] = [None] * len(requests)
    limiter = anyio.CapacityLimiter(concurrency)

    async def one(index: int, request: ChatRequest) -> None:
        async with limiter:
            result: ChatResponse | Exception
            try:
                result = await client.complete(request)
            except Exception as exc:  # one failure must not take the others down
                result = exc
        results[index] = result
        if on_result is not None:
            on_result(index, result)

    async with anyio.create_task_group() as tg:
        for i, request in enumerate(requests):
            tg.start_soon(one, i, request)
    return cast(list[ChatResponse | Exception], results)
