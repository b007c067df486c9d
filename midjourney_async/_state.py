"""The task state machine: what the session knows of each task id, moved forward only.

Every source of snapshots (the poller, ``refresh()``, webhook callbacks,
``session.notify()``) goes through :meth:`StateTable.apply`, which keeps the
forward-only rule: NOT_START < SUBMITTED < IN_PROGRESS/MODAL < terminal, and
progress never goes down, so late, duplicate or out-of-order snapshots are
dropped. A change reaches everyone through one path, :meth:`TaskState.publish`:
the subscribers of that state (waits, ``updates()``), then, when the task
settles (ends, fails or stops in MODAL), the table's observers (the in-flight
slots, the journal).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from ._errors import MidjourneyError
from ._models import STATUS_RANK, TERMINAL, RowHead, Task, TaskStatus
from ._snapshot import Fresh, pack, unpack

__all__ = ["StateTable", "TaskState", "TrackerStats", "is_newer"]

logger = logging.getLogger("midjourney_async")

Subscriber = Callable[["TaskState"], None]


@dataclass
class TrackerStats:
    """Counters of the shared poller, for tests, benchmarks and dashboards."""

    ticks: int = 0
    list_requests: int = 0
    fetch_requests: int = 0
    fallback_fetches: int = 0
    snapshots_applied: int = 0
    snapshots_dropped: int = 0
    errors: int = 0
    rate_limited: int = 0
    last_error: str | None = None
    ids_per_tick: list[int] = field(default_factory=list)


def is_newer(old: Task | RowHead | None, new: Task | RowHead) -> bool:
    """Whether ``new`` moves the task forward from ``old`` (the forward-only rule)."""
    if old is None:
        return True
    return _newer(old.status, old.progress_percent, new)


def _newer(status: str, percent: int | None, new: Task | RowHead) -> bool:
    """:func:`is_newer` against a snapshot known by its status and percentage."""
    old_rank = STATUS_RANK.get(status, 2)
    new_rank = STATUS_RANK.get(new.status, 2)
    if new_rank != old_rank:
        return new_rank > old_rank
    if status in TERMINAL:
        return False
    old_pct = percent if percent is not None else -1
    new_pct = new.progress_percent if new.progress_percent is not None else -1
    if new_pct != old_pct:
        return new_pct > old_pct
    return new.status != status


class TaskState:
    """What the session knows of one task id; shared by every handle on that id.

    Besides the snapshot it holds what every handle on the id must agree on:
    the prompt and mask to answer a modal window with, should one open later
    (new-api shows a remix window only through the status), and the task a
    modal step turned this one into when it got a new id.

    A pending snapshot (neither ended nor MODAL) is kept packed, or as the
    list row it came in until that row holds still (see ``_snapshot``), its
    status and percentage beside it for the forward-only rule and the poller;
    the Task is made when someone reads :attr:`task`.
    """

    __slots__ = (
        "__weakref__",
        "_snap",
        "due",
        "error",
        "fresh",
        "holds",
        "id",
        "left_modal",
        "misses",
        "modal_answer",
        "not_found",
        "not_found_at",
        "percent",
        "queue_position",
        "status",
        "subscribers",
        "successor",
        "waiters",
    )

    def __init__(self, task_id: str, queue_position: int | None = None) -> None:
        self.id = task_id
        # The snapshot: a Task, or a pending one packed or fresh; None before the first.
        self._snap: Task | bytes | Fresh | None = None
        #: The snapshot's status and percentage (None before the first snapshot).
        self.status: str | None = None
        self.percent: int | None = None
        self.error: MidjourneyError | None = None
        self.queue_position = queue_position
        # Poller bookkeeping: active waits, reasons to poll with no wait (an
        # in-flight slot), when to ask next, and how often it went missing.
        self.waiters = 0
        self.holds = 0
        self.due = 0.0
        self.misses = 0
        self.not_found = 0
        self.not_found_at = 0.0
        # The snapshot is a pending list row not packed yet (as it came in, or read).
        self.fresh = False
        # Set once a modal step was accepted: a late MODAL snapshot is stale then.
        self.left_modal = False
        self.modal_answer: tuple[str | None, str | None] | None = None
        self.successor: TaskState | None = None
        # One subscriber alone, or a list of them: most states have one wait at most.
        self.subscribers: Subscriber | list[Subscriber] | None = None

    def __repr__(self) -> str:
        return f"<TaskState {self.id} {self.status or 'unknown'}>"

    @property
    def task(self) -> Task | None:
        """The last snapshot, or None before the first one."""
        snap = self._snap
        if snap is None or isinstance(snap, Task):
            return snap
        # Made once and kept until the next snapshot: whoever reads it twice gets
        # one object, and a task nobody looks at stays small.
        assert self.status is not None
        if isinstance(snap, bytes):
            task = unpack(snap, self.id, self.status)
        else:
            task = snap.read(self.id, self.status, self.percent)
        self._snap = task
        return task

    def keep(self, task: Task, *, from_json: bool = False) -> None:
        """Make ``task`` the snapshot (packed while the task is pending); ``from_json``
        says it was just decoded from a server's answer (see :func:`pack`)."""
        status = task.status
        packed = (
            None
            if status in TERMINAL or status == TaskStatus.MODAL or task.id != self.id
            else pack(task, from_json=from_json)
        )
        # Set together, after packing: the status and percentage describe this snapshot.
        self.status = status
        self.percent = task.progress_percent
        self._snap = task if packed is None else packed
        self.fresh = False

    def keep_row(self, head: RowHead, fresh: Fresh) -> None:
        """Make the pending row ``fresh``, whose id, status and progress are ``head``,
        the snapshot, as it came in."""
        self.status = head.status
        self.percent = head.progress_percent
        self._snap = fresh
        self.fresh = True

    def compact(self) -> None:
        """Pack a pending snapshot that came in as a list row (its task holds still)."""
        if self.fresh:
            task = self.task
            assert task is not None
            self.keep(task, from_json=True)

    def forget(self) -> None:
        """Drop the snapshot: the next one may rank lower (a modal step was accepted)."""
        self._snap = self.status = self.percent = None
        self.fresh = False

    @property
    def done(self) -> bool:
        """Ended: a terminal snapshot, or an error (not found, rejected key)."""
        return self.error is not None or self.status in TERMINAL

    @property
    def settled(self) -> bool:
        """Nothing more happens without the caller: ended, or waiting in MODAL."""
        return self.done or self.status == TaskStatus.MODAL

    @property
    def latest(self) -> TaskState:
        """This state, or the one a modal step turned it into (followed to the end)."""
        state = self
        while state.successor is not None:
            state = state.successor
        return state

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber(state)`` at every change from now on."""
        subs = self.subscribers
        if subs is None:
            self.subscribers = subscriber
        elif isinstance(subs, list):
            subs.append(subscriber)
        else:
            self.subscribers = [subs, subscriber]

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subs = self.subscribers
        if subs is None:
            return
        if not isinstance(subs, list):
            if subs is subscriber:
                self.subscribers = None
            return
        try:
            subs.remove(subscriber)
        except ValueError:
            return
        if len(subs) == 1:
            self.subscribers = subs[0]

    def publish(self) -> None:
        """Tell every subscriber that this state changed."""
        subs = self.subscribers
        if subs is None:
            return
        if not isinstance(subs, list):
            subs(self)
            return
        for subscriber in tuple(subs):
            subscriber(self)


class StateTable:
    """Every task state of a session by id, and the forward-only rule applied to them.

    Weak: a state lives as long as a handle, a wait or the poller needs it, so
    fire-and-forget handles and abandoned waits cost nothing for ever.
    ``observers`` are told once per settle (ended, failed or MODAL).
    """

    def __init__(self) -> None:
        self.states: weakref.WeakValueDictionary[str, TaskState] = (
            weakref.WeakValueDictionary()
        )
        self.observers: list[Subscriber] = []
        # Told of every snapshot that moved a task forward (a shared backend publishes it).
        self.on_applied: Callable[[Task], None] | None = None
        self.stats = TrackerStats()
        self.closed = False

    def get(self, task_id: str) -> TaskState | None:
        return self.states.get(task_id)

    def state(self, task_id: str, queue_position: int | None = None) -> TaskState:
        """The shared state of ``task_id``, created on first use."""
        st = self.states.get(task_id)
        if st is None:
            return self.add(task_id, queue_position)
        if queue_position is not None:
            st.queue_position = queue_position
        return st

    def add(self, task_id: str, queue_position: int | None = None) -> TaskState:
        """A new state for ``task_id``, which has none yet."""
        st = self.states[task_id] = TaskState(task_id, queue_position)
        return st

    def apply(self, task: Task) -> bool:
        """Offer a snapshot from any source; True if it moved a known task forward."""
        st = self.states.get(task.id)
        if st is None:
            return False
        return self.update(st, task)

    def update(self, st: TaskState, task: Task, *, from_json: bool = False) -> bool:
        """Offer ``task`` as the next snapshot of ``st``; True if it moved it forward.

        ``from_json``: decoded from a server's answer just now (cheaper to keep)."""
        previous = st.status
        if not self._moves(st, previous, task):
            return False
        st.keep(task, from_json=from_json)
        self._applied(st, previous, task)
        return True

    def update_row(
        self,
        st: TaskState,
        head: RowHead,
        row: msgspec.Raw | bytes,
        decode: Callable[[bytes], Task | None],
    ) -> bool:
        """:meth:`update` with a pending list ``row``, read as far as ``head`` and kept
        as it came in until someone reads it (``decode`` reads it then)."""
        previous = st.status
        if not self._moves(st, previous, head):
            return False
        st.keep_row(head, Fresh(bytes(row), decode))
        self._applied(st, previous, head)
        return True

    def _moves(self, st: TaskState, previous: str | None, snap: Task | RowHead) -> bool:
        """Whether ``snap`` moves ``st`` forward (counted as dropped if not)."""
        st.misses = 0
        st.not_found = 0
        if (previous is not None and not _newer(previous, st.percent, snap)) or (
            st.left_modal and snap.status == TaskStatus.MODAL
        ):
            self.stats.snapshots_dropped += 1
            return False
        return True

    def _applied(self, st: TaskState, previous: str | None, snap: Task | RowHead) -> None:
        """Tell everyone that ``snap`` became the snapshot of ``st``."""
        self.stats.snapshots_applied += 1
        status = snap.status
        if previous != status:
            logger.info("task %s: %s %s", snap.id, status, snap.progress or "")
        if status in TERMINAL or status == TaskStatus.MODAL:
            self._settled(st)
        st.publish()
        if self.on_applied is not None:
            task = snap if isinstance(snap, Task) else st.task
            assert task is not None
            self.on_applied(task)

    def fail(self, st: TaskState, error: MidjourneyError) -> None:
        """End ``st`` with an error (not found after the grace, a rejected key)."""
        st.error = error
        self._settled(st)
        st.publish()

    def reopen(self, st: TaskState) -> None:
        """Let a task leave MODAL once its modal step was accepted under the same id.

        The next snapshots may rank below the MODAL one (SUBMITTED), and any
        MODAL snapshot still on its way is stale from now on.
        """
        st.left_modal = True
        if st.status == TaskStatus.MODAL:
            st.forget()

    def _settled(self, st: TaskState) -> None:
        for observer in self.observers:
            observer(st)

    def close(self) -> None:
        """Wake every subscriber: the session is closing, their waits end."""
        self.closed = True
        for st in list(self.states.values()):
            st.publish()
