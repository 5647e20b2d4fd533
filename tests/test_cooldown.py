"""MemoryCooldowns: monotonic deadlines, max-set, expiry on read, single probe."""

from fallover import MemoryCooldowns

from .conftest import FakeClock


def test_park_and_expire(clock: FakeClock) -> None:
    """A park lasts its length; reading after expiry deletes it."""
    store = MemoryCooldowns(clock=clock)
    assert store.remaining("a") is None
    store.park("a", 5)
    assert store.remaining("a") == 5
    clock.advance(5.01)
    assert store.remaining("a") is None
    assert "a" not in store._until


def test_never_shortens(clock: FakeClock) -> None:
    """A shorter park leaves the longer one in place."""
    store = MemoryCooldowns(clock=clock)
    store.park("a", 30)
    assert store.park("a", 2) == 30
    assert store.park("a", 40) == 40


def test_streak_counts_parks_and_success_resets(clock: FakeClock) -> None:
    """Each park adds to the streak; a success clears it and the park."""
    store = MemoryCooldowns(clock=clock)
    store.park("a", 1)
    store.park("a", 1)
    assert store.streak("a") == 2
    store.succeeded("a")
    assert store.streak("a") == 0
    assert store.remaining("a") is None
    assert not store.has_parks()


def test_single_probe_after_expiry(clock: FakeClock) -> None:
    """After a park expires, one caller gets the probe, the rest wait for its outcome."""
    store = MemoryCooldowns(clock=clock)
    store.park("a", 1)
    clock.advance(2)
    assert store.remaining("a") is None
    assert store._take_probe("a") is True
    assert [store._take_probe("a") for _ in range(5)] == [False] * 5
    store.end_probe("a")  # no outcome: the next caller may probe
    assert store._take_probe("a") is True
    store.succeeded("a")
    assert store._take_probe("a") is True
    assert store._take_probe("a") is True  # live again: no probe needed


def test_failed_probe_parks_again(clock: FakeClock) -> None:
    """A probe that fails parks the member and frees the probe."""
    store = MemoryCooldowns(clock=clock)
    store.park("a", 1)
    clock.advance(2)
    store.remaining("a")
    assert store._take_probe("a")
    store.park("a", 10)
    assert store.remaining("a") == 10
    assert store._probing == set()
