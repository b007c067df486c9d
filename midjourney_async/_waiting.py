"""Waiting for tasks: ``wait()``, ``wait_all()``, ``as_completed()`` and ``updates()``.

All four build on :class:`Settle`, one routine that subscribes to the task
states it waits on, is woken only by the states that changed, and resolves
each to its outcome: the SUCCESS task, or the error (FAILURE, MODAL, not
found, a rejected key). A state whose task waits in MODAL with a modal answer
ready submits the answer and follows the task it turns into; that successor
is kept on the shared state, so every handle on the id agrees.

No asyncio task, deadline or event per handle: one event serves a whole
``wait_all`` of thousands of handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from ._errors import (
    ConfigurationError,
    MidjourneyError,
    ModalRequired,
    SessionClosed,
    TaskFailed,
    TaskTimeout,
)
from ._models import Task, TaskStatus
from ._state import StateTable, TaskState

if TYPE_CHECKING:
    from ._handle import TaskHandle
    from ._tracker import Tracker

__all__ = ["Settle", "Waits"]

Outcome = Task | MidjourneyError
AnswerFn = Callable[[TaskState], Awaitable[TaskState]]
HandleFn = Callable[[TaskState], "TaskHandle"]


def deadline(limit: float) -> contextlib.AbstractAsyncContextManager[object]:
    """A wait's deadline: asyncio.timeout on 3.11+, anyio's cancel scope on 3.10.

    anyio's cancel scope costs several times the CPU per wait and ~1 KB more
    per waiting handle (benchmarks/bench_polling.py); it remains for 3.10.
    """
    if sys.version_info >= (3, 11):
        return asyncio.timeout(limit)
    return _fail_after(limit)  # pragma: no cover


@contextlib.asynccontextmanager
async def _fail_after(limit: float) -> AsyncIterator[None]:  # pragma: no cover
    with anyio.fail_after(limit):
        yield


class Waits:
    """What a wait needs from its session, and nothing more.

    ``answer`` submits the modal answer kept on a MODAL state and returns the
    state of the task it became; ``handle_for`` makes a handle for errors
    that carry one (:class:`ModalRequired`).
    """

    def __init__(
        self,
        table: StateTable,
        tracker: Tracker,
        *,
        answer: AnswerFn,
        handle_for: HandleFn,
        default_timeout: float,
        gave_up: Callable[[TaskState], None] | None = None,
    ) -> None:
        self.gave_up = gave_up
        self.table = table
        self.tracker = tracker
        self.answer = answer
        self.handle_for = handle_for
        self.default_timeout = default_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self.opened = False

    def bind_loop(self) -> None:
        """The session opened on the running loop: waits belong to it from now on."""
        self._loop = asyncio.get_running_loop()
        self.opened = True

    def check(self) -> None:
        """Refuse a wait that could never end: a session never opened, or another loop."""
        if not self.opened:
            raise ConfigurationError(
                "the session is not open: use `async with MidjourneySession(...)` "
                "or `await session.open()` before waiting"
            )
        if self._loop is not None and asyncio.get_running_loop() is not self._loop:
            raise ConfigurationError(
                "this session was opened under another event loop (a second "
                "asyncio.run()?); open a new session in this loop"
            )

    def limit(self, timeout: float | None) -> float:
        return self.default_timeout if timeout is None else timeout

    async def wait(self, state: TaskState, timeout: float | None) -> Task:
        """The SUCCESS task of ``state``, or its error.

        ``wait_all`` with one state, written out: a frame less for each of
        thousands of waiting handles (about 300 bytes each).
        """
        self.check()
        limit = self.limit(timeout)
        settle = Settle(self, [state], limit)
        try:
            async with deadline(limit):
                while True:
                    for _, outcome in await settle.step():
                        if isinstance(outcome, MidjourneyError):
                            raise outcome
                        return outcome
        except TimeoutError as exc:
            if isinstance(exc, MidjourneyError):
                raise
            settle.expired = True
            raise settle.timeout(limit) from None
        finally:
            settle.close()

    async def wait_all(self, states: list[TaskState], timeout: float | None) -> list[Task]:
        """Every task in order; the first error is raised and the other waits end."""
        self.check()
        limit = self.limit(timeout)
        results: list[Task | None] = [None] * len(states)
        left = len(states)
        settle = Settle(self, states, limit)
        try:
            async with deadline(limit):
                while left:
                    for i, outcome in await settle.step():
                        if isinstance(outcome, MidjourneyError):
                            raise outcome
                        results[i] = outcome
                        left -= 1
        except TimeoutError as exc:
            if isinstance(exc, MidjourneyError):
                raise
            settle.expired = True
            raise settle.timeout(limit) from None
        finally:
            settle.close()
        return [task for task in results if task is not None]

    async def wait_all_settled(
        self, states: list[TaskState], timeout: float | None
    ) -> list[Outcome]:
        """Every task in order, or the error its wait ended with."""
        results: list[Outcome | None] = [None] * len(states)
        async for i, outcome in self.outcomes(states, timeout):
            results[i] = outcome
        return [r for r in results if r is not None]

    async def outcomes(
        self, states: list[TaskState], timeout: float | None
    ) -> AsyncIterator[tuple[int, Outcome]]:
        """Each position's outcome as it settles; at the deadline, TaskTimeout for the rest.

        The deadline is checked around each step only: the caller's own code
        between two outcomes is never cancelled by it.
        """
        self.check()
        limit = self.limit(timeout)
        end = time.monotonic() + limit
        left = len(states)
        settle = Settle(self, states, limit)
        try:
            while left:
                try:
                    async with deadline(max(0.0, end - time.monotonic())):
                        ready = await settle.step()
                except TimeoutError as exc:
                    if isinstance(exc, MidjourneyError):
                        raise
                    settle.expired = True
                    for i in settle.unsettled():
                        yield i, settle.timeout(limit, i)
                    return
                for i, outcome in ready:
                    left -= 1
                    yield i, outcome
        finally:
            settle.close()

    async def updates(self, state: TaskState, timeout: float | None) -> AsyncIterator[Task]:
        """Each new snapshot of ``state`` (and of its successor) until a terminal one.

        A FAILURE is the last snapshot, not an error; a task that waits in
        MODAL with no answer kept raises :class:`ModalRequired` after its
        MODAL snapshot, as ``wait()`` does.
        """
        self.check()
        limit = self.limit(timeout)
        end = time.monotonic() + limit
        settle = Settle(self, [state], limit, every_change=True)
        try:
            last: Task | None = None
            while True:
                task = settle.current(0).task
                if task is not None and task is not last:
                    last = task
                    yield task
                    if task.is_terminal:
                        return
                try:
                    async with deadline(max(0.0, end - time.monotonic())):
                        ready = await settle.step()
                except TimeoutError as exc:
                    if isinstance(exc, MidjourneyError):
                        raise
                    settle.expired = True
                    raise settle.timeout(limit) from None
                for _, outcome in ready:
                    if isinstance(outcome, ModalRequired):
                        modal = settle.current(0).task
                        if modal is not None and modal is not last:
                            yield modal
                        raise outcome
                    if isinstance(outcome, MidjourneyError) and not isinstance(
                        outcome, TaskFailed
                    ):
                        raise outcome
                    final = outcome.task if isinstance(outcome, TaskFailed) else outcome
                    if final is not last:
                        yield final
                    return
        finally:
            settle.close()


class Settle:
    """One wait on many task states, woken only by the states that settle.

    :meth:`step` returns the positions resolved since the last step (at least
    one), each with its outcome. Positions follow a state's successor after
    a modal step. With ``every_change`` it also returns (with nothing
    resolved) at each new snapshot, for ``updates()``.
    """

    __slots__ = (
        "_at",
        "_changed",
        "_every",
        "_positions",
        "_waits",
        "_wake",
        "_watched",
        "expired",
    )

    def __init__(
        self,
        waits: Waits,
        states: list[TaskState],
        limit: float,
        *,
        every_change: bool = False,
    ) -> None:
        self._waits = waits
        self._every = every_change
        #: Set when the wait ended at its deadline.
        self.expired = False
        # The poller may pause (a 429's Retry-After), but not past this wait's end.
        waits.tracker.expect(self, time.monotonic() + limit)
        # A bare future while step() sleeps: an asyncio.Event costs ~850 bytes a wait.
        self._wake: asyncio.Future[None] | None = None
        self._watched: list[TaskState] = []
        # Where each state stands in the caller's list (a state may stand twice).
        self._at: dict[TaskState, list[int]] = {}
        self._positions = states
        for i, st in enumerate(states):
            st = st.latest
            spots = self._at.get(st)
            if spots is None:
                self._at[st] = [i]
                self._attach(st)
            else:
                spots.append(i)
        # Every state is looked at once before anything is awaited.
        self._changed: list[TaskState] = list(self._at)

    def __call__(self, st: TaskState) -> None:
        """The subscriber: note a state that may have settled, and wake the wait."""
        if st.settled or st.successor is not None:
            self._changed.append(st)
        elif not (self._every or self._waits.table.closed):
            return
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def current(self, position: int) -> TaskState:
        """The state ``position`` waits on now (a successor after a modal step)."""
        for st, spots in self._at.items():
            if position in spots:
                return st
        return self._positions[position].latest

    def _attach(self, st: TaskState) -> None:
        self._waits.tracker.watch(st)
        st.subscribe(self)
        self._watched.append(st)

    def close(self) -> None:
        waits = self._waits
        tracker = waits.tracker
        tracker.unexpect(self)
        for st in self._watched:
            tracker.unwatch(st)
            st.unsubscribe(self)
            if self.expired and waits.gave_up is not None and not st.settled:
                waits.gave_up(st)
        self._watched.clear()

    def unsettled(self) -> list[int]:
        return sorted(i for spots in self._at.values() for i in spots)

    def timeout(self, limit: float, position: int | None = None) -> TaskTimeout:
        """The TaskTimeout for the first unsettled position (or ``position``)."""
        if position is None:
            left = self.unsettled()
            position = left[0] if left else 0
        st = self.current(position)
        return TaskTimeout(st.id, limit, st.task)

    async def step(self) -> list[tuple[int, Outcome]]:
        """Wait until at least one position resolves; return those that did."""
        while True:
            ready: list[tuple[int, Outcome]] = []
            changed, self._changed = self._changed, []
            for st in changed:
                spots = self._at.get(st)
                if spots is None:
                    continue  # resolved already, or reported twice
                outcome = await self._resolve(st, spots)
                if outcome is not None:
                    del self._at[st]
                    ready.extend((i, outcome) for i in spots)
            if ready:
                return ready
            if self._waits.table.closed and self._at:
                raise SessionClosed(next(iter(self._at)).id)
            if not self._changed:
                wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._wake = wake
                try:
                    await wake
                finally:
                    self._wake = None
                if self._every and not self._changed:
                    return ready

    async def _resolve(self, st: TaskState, spots: list[int]) -> Outcome | None:
        """The outcome of ``st`` if it has one now; follows a successor."""
        successor = st.successor
        if successor is None and st.modal_answer is not None:
            task = st.task
            if task is not None and task.status == TaskStatus.MODAL:
                # Raises what the step met: a timeout of it must not read as ours.
                nxt = await self._waits.answer(st)
                if nxt is not st:
                    successor = nxt
                else:
                    return None
        if successor is not None:
            nxt = successor.latest
            del self._at[st]
            known = self._at.get(nxt)
            if known is None:
                self._at[nxt] = spots
                self._attach(nxt)
            else:
                known.extend(spots)
            self._changed.append(nxt)
            return None
        task = st.task
        if task is not None:
            status = task.status
            if status == TaskStatus.SUCCESS:
                return task
            if status in (TaskStatus.FAILURE, TaskStatus.CANCEL):
                return TaskFailed(task)
            if status == TaskStatus.MODAL:
                return ModalRequired(self._waits.handle_for(st))
        return st.error

