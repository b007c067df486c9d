"""In-flight slots: at most ``max_in_flight`` tasks submitted and not yet settled.

Accounts run about three jobs and queue about ten; a burst of submits beyond
that comes back as queue-full errors. A limiter turns the burst into a steady
stream: a submit takes a slot before it is sent, the slot is bound to the
task id the server returned, and it is given back when that task settles
(ends, fails, or stops in MODAL waiting for the caller) or when the submit
fails. A modal step carries the slot of the task it answers.

:class:`SlotLimiter` is the interface the session uses; :class:`LocalSlots`
keeps the slots in this process. A limiter shared by several processes
implements the same methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from ._errors import SessionClosed, SlotTimeout

__all__ = ["LocalSlots", "Slot", "SlotLimiter"]


class Slot:
    """One unit of the in-flight cap; bound to at most one task id."""

    __slots__ = ("task_id",)

    def __init__(self) -> None:
        self.task_id: str | None = None

    def __repr__(self) -> str:
        return f"<Slot {self.task_id or 'unbound'}>"


class SlotLimiter(Protocol):
    """What the session asks of a slot limiter."""

    async def acquire(self, timeout: float) -> Slot:
        """Wait for a free slot; raise SlotTimeout or SessionClosed instead of waiting on."""

    def bind(self, slot: Slot, task_id: str) -> None:
        """``slot`` now rides on ``task_id``: it comes back when that task settles."""

    def take(self, task_id: str) -> Slot | None:
        """Unbind and return the slot ``task_id`` holds (a modal step carries it on)."""

    def release(self, slot: Slot) -> None:
        """Give ``slot`` back now."""

    def settled(self, task_id: str) -> None:
        """``task_id`` ended or waits for the caller: give its slot back, if it has one."""

    def holds(self, task_id: str) -> bool:
        """Whether ``task_id`` holds a slot."""

    def close(self) -> None:
        """End every acquire that waits, with SessionClosed."""

    def reopen(self) -> None:
        """Accept acquires again after ``close()``."""


class LocalSlots:
    """A :class:`SlotLimiter` for one process, on an asyncio semaphore.

    ``keep(task_id)`` and ``drop(task_id)`` tell the poller to watch a task
    while a slot rides on it, and that it no longer needs to.
    """

    def __init__(
        self,
        limit: int,
        *,
        keep: Callable[[str], None],
        drop: Callable[[str], None],
    ) -> None:
        self.limit = limit
        self._free = asyncio.Semaphore(limit)
        self._bound: dict[str, Slot] = {}
        self._closing = asyncio.Event()
        self._keep = keep
        self._drop = drop

    def __repr__(self) -> str:
        return f"<LocalSlots {len(self._bound)} bound of {self.limit}>"

    @property
    def waiting(self) -> int:
        """Submits waiting for a slot now."""
        waiters = getattr(self._free, "_waiters", None)
        return len(waiters) if waiters else 0

    async def acquire(self, timeout: float) -> Slot:
        if self._closing.is_set():
            raise SessionClosed(None)
        acquire = asyncio.ensure_future(self._free.acquire())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait(
                {acquire, closing}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            closing.cancel()
            if acquire.done() and not acquire.cancelled():
                self._free.release()  # won a slot just as this submit was cancelled
            else:
                acquire.cancel()
            raise
        closing.cancel()
        if not acquire.done():
            acquire.cancel()
            if self._closing.is_set():
                raise SessionClosed(None)
            raise SlotTimeout(self.limit, timeout)
        if self._closing.is_set():
            self._free.release()
            raise SessionClosed(None)
        return Slot()

    def bind(self, slot: Slot, task_id: str) -> None:
        if task_id in self._bound:
            # The same task holds one already (a submit answered with an existing id).
            self._free.release()
            return
        slot.task_id = task_id
        self._bound[task_id] = slot
        self._keep(task_id)

    def take(self, task_id: str) -> Slot | None:
        slot = self._bound.pop(task_id, None)
        if slot is not None:
            slot.task_id = None
            self._drop(task_id)
        return slot

    def release(self, slot: Slot) -> None:
        if slot.task_id is not None:
            self.settled(slot.task_id)
            return
        self._free.release()

    def settled(self, task_id: str) -> None:
        slot = self._bound.pop(task_id, None)
        if slot is not None:
            slot.task_id = None
            self._drop(task_id)
            self._free.release()

    def holds(self, task_id: str) -> bool:
        return task_id in self._bound

    def close(self) -> None:
        self._closing.set()

    def reopen(self) -> None:
        self._closing.clear()
