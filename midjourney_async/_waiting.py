"""Waiting for tasks: ``wait()``, ``wait_all()``, ``as_completed()`` and ``updates()``.

``wait_all()``, ``as_completed()`` and ``updates()`` build on :class:`Settle`,
one routine that subscribes to the task states it waits on, is woken only by
the states that changed, and resolves each to its outcome: the SUCCESS task,
or the error (FAILURE, MODAL, not found, a rejected key). A state whose task
waits in MODAL with a modal answer ready submits the answer and follows the
task it turns into; that successor is kept on the shared state, so every
handle on the id agrees.

No asyncio task, deadline or event per handle: one future serves a whole
``wait_all`` of thousands of handles. ``wait()`` on one handle, which
thousands of callers may each run at once, follows the same rules with less:
one future that is also its state's subscriber, and one timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Final

import anyio

from ._errors import (
    ConfigurationError,
    MidjourneyError,
    ModalRequired,
    SessionClosed,
    TaskFailed,
    TaskTimeout,
)
from ._models import TERMINAL, Task, TaskStatus
from ._state import StateTable, TaskState

if TYPE_CHECKING:
    from ._handle import TaskHandle
    from ._tracker import Tracker

__all__ = ["Settle", "Waits"]

Outcome = Task | MidjourneyError
_FAILED = (TaskStatus.FAILURE, TaskStatus.CANCEL)
# Statuses after which nothing happens without the caller (``TaskState.settled``).
_SETTLES: Final = TERMINAL | {TaskStatus.MODAL}
Spots = int | list[int]
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
        tracker.wait_ends = _wait_ends

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

        Thousands of handles may each wait at once, so a wait is one small
        frame, one future (:class:`_Wake`, also the state's subscriber) and one
        timer for its deadline: no :class:`Settle`, no timeout context. The
        rare paths (a modal step, a successor) take a fresh future.
        """
        self.check()
        wake = self._start(state, timeout)
        try:
            while True:
                got = self._step(wake, timeout)
                if got is None:
                    wake = await self._follow(wake)
                elif isinstance(got, _Wake):
                    wake = got
                    await wake
                else:
                    return got
        finally:
            self._ended(wake)

    def _start(self, state: TaskState, timeout: float | None) -> _Wake:
        st = state.latest
        self.tracker.watch(st)
        return _Wake.arm(self, st, asyncio.get_running_loop().time() + self.limit(timeout))

    def _ended(self, wake: _Wake) -> None:
        """A single wait ended: unsubscribe, unwatch, and give up a slot at the deadline."""
        wake.disarm()
        st = wake.st
        self.tracker.unwatch(st)
        if wake.expired and self.gave_up is not None and not st.settled:
            self.gave_up(st)

    def _step(self, wake: _Wake, timeout: float | None) -> Task | _Wake | None:
        """Where a single wait stands: its SUCCESS task, the wake to sleep on, or
        None when a modal step or a successor must be followed first. Raises the
        wait's error."""
        st = wake.st
        if wake.expired:
            # As a deadline that cancels the wait: it wins over whatever it interrupted.
            raise TaskTimeout(st.id, self.limit(timeout), st.task)
        if st.successor is not None or (
            st.modal_answer is not None and st.status == TaskStatus.MODAL
        ):
            return None
        status = st.status
        if status == TaskStatus.SUCCESS or status in _FAILED:
            task = st.task
            assert task is not None
            if status == TaskStatus.SUCCESS:
                return task
            raise TaskFailed(task)
        if status == TaskStatus.MODAL:
            raise ModalRequired(self.handle_for(st))
        if st.error is not None:
            raise st.error
        if self.table.closed:
            raise SessionClosed(st.id)
        return self._move(wake, st) if wake.done() else wake

    def _move(self, wake: _Wake, nxt: TaskState) -> _Wake:
        """A fresh wake on ``nxt`` (the same state, or the task it became), same deadline."""
        wake.disarm()
        if nxt is not wake.st:
            self.tracker.unwatch(wake.st)
            self.tracker.watch(nxt)
        return _Wake.arm(self, nxt, wake.end)

    async def _follow(self, wake: _Wake) -> _Wake:
        """Follow the successor of a single wait's state, or submit its modal answer
        and follow the task it became; the wake to go on with."""
        st = wake.st
        nxt = st.successor
        if nxt is None:
            end = wake.end
            try:
                async with deadline(max(0.0, end - asyncio.get_running_loop().time())):
                    # Raises what the step met: a timeout of it must not read as ours.
                    nxt = await self.answer(st)
            except TimeoutError as exc:
                if isinstance(exc, MidjourneyError):
                    raise
                wake.expire()
                return wake
            if wake.expired:
                # The deadline passed while the step went out: it wins, as above.
                return wake
            if nxt is st:
                # Accepted under the same id: wait for its next snapshots.
                return self._move(wake, st)
        return self._move(wake, nxt.latest)

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


