"""fan_out: bounded concurrency, input order, isolation, prompt cancellation."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

import fallover as f
from fallover.testing import MockAnswer

from .conftest import ask


async def test_results_in_input_order_with_failures_in_place() -> None:
    """Each slot holds its answer or its exception; one failure spares the rest."""

    async def handler(request: f.ChatRequest) -> MockAnswer:
        text = request.messages[0].content
        await anyio.sleep(0.001 * (10 - int(text)))  # finish out of order
        if text == "3":
            raise f.BadRequest("bad three")
        return text

    client = f.MockClient(handler)
    results = await f.fan_out(client, [ask(str(i)) for i in range(10)], concurrency=4)
    assert isinstance(results[3], f.BadRequest)
    assert [r.text for i, r in enumerate(results) if i != 3] == [  # type: ignore[union-attr]
        str(i) for i in range(10) if i != 3
    ]


async def test_concurrency_is_bounded() -> None:
    """No more than ``concurrency`` calls run at once."""
    running = peak = 0

    async def handler(request: f.ChatRequest) -> MockAnswer:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.lowlevel.checkpoint()  # let every other admitted call start
        running -= 1
        return "x"

    await f.fan_out(f.MockClient(handler), [ask()] * 50, concurrency=5)
    assert peak == 5


async def test_cancelling_fan_out_cancels_every_call() -> None:
    """Cancelling the caller ends all in-flight calls promptly."""
    started = 0
    finished = 0

    async def handler(request: f.ChatRequest) -> MockAnswer:
        nonlocal started, finished
        started += 1
        try:
            await anyio.sleep_forever()
        finally:
            finished += 1
        raise AssertionError("unreachable")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(f.fan_out, f.MockClient(handler), [ask()] * 200)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert started == 16 and finished == 16


async def test_on_result_reports_progress() -> None:
    """on_result is called once per request with its index."""
    seen: list[int] = []

    async def handler(request: f.ChatRequest) -> MockAnswer:
        return "x"

    await f.fan_out(f.MockClient(handler), [ask()] * 5, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1, 2, 3, 4]


async def test_bad_concurrency() -> None:
    """concurrency below 1 is a ValueError."""
    with pytest.raises(ValueError, match="concurrency"):
        await f.fan_out(f.MockClient(lambda r: None), [], concurrency=0)  # type: ignore[arg-type]
