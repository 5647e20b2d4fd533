"""One backoff: exponential, capped, jittered."""

from __future__ import annotations

import pytest

from fallover._backoff import MEMBER_RETRIES, Backoff


def test_member_retry_shape() -> None:
    """Member retries double from 0.5 s, cap at 8 s, and jitter within [d/2, d]."""
    assert [MEMBER_RETRIES.ceiling(i) for i in range(6)] == [0.5, 1, 2, 4, 8, 8]
    top = Backoff(rand=lambda: 1.0)
    bottom = Backoff(rand=lambda: 0.0)
    assert [top.delay(i) for i in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert bottom.delay(3) == 2.0


def test_without_jitter_and_far_past_the_cap() -> None:
    """jitter=False gives the ceiling itself; a huge try count stays at the cap."""
    b = Backoff(first=5.0, cap=60.0, jitter=False)
    assert [b.delay(i) for i in (0, 1, 2, 3, 4, 1000)] == [5, 10, 20, 40, 60, 60]


def test_bad_settings_name_themselves() -> None:
    """A non-positive first delay or a cap below it is refused."""
    with pytest.raises(ValueError, match="first"):
        Backoff(first=0)
    with pytest.raises(ValueError, match="cap"):
        Backoff(first=2, cap=1)


async def test_a_member_parked_a_thousand_times_in_a_row_still_falls_over() -> None:
    """Park lengths stay at cooldown_max however long the streak (no overflow at 2**1024)."""
    import fallover as f
    from fallover.testing import MockClient

    async def down(request: f.ChatRequest) -> str:
        raise f.ServerFailed("down", alias="p/down")

    async def up(request: f.ChatRequest) -> str:
        return "ok"

    router = f.AsyncRouter(
        [MockClient(down, alias="p/down"), MockClient(up, alias="p/up")],
        cooldown=1e-9,
        cooldown_max=1e-9,
    )
    async with router:
        for _ in range(1100):
            resp = await router.complete(
                f.ChatRequest(messages=[f.Message(role="user", content="x")])
            )
            assert resp.alias == "p/up"