class _Wake(asyncio.Future[None]):
    """What one ``wait()`` sleeps on: woken by its state when it may have settled,
    or by its deadline timer (then ``expired``)."""

    __slots__ = ("st", "timer", "waits")

    # The timer's callback only wakes a future: it needs no copy of the caller's context.
    _context: Final = contextvars.Context()
    st: TaskState
    timer: asyncio.TimerHandle | None
    waits: Waits

    @classmethod
    def arm(cls, waits: Waits, st: TaskState, end: float) -> _Wake:
        """A wake subscribed to ``st`` with its timer set at ``end`` (loop time)."""
        loop = asyncio.get_running_loop()
        wake = cls(loop=loop)
        wake.st = st
        wake.waits = waits
        wake.timer = loop.call_at(end, wake, context=cls._context)
        st.subscribe(wake)
        return wake

    @property
    def end(self) -> float:
        """The deadline (loop time); only asked before it passed."""
        assert self.timer is not None
        return self.timer.when()

    @property
    def expired(self) -> bool:
        """The deadline passed (the timer fired, or the wait saw it pass)."""
        return self.timer is None

    def expire(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.st.unsubscribe(self)

    def __call__(self, st: TaskState | None = None) -> None:
        if st is None:
            self.timer = None
        elif not (
            st.status in _SETTLES
            or st.error is not None
            or st.successor is not None
            or self.waits.table.closed
        ):
            return  # a pending snapshot: the common case, told apart inline
        if not self.done():
            self.set_result(None)


def _wait_ends(states: Iterable[TaskState]) -> Iterator[float]:
    """When the single waits on ``states`` end, for the poller: it may pause (a
    429's Retry-After), but not past a wait's end. Loop time is the monotonic
    clock (asyncio's loops and uvloop alike)."""
    for st in states:
        subs = st.subscribers
        for sub in subs if isinstance(subs, list) else (subs,):
            if isinstance(sub, _Wake) and sub.timer is not None:
                yield sub.timer.when()


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
        # Where each state stands in the caller's list: one position, or a list
        # of them when a state stands twice (a list a state costs ~100 bytes).
        self._at: dict[TaskState, Spots] = {}
        self._positions = states
        for i, st in enumerate(states):
            st = st.latest
            spots = self._at.get(st)
            if spots is None:
                self._at[st] = i
                self._attach(st)
            else:
                self._at[st] = _joined(spots, i)
        # Every state is looked at once before anything is awaited.
        self._changed: list[TaskState] = list(self._at)

    def __call__(self, st: TaskState) -> None:
        """The subscriber: note a state that may have settled, and wake the wait."""
        if st.status in _SETTLES or st.error is not None or st.successor is not None:
            self._changed.append(st)
        elif not (self._every or self._waits.table.closed):
            return
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def current(self, position: int) -> TaskState:
        """The state ``position`` waits on now (a successor after a modal step)."""
        for st, spots in self._at.items():
            if spots == position or (isinstance(spots, list) and position in spots):
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
        return sorted(i for spots in self._at.values() for i in _listed(spots))

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
                if st.successor is None and (
                    st.modal_answer is None or st.status != TaskStatus.MODAL
                ):
                    outcome = self._outcome(st)  # the common case: nothing to await
                else:
                    outcome = await self._resolve(st, spots)
                if outcome is not None:
                    del self._at[st]
                    if isinstance(spots, int):
                        ready.append((spots, outcome))
                    else:
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

    async def _resolve(self, st: TaskState, spots: Spots) -> Outcome | None:
        """The outcome of ``st`` if it has one now; follows a successor."""
        successor = st.successor
        if (
            successor is None
            and st.modal_answer is not None
            and st.status == TaskStatus.MODAL
        ):
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
                for i in _listed(spots):
                    known = _joined(known, i)
                self._at[nxt] = known
            self._changed.append(nxt)
            return None
        return self._outcome(st)

    def _outcome(self, st: TaskState) -> Outcome | None:
        """The outcome of ``st`` by its own snapshot, if it has one now."""
        # The status alone until the task settled: a pending snapshot stays packed.
        status = st.status
        if status == TaskStatus.SUCCESS or status in _FAILED:
            task = st.task
            assert task is not None
            return task if status == TaskStatus.SUCCESS else TaskFailed(task)
        if status == TaskStatus.MODAL:
            return ModalRequired(self._waits.handle_for(st))
        return st.error


def _listed(spots: Spots) -> list[int]:
    return spots if isinstance(spots, list) else [spots]


def _joined(spots: Spots, position: int) -> list[int]:
    """``spots`` with one more position (a list from then on)."""
    if isinstance(spots, list):
        spots.append(position)
        return spots
    return [spots, position]

