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
from typing import Generic, Protocol, TypeVar

from ._errors import SessionClosed, SlotTimeout

__all__ = ["BoundSlots", "LocalSlots", "Slot", "SlotLimiter"]


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


S = TypeVar("S", bound=Slot)


class BoundSlots(Generic[S]):
    """What every limiter keeps alike: which task each slot rides on, and telling the
    poller to watch that task (``keep``) until it settles (``drop``).

    A limiter adds ``acquire``, ``close``, ``reopen`` and ``_give_back`` (return
    a slot no task holds to the pool), and ``_own`` (the slot as its own kind).
    """

    def __init__(self, *, keep: Callable[[str], None], drop: Callable[[str], None]) -> None:
        self._bound: dict[str, S] = {}
        self._keep = keep
        self._drop = drop

    def _own(self, slot: Slot) -> S:
        raise NotImplementedError

    def _give_back(self, slot: S) -> None:
        raise NotImplementedError

    def bind(self, slot: Slot, task_id: str) -> None:
        own = self._own(slot)
        if task_id in self._bound:
            # The same task holds one already (a submit answered with an existing id).
            self._give_back(own)
            return
        own.task_id = task_id
        self._bound[task_id] = own
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
        self._give_back(self._own(slot))

    def settled(self, task_id: str) -> None:
        slot = self._bound.pop(task_id, None)
        if slot is not None:
            slot.task_id = None
            self._drop(task_id)
            self._give_back(slot)

    def holds(self, task_id: str) -> bool:
        return task_id in self._bound


class LocalSlots(BoundSlots[Slot]):
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
        super().__init__(keep=keep, drop=drop)
        self.limit = limit
        self._free = asyncio.Semaphore(limit)
        self._closing = asyncio.Event()

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

    def _own(self, slot: Slot) -> Slot:
        return slot

    def _give_back(self, slot: Slot) -> None:
        self._free.release()

    def close(self) -> None:
        self._closing.set()

    def reopen(self) -> None:
        self._closing.clear()
