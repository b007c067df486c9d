"""One shared poller per session, and the forward-only task state machine.

Every pending task a caller waits on is watched by a single background loop.
Each tick it asks ``list-by-condition`` for all due ids in chunks (matching the
answers by id: servers reorder them and silently drop ids they do not know),
falls back to per-id ``fetch`` for ids missing from two batches in a row and
for dialects without a list endpoint, and fans the snapshots out to waiters.

Snapshots only move forward (NOT_START < SUBMITTED < IN_PROGRESS/MODAL <
terminal, progress never down), so late, duplicate or out-of-order answers and
webhook callbacks are dropped. A task nobody waits on costs no requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ._errors import (
    AuthenticationError,
    MidjourneyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TaskNotFound,
    UnsupportedOperation,
)
from ._models import STATUS_RANK, TERMINAL, Task, TaskStatus

__all__ = ["TaskState", "Tracker", "TrackerStats", "is_newer"]

logger = logging.getLogger("midjourney_async")

_QUEUED = frozenset({TaskStatus.NOT_START, TaskStatus.SUBMITTED})


def is_newer(old: Task | None, new: Task) -> bool:
    """Whether ``new`` moves the task forward from ``old`` (the forward-only rule)."""
    if old is None:
        return True
    old_rank = STATUS_RANK.get(old.status, 2)
    new_rank = STATUS_RANK.get(new.status, 2)
    if new_rank != old_rank:
        return new_rank > old_rank
    if old.status in TERMINAL:
        return False
    old_pct = old.progress_percent if old.progress_percent is not None else -1
    new_pct = new.progress_percent if new.progress_percent is not None else -1
    if new_pct != old_pct:
        return new_pct > old_pct
    return new.status != old.status


class TaskState:
    """What the session knows of one task id; shared by every handle on that id."""

    __slots__ = (
        "__weakref__",
        "_event",
        "due",
        "error",
        "forced",
        "id",
        "left_modal",
        "listeners",
        "misses",
        "not_found",
        "not_found_at",
        "on_terminal",
        "queue_position",
        "task",
        "waiters",
    )

    def __init__(self, task_id: str, queue_position: int | None = None) -> None:
        self.id = task_id
        self.task: Task | None = None
        self.error: MidjourneyError | None = None
        self.waiters = 0
        # Watched even with no waiter (an in-flight slot must be released).
        self.forced = False
        self.due = 0.0
        self.misses = 0
        self.not_found = 0
        self.not_found_at = 0.0
        self.queue_position = queue_position
        self.on_terminal: Callable[[], None] | None = None
        # Set once a modal step was accepted: a late MODAL snapshot is stale then.
        self.left_modal = False
        # Events of waits (wait(), wait_all()), set when this task settles.
        self.listeners: list[asyncio.Event] | None = None
        self._event: asyncio.Event | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or (self.task is not None and self.task.status in TERMINAL)

    async def changed(self) -> None:
        """Return at the next change of snapshot (or error)."""
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()

    def wake(self) -> None:
        """Wake every waiter whatever changed (the session is closing)."""
        for event in (self._event, *(self.listeners or ())):
            if event is not None:
                event.set()
        self._event = None

    def notify(self) -> None:
        event, self._event = self._event, None
        if event is not None:
            event.set()
        if self.listeners and (
            self.done or (self.task is not None and self.task.status == TaskStatus.MODAL)
        ):
            for listener in self.listeners:
                listener.set()


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


ListFn = Callable[[list[str]], Awaitable[list[Task]]]
FetchFn = Callable[[str], Awaitable[Task]]


class Tracker:
    """The shared poller. Started lazily by the first waiter, stopped with the session."""

    def __init__(
        self,
        *,
        list_tasks: ListFn | None,
        fetch: FetchFn,
        interval: float = 3.0,
        queued_factor: float = 2.0,
        chunk_size: int = 100,
        concurrency: int = 8,
        not_found_grace: float = 30.0,
        max_interval: float = 60.0,
        on_end: Callable[[TaskState], None] | None = None,
    ) -> None:
        self._list = list_tasks
        self._fetch = fetch
        self.interval = interval
        self.queued_factor = queued_factor
        self.chunk_size = max(1, chunk_size)
        self.not_found_grace = not_found_grace
        self.max_interval = max_interval
        self._limit = asyncio.Semaphore(max(1, concurrency))
        # Weak: a state lives as long as a handle or the poller needs it, so
        # fire-and-forget handles and abandoned waits cost nothing for ever.
        self.states: weakref.WeakValueDictionary[str, TaskState] = (
            weakref.WeakValueDictionary()
        )
        self._watched: dict[str, TaskState] = {}
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._penalty = 1.0
        self._pause_until = 0.0
        self._closed = False
        self._list_404s = 0
        self._on_end = on_end
        self.stats = TrackerStats()

    # -- registry -----------------------------------------------------------

    def state(self, task_id: str, queue_position: int | None = None) -> TaskState:
        """The shared state of ``task_id``, created on first use."""
        st = self.states.get(task_id)
        if st is None:
            st = TaskState(task_id, queue_position)
            # A fresh submit is not worth asking about before one interval passed.
            st.due = time.monotonic() + self.interval
            self.states[task_id] = st
        elif queue_position is not None:
            st.queue_position = queue_position
        return st

    def watch(self, st: TaskState) -> None:
        """Count one more waiter on ``st``; the poller covers it from now on."""
        st.waiters += 1
        self._enlist(st)

    def unwatch(self, st: TaskState) -> None:
        st.waiters = max(0, st.waiters - 1)
        if st.waiters == 0 and not st.forced:
            self._watched.pop(st.id, None)

    def force(self, st: TaskState, on_terminal: Callable[[], None]) -> None:
        """Watch ``st`` until it ends even with no waiter, then call ``on_terminal``."""
        if st.done:
            # Already over (trueai answers a Like with its finished parent's id).
            on_terminal()
            return
        st.forced = True
        st.on_terminal = on_terminal
        self._enlist(st)

    def _enlist(self, st: TaskState) -> None:
        if st.done:
            return
        if st.id not in self._watched:
            # Listed even while closed: restart() polls it then, so a slot it holds
            # is not lost with the state.
            self._watched[st.id] = st
            if not self._closed:
                self._ensure_running()
                self._wakeup.set()

    def release(self, st: TaskState) -> None:
        """Stop watching ``st`` for its slot: give the slot back now."""
        callback, st.on_terminal = st.on_terminal, None
        st.forced = False
        if st.waiters == 0:
            self._watched.pop(st.id, None)
        if callback is not None:
            callback()

    def detach(self, st: TaskState) -> Callable[[], None] | None:
        """Take the slot ``st`` holds (a modal step carries it on); None if it holds none."""
        if not st.forced:
            return None
        callback, st.on_terminal = st.on_terminal, None
        st.forced = False
        if st.waiters == 0:
            self._watched.pop(st.id, None)
        return callback

    def reopen(self, task_id: str) -> None:
        """Let a task leave MODAL once its modal step was accepted.

        The next snapshots may rank below the MODAL one (SUBMITTED), and any
        MODAL snapshot still on its way is stale from now on.
        """
        st = self.states.get(task_id)
        if st is None:
            return
        st.left_modal = True
        if st.task is not None and st.task.status == TaskStatus.MODAL:
            st.task = None
        st.due = time.monotonic()
        if st.waiters or st.forced:
            self._enlist(st)

    @property
    def pending(self) -> int:
        """How many tasks the poller watches now."""
        return len(self._watched)

    # -- snapshots ----------------------------------------------------------

    def apply(self, task: Task) -> bool:
        """Offer a snapshot from any source; True if it moved the task forward."""
        st = self.states.get(task.id)
        if st is None:
            return False
        return self._apply(st, task)

    def _apply(self, st: TaskState, task: Task) -> bool:
        st.misses = 0
        st.not_found = 0
        modal = task.status == TaskStatus.MODAL
        if not is_newer(st.task, task) or (modal and st.left_modal):
            self.stats.snapshots_dropped += 1
            return False
        previous = st.task
        st.task = task
        self.stats.snapshots_applied += 1
        if previous is None or previous.status != task.status:
            logger.info(
                "task %s: %s %s", task.id, task.status, task.progress or ""
            )
        if task.status in TERMINAL:
            self._finish(st)
        elif modal and st.forced:
            # A task waiting for a modal step may wait for ever (trueai never
            # expires one): it must not hold an in-flight slot meanwhile.
            self.release(st)
        st.notify()
        return True

    def fail(self, st: TaskState, error: MidjourneyError) -> None:
        """End ``st`` with an error (TaskNotFound after the grace)."""
        st.error = error
        self._finish(st)
        st.notify()

    def _finish(self, st: TaskState) -> None:
        self._watched.pop(st.id, None)
        if self._on_end is not None:
            self._on_end(st)
        callback, st.on_terminal = st.on_terminal, None
        st.forced = False
        if callback is not None:
            callback()

    # -- the loop -----------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), name="midjourney_async-tracker"
            )

    @property
    def running(self) -> bool:
        """Whether the background loop is alive."""
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def closed(self) -> bool:
        """True between ``close()`` and the next ``restart()``."""
        return self._closed

    async def close(self) -> None:
        """Stop the loop and wake every waiter, which then raises SessionClosed."""
        self._closed = True
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for st in list(self.states.values()):
            st.wake()

    def restart(self) -> None:
        """Accept waiters again after ``close()`` (the session was reopened)."""
        self._closed = False
        if self._watched:
            self._ensure_running()

    def _next_interval(self, st: TaskState) -> float:
        base = self.interval * self._penalty
        if st.task is None or st.task.status in _QUEUED:
            base *= self.queued_factor
        return min(base, self.max_interval)

    async def _run(self) -> None:
        while not self._closed:
            if not self._watched:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = time.monotonic()
            wait = max(self._pause_until - now, min(st.due for st in self._watched.values()) - now)
            if wait > 0:
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
                continue
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any one bad tick
                self.stats.errors += 1
                self.stats.last_error = repr(exc)
                logger.warning("poller tick failed: %r", exc)
                self._pause_until = time.monotonic() + self.interval

    async def tick(self) -> None:
        """Poll every due task once."""
        now = time.monotonic()
        # Take along whatever falls due within half a tick: tasks submitted a few
        # ms apart then share one sweep (and one list request per chunk) from
        # here on, instead of each costing a request of its own.
        horizon = now + self.interval * self._penalty * 0.5
        due = [st for st in self._watched.values() if st.due <= horizon]
        if not due or not any(st.due <= now for st in due):
            return
        self.stats.ticks += 1
        self.stats.ids_per_tick.append(len(due))
        del self.stats.ids_per_tick[:-100]
        for st in due:
            st.due = now + self._next_interval(st)
        fallback: list[TaskState] = []
        if self._list is not None:
            chunks = [due[i : i + self.chunk_size] for i in range(0, len(due), self.chunk_size)]
            results = await asyncio.gather(*(self._poll_chunk(c) for c in chunks))
            for missing in results:
                fallback.extend(missing)
        else:
            fallback = due
        if fallback:
            await asyncio.gather(*(self._poll_one(st) for st in fallback))

    async def _poll_chunk(self, chunk: list[TaskState]) -> list[TaskState]:
        ids = [st.id for st in chunk]
        async with self._limit:
            try:
                self.stats.list_requests += 1
                assert self._list is not None
                tasks = await self._list(ids)
            except UnsupportedOperation:
                self._list = None
                return chunk
            except NotFoundError as exc:
                # A relay that does not serve list-by-condition: fetch one by one. A
                # single stray 404 must not end batching for the session's life.
                self._list_404s += 1
                if self._list_404s >= 3 and self._list is not None:
                    logger.warning("list-by-condition unavailable (%s); fetching one by one", exc)
                    self._list = None
                return chunk
            except (AuthenticationError, PermissionDeniedError) as exc:
                # A rejected or forbidden key (trueai's 403 "未登录") will not heal by
                # itself: end the waits with it rather than let them time out.
                for each in chunk:
                    self.fail(each, exc)
                return []
            except MidjourneyError as exc:
                self._on_error(exc)
                return []
        self._penalty = max(1.0, self._penalty / 2)
        self._list_404s = 0
        by_id = {st.id: st for st in chunk}
        for task in tasks:
            st = by_id.pop(task.id, None)
            if st is not None:
                self._apply(st, task)
        missing: list[TaskState] = []
        for st in by_id.values():
            # A batch may leave out an id (a relay not yet refreshed, a lost row):
            # only a second miss in a row costs a fetch.
            st.misses += 1
            if st.misses >= 2:
                missing.append(st)
        return missing

    async def _poll_one(self, st: TaskState) -> None:
        async with self._limit:
            if st.done:
                return
            self.stats.fetch_requests += 1
            if self._list is not None:
                self.stats.fallback_fetches += 1
            try:
                task = await self._fetch(st.id)
            except TaskNotFound as exc:
                self._not_found(st, exc)
                return
            except (AuthenticationError, PermissionDeniedError) as exc:
                self.fail(st, exc)
                return
            except MidjourneyError as exc:
                self._on_error(exc)
                return
        self._apply(st, task)

    def _not_found(self, st: TaskState, exc: TaskNotFound) -> None:
        now = time.monotonic()
        if st.not_found == 0:
            st.not_found_at = now
        st.not_found += 1
        if st.not_found >= 2 and now - st.not_found_at >= self.not_found_grace:
            logger.warning("task %s is not known to the server; giving up on it", st.id)
            self.fail(st, exc)

    def _on_error(self, exc: MidjourneyError) -> None:
        self.stats.errors += 1
        self.stats.last_error = str(exc)
        if isinstance(exc, RateLimitError):
            self.stats.rate_limited += 1
            self._penalty = min(self._penalty * 2, self.max_interval / max(self.interval, 1e-9))
            if exc.retry_after:
                self._pause_until = max(self._pause_until, time.monotonic() + exc.retry_after)
        logger.warning("poll failed, will try again next tick: %s", exc)

    async def refresh(self, ids: Iterable[str]) -> None:
        """Poll the given ids now (used after a webhook hint, or by ``refresh()``)."""
        for task_id in ids:
            st = self.states.get(task_id)
            if st is not None and not st.done:
                await self._poll_one(st)
