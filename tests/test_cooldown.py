"""MemoryCooldowns: monotonic deadlines, max-set, expiry on read, single probe, newer news."""

import anyio
import pytest

from fallover import MemoryCooldowns

from .conftest import FakeClock


def store_on(clock: FakeClock) -> MemoryCooldowns:
    return MemoryCooldowns(clock=clock, sleep=clock.sleep)


def test_park_and_expire(clock: FakeClock) -> None:
    """A park lasts its length; reading after expiry ends it and leaves the member half-open."""
    store = store_on(clock)
    assert store.remaining("a") is None
    store.park("a", 5)
    assert store.remaining("a") == 5
    clock.advance(5.01)
    assert store.remaining("a") is None
    assert store.half_open("a")


def test_never_shortens(clock: FakeClock) -> None:
    """A shorter park leaves the longer one in place."""
    store = store_on(clock)
    store.park("a", 30)
    assert store.park("a", 2) == 30
    assert store.park("a", 40) == 40


def test_streak_counts_parks_and_newer_success_resets(clock: FakeClock) -> None:
    """Each park adds to the streak; a success begun after the park clears both."""
    store = store_on(clock)
    store.park("a", 1)
    store.park("a", 1)
    assert store.streak("a") == 2
    clock.advance(0.5)
    store.succeeded("a", started=store.now())
    assert store.streak("a") == 0
    assert store.remaining("a") is None
    assert not store.has_parks()


def test_stale_success_leaves_the_park(clock: FakeClock) -> None:
    """A success whose attempt began before the park was set is old news: the park stays."""
    store = store_on(clock)
    started = store.now()
    clock.advance(0.1)
    store.park("a", 30)
    clock.advance(0.2)
    store.succeeded("a", started=started)
    assert store.remaining("a") == pytest.approx(29.8)
    assert store.streak("a") == 1


def test_uncounted_park_keeps_the_streak(clock: FakeClock) -> None:
    """park(count=False) (a failure that is old news) does not lengthen the backoff."""
    store = store_on(clock)
    store.park("a", 5)
    store.park("a", 2, count=False)
    assert store.streak("a") == 1


async def test_single_probe_after_expiry(clock: FakeClock) -> None:
    """After a park expires, one caller gets the probe, the rest wait for its outcome."""
    store = store_on(clock)
    store.park("a", 1)
    clock.advance(2)
    assert store.remaining("a") is None
    assert await store.begin_probe("a") is True
    assert [await store.begin_probe("a") for _ in range(5)] == [False] * 5
    store.end_probe("a")  # no outcome: the next caller may probe
    assert await store.begin_probe("a") is True
    store.succeeded("a", started=store.now())
    assert await store.begin_probe("a") is True
    assert await store.begin_probe("a") is True  # live again: no probe needed


async def test_failed_probe_parks_again(clock: FakeClock) -> None:
    """A probe that fails parks the member and frees the probe."""
    store = store_on(clock)
    store.park("a", 1)
    clock.advance(2)
    store.remaining("a")
    assert await store.begin_probe("a")
    store.park("a", 10)
    assert store.remaining("a") == 10
    clock.advance(11)
    assert store.remaining("a") is None
    assert await store.begin_probe("a") is True


def test_long_parks_say_so(clock: FakeClock) -> None:
    """A park's kind is kept: "long" parks are for members a person must fix."""
    store = store_on(clock)
    store.park("a", 60, kind="long")
    store.park("b", 5)
    assert (store.kind("a"), store.kind("b"), store.kind("c")) == ("long", "backoff", None)


async def test_wait_returns_when_a_park_changes(clock: FakeClock) -> None:
    """wait() ends early when any park changes, without moving the clock."""
    store = MemoryCooldowns(clock=clock)  # real sleeps: only the change can end the wait
    store.park("a", 30)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.wait, 3600.0)
            await anyio.wait_all_tasks_blocked()
            store.succeeded("a", started=store.now())


async def test_wait_sleeps_on_the_store_clock(clock: FakeClock) -> None:
    """With an injected sleep, wait() sleeps on the store's clock, once for many waiters."""
    store = store_on(clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(store.wait, 3.0)
    assert clock.now == 1003.0
