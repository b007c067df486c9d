"""A cap on requests at once whose waiters give up after a time limit.

Like ``asyncio.Semaphore`` with ``asyncio.wait_for(acquire(), limit)``, but a
waiter costs one future and one timer instead of a task of its own: with
thousands of submits queued behind the connection cap, that task per request
was a good share of the client's CPU and garbage.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["ConnectionCap"]


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class ConnectionCap:
    """At most ``limit`` holders at once; the rest wait in order of arrival."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[bool]] = deque()

    async def acquire(self, timeout: float) -> bool:
        """Take a place, waiting at most ``timeout`` seconds; False if none came."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a place was handed over: pass it on, not lose it.
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a place back: to the longest waiter still waiting, or to the pool."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(True)
                return
        self._free += 1
