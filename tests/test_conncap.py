"""The connection cap: waiters in order, bounded, and no place lost to a cancellation."""

from __future__ import annotations

import asyncio

from midjourney_async._conncap import ConnectionCap


async def test_places_go_to_waiters_in_order_of_arrival() -> None:
    cap = ConnectionCap(1)
    assert await cap.acquire(1.0)
    order: list[int] = []

    async def take(i: int) -> None:
        assert await cap.acquire(5.0)
        order.append(i)
        cap.release()

    waiters = [asyncio.create_task(take(i)) for i in range(5)]
    await asyncio.sleep(0)
    cap.release()
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3, 4]


async def test_a_waiter_gives_up_at_its_limit_and_the_place_stays_free() -> None:
    cap = ConnectionCap(1)
    assert await cap.acquire(1.0)
    assert not await cap.acquire(0.01)
    cap.release()
    # The timed-out waiter took nothing: the one place is there for the next caller.
    assert await cap.acquire(0.01)


async def test_a_waiter_cancelled_after_the_handover_passes_the_place_on() -> None:
    cap = ConnectionCap(1)
    assert await cap.acquire(1.0)
    first = asyncio.create_task(cap.acquire(5.0))
    second = asyncio.create_task(cap.acquire(5.0))
    await asyncio.sleep(0)
    cap.release()  # handed to ``first``, which is cancelled before it resumes
    first.cancel()
    assert await second  # the place went on instead of being lost
    assert first.cancelled()


async def test_a_cancelled_waiter_takes_no_place() -> None:
    cap = ConnectionCap(1)
    assert await cap.acquire(1.0)
    waiter = asyncio.create_task(cap.acquire(5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    cap.release()
    assert await cap.acquire(0.01)
    assert not await cap.acquire(0.01)
