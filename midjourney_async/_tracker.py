"""One shared poller per session.

Every task someone waits on, or that must be watched to its end (an
in-flight slot rides on it), is asked about by a single background loop.
Each tick it reads all due ids through the :class:`TaskReader` (list in
chunks, matching rows by id: servers reorder them, drop ids they do not know
and, on new-api, keep a stale row beside the live one), fetches ids missing
from two batches in a row, and offers every row to the :class:`StateTable`,
whose forward-only rule picks what moves a task on.

Rows are read as far as their id, status and progress first: a task found
where it stood costs nothing more, a pending task that moved on keeps its
row as it came in, and only a settled task is decoded in full.

The poller knows only "keep polling this id": waits count through
:meth:`Tracker.watch`, other reasons through :meth:`Tracker.hold`. A task
nobody waits on and nothing holds costs no requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence

import msgspec

from ._errors import (
    AuthenticationError,
    MidjourneyError,
    NotMidjourneyAPI,
    PermissionDeniedError,
    RateLimitError,
    TaskNotFound,
)
from ._models import TERMINAL, RowHead, Task, TaskStatus, known_percent, normalise_head
from ._reader import Chunk, TaskReader
from ._state import StateTable, TaskState, TrackerStats, is_newer

__all__ = ["Tracker", "TrackerStats"]

logger = logging.getLogger("midjourney_async")

# Answers in a row from a server that is no midjourney-proxy API (a web page, another
# JSON API) after which the waits end with that error: one may be a passing glitch
# (a captive portal, a misrouted request), several mean a wrong base URL.
FOREIGN_ANSWERS_BEFORE_FAILING = 3
_QUEUED = frozenset({TaskStatus.NOT_START, TaskStatus.SUBMITTED})
# The longest a Retry-After may pause the poller, as the transport caps its own.
MAX_PAUSE = 60.0


class Tracker:
    """The shared poller. Started lazily by the first task to watch, stopped with the session."""

    def __init__(
        self,
        table: StateTable,
        reader: TaskReader,
        *,
        interval: float = 3.0,
        queued_factor: float = 2.0,
        not_found_grace: float = 30.0,
        max_interval: float = 60.0,
    ) -> None:
        self.table = table
        self.reader = reader
        self.interval = interval
        self.queued_factor = queued_factor
        self.not_found_grace = not_found_grace
        self.max_interval = max_interval
        self._watched: dict[str, TaskState] = {}
        self._wakeup = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._penalty = 1.0
        self._foreign = 0
        self._pause_until = 0.0
        self._closed = False
        # One set of counters, kept live by the table, the reader and the poller.
        self._stats = table.stats
        reader.stats = table.stats
        # When running waits end: a pause never runs past the nearest one. Single
        # waits keep their deadline on themselves (a dict entry less for each of
        # thousands of waiting handles): ``wait_ends`` lists them on demand.
        self._ends: dict[object, float] = {}
        self.wait_ends: Callable[[Iterable[TaskState]], Iterable[float]] | None = None
        # No watched task is due before this (a lower bound: the sweep then finds
        # nothing due and works it out again).
        self._soonest = 0.0
        table.observers.append(self._settled)
        # A shared backend: told of each id the poller takes on, and asked before
        # each tick whether this poller should read (another may poll for it).
        self.on_enlist: Callable[[str], None] | None = None
        self.gate: Callable[[], bool] | None = None

    # -- what to poll -------------------------------------------------------

    def state(self, task_id: str, queue_position: int | None = None) -> TaskState:
        """The shared state of ``task_id``; a new one is first asked about after a tick."""
        st = self.table.get(task_id)
        if st is None:
            st = self.table.add(task_id, queue_position)
            # A fresh submit is not worth asking about before one interval passed.
            st.due = time.monotonic() + self.interval
        elif queue_position is not None:
            st.queue_position = queue_position
        return st

    def watch(self, st: TaskState) -> None:
        """Count one more wait on ``st``; the poller covers it from now on."""
        st.waiters += 1
        self._enlist(st)

    def unwatch(self, st: TaskState) -> None:
        st.waiters = max(0, st.waiters - 1)
        self._delist(st)

    def hold(self, st: TaskState) -> None:
        """Keep polling ``st`` until it settles, even with no wait on it."""
        st.holds += 1
        self._enlist(st)

    def unhold(self, st: TaskState) -> None:
        st.holds = max(0, st.holds - 1)
        self._delist(st)

    def _enlist(self, st: TaskState) -> None:
        if st.done or st.id in self._watched:
            return
        # Listed even while closed: restart() polls it then, so a slot riding on it
        # is not lost with the state.
        self._watched[st.id] = st
        self._soonest = min(self._soonest, st.due)
        if self.on_enlist is not None:
            self.on_enlist(st.id)
        if not self._closed:
            self._ensure_running()
            self._wakeup.set()

    def _delist(self, st: TaskState) -> None:
        if st.waiters == 0 and st.holds == 0:
            self._forget(st)

    def _settled(self, st: TaskState) -> None:
        if st.done:
            self._forget(st)

    def _forget(self, st: TaskState) -> None:
        self._watched.pop(st.id, None)
        # A handle may hold the state for long after the poller let go of it.
        st.compact()

    def reopen(self, st: TaskState) -> None:
        """A modal step was accepted under ``st``'s own id: poll it again at once."""
        self.table.reopen(st)
        st.due = time.monotonic()
        self._soonest = min(self._soonest, st.due)
        if st.waiters or st.holds:
            self._enlist(st)

    def ask_soon(self, st: TaskState) -> None:
        """Ask about ``st`` on the next tick rather than after a full interval."""
        if st.status is None:
            st.due = 0.0
            self._soonest = 0.0

    def expect(self, waiter: object, end: float) -> None:
        """``waiter`` gives up at ``end`` (monotonic): poll once before it, pause or not."""
        self._ends[waiter] = end

    def unexpect(self, waiter: object) -> None:
        self._ends.pop(waiter, None)

    def _pause(self, seconds: float) -> None:
        now = time.monotonic()
        until = now + min(seconds, MAX_PAUSE)
        ends = list(self._ends.values())
        if self.wait_ends is not None:
            ends.extend(self.wait_ends(self._watched.values()))
        if ends:
            nearest = min(ends)
            if nearest < until:
                # Ask once more shortly before the nearest wait gives up.
                until = max(now, nearest - max(0.05, min(1.0, (nearest - now) * 0.1)))
        self._pause_until = max(self._pause_until, until)

    @property
    def pending(self) -> int:
        """How many tasks the poller watches now."""
        return len(self._watched)

    @property
    def watched_ids(self) -> list[str]:
        """The ids the poller watches now."""
        return list(self._watched)

    def watching(self, task_id: str) -> bool:
        """Whether the poller asks about ``task_id`` now."""
        return task_id in self._watched

    @property
    def stats(self) -> TrackerStats:
        return self._stats

    # -- the loop -----------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            # Started in a blank context: the poller serves every caller, so the
            # per-call options of a view (with_options) that happened to start it
            # must not stick to it.
            self._loop_task = contextvars.Context().run(
                asyncio.get_running_loop().create_task,
                self._run(),
                name="midjourney_async-tracker",
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
        """Stop the loop and wake every wait, which then raises SessionClosed."""
        self._closed = True
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.table.close()

    def restart(self) -> None:
        """Accept waits again after ``close()`` (the session was reopened)."""
        self._closed = False
        self.table.closed = False
        if self._watched:
            self._ensure_running()

    def _intervals(self) -> tuple[float, float]:
        """The next interval of a running task and of a queued one (asked less often)."""
        base = self.interval * self._penalty
        return min(base, self.max_interval), min(base * self.queued_factor, self.max_interval)

    async def _run(self) -> None:
        while not self._closed:
            if not self._watched:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = time.monotonic()
            wait = max(self._pause_until - now, self._soonest - now)
            if wait > 0:
                # Woken by a new task to watch or by this timer, whichever comes
                # first (a timer costs a fraction of wait_for's task and timeout).
                self._wakeup.clear()
                timer = asyncio.get_running_loop().call_later(wait, self._wakeup.set)
                try:
                    await self._wakeup.wait()
                finally:
                    timer.cancel()
                continue
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop must outlive any one bad tick
                self._stats.errors += 1
                self._stats.last_error = repr(exc)
                logger.warning("poller tick failed: %r", exc)
                self._pause_until = time.monotonic() + self.interval

    async def tick(self) -> None:
        """Poll every due task once."""
        now = time.monotonic()
        # Take along whatever falls due within half a tick: tasks submitted a few
        # ms apart then share one sweep (and one list request per chunk) from
        # here on, instead of each costing a request of its own.
        horizon = now + self.interval * self._penalty * 0.5
        due: list[TaskState] = []
        later = first = math.inf  # the soonest due time beyond the horizon, and within
        for st in self._watched.values():
            when = st.due
            if when <= horizon:
                due.append(st)
                if when < first:
                    first = when
            elif when < later:
                later = when
        if first > now:
            self._soonest = min(later, first)
            return
        running, queued = self._intervals()
        at_running, at_queued = now + running, now + queued
        self._soonest = min(later, at_running)
        # A shared backend: another worker may poll these and share what it reads.
        polling = self.gate is None or self.gate()
        lists = polling and self.reader.lists
        ids: list[str] = []
        for st in due:
            status = st.status
            st.due = at_queued if status is None or status in _QUEUED else at_running
            if lists:
                # Counted as missed until a row of it comes back (which resets it):
                # cheaper than tracking which ids each answer held.
                st.misses += 1
                ids.append(st.id)
        if not polling:
            return
        stats = self._stats
        stats.ticks += 1
        stats.ids_per_tick.append(len(due))
        del stats.ids_per_tick[:-100]
        fallback: list[TaskState] = []
        if lists:
            size = self.reader.chunk_for(len(due))
            starts = range(0, len(due), size)
            try:
                missed = await asyncio.gather(
                    *(self._sweep(due[i : i + size], ids[i : i + size]) for i in starts)
                )
            except BaseException:
                # Cancelled (the session closes): no answer came, so no miss either.
                for st in due:
                    st.misses = max(0, st.misses - 1)
                raise
            for part_missed in missed:
                fallback.extend(part_missed)
        else:
            fallback = due
        if fallback:
            await asyncio.gather(*(self._poll_one(st) for st in fallback))

    async def _sweep(self, states: list[TaskState], ids: list[str]) -> list[TaskState]:
        """List ``states`` (by their ``ids``) in one request and take the answer in as
        soon as it is there (its body is let go at once); those that need a fetch of
        their own."""
        return self._take_chunk(await self.reader.list_chunk(ids), states)

    def _take_chunk(self, chunk: Chunk, states: list[TaskState]) -> list[TaskState]:
        """Apply one list answer to the ``states`` it asked for; those that need a
        fetch of their own."""
        if chunk.error is not None or chunk.fetch_all:
            for st in states:
                # Not a miss: the list did not answer (a row from elsewhere may
                # already have reset it meanwhile).
                st.misses = max(0, st.misses - 1)
            if chunk.fetch_all:
                return states
            assert chunk.error is not None
            self._on_error(chunk.error, states)
            return []
        self._penalty = max(1.0, self._penalty / 2)
        self._foreign = 0
        reader = self.reader
        heads: Sequence[RowHead | Task | None] | None = chunk.heads
        if heads is None:
            # Some row could not be read in one go with the others: one by one.
            heads = [self._read_row(row) for row in chunk.rows]
        watched = self._watched
        # The states asked for by id, made only when a row's id is no longer watched.
        asked: dict[str, TaskState] = {}
        # The furthest row of each id that moves its task on, and where it stands.
        seen: dict[str, tuple[RowHead | Task, int]] = {}
        dropped = 0
        for i, head in enumerate(heads):
            if head is None:
                continue
            task_id = head.id
            to = watched.get(task_id)
            if to is None:
                # A wait may have ended while the request was out: its row still counts.
                asked = asked or {st.id: st for st in states}
                to = asked.get(task_id)
                if to is None:
                    continue
            progress = head.progress
            # Where the task stood (the forward-only rule keeps the snapshot it has):
            # nothing to decode. Told first by the wire's own values, which read the
            # same for nearly every row (a status and a percentage seen before).
            if (
                head.status != to.status
                or (known_percent(progress, -1) if progress else head.progress_percent)
                != to.percent
            ):
                normalise_head(head)
                moved = head.status != to.status or head.progress_percent != to.percent
            else:
                moved = False
            if not moved:
                # A row that came in and holds still is packed small from now on.
                to.misses = to.not_found = 0
                if to.fresh:
                    to.compact()
                dropped += 1
                continue
            status = head.status
            # Every row counts: new-api keeps a stale MODAL row beside the live one
            # after a modal step. Once the step was accepted that row is stale, and
            # the forward-only rule (which ranks MODAL high) must not pick it.
            if status == TaskStatus.MODAL and to.left_modal:
                continue
            best = seen.get(task_id)
            if is_newer(None if best is None else best[0], head):
                seen[task_id] = (head, i)
        self.table.stats.snapshots_dropped += dropped
        for task_id, (head, i) in seen.items():
            to = watched.get(task_id) or asked.get(task_id)
            if to is None:
                continue
            if isinstance(head, Task):
                self.table.update(to, head, from_json=True)
            elif head.status in TERMINAL or head.status == TaskStatus.MODAL:
                # Settled: the whole task, its buttons and images, is read now.
                task = reader.decode(chunk.rows[i])
                if task is not None:
                    self.table.update(to, task, from_json=True)
            else:
                # Pending: kept as it came in until someone reads it or it holds still.
                self.table.update_row(to, head, chunk.rows[i], reader.decode)
        # A batch may leave out an id (a relay not yet refreshed, a lost row):
        # only a second miss in a row costs a fetch.
        return [st for st in states if st.misses >= 2]

    def _read_row(self, row: msgspec.Raw) -> RowHead | Task | None:
        """A row as far as its head if the dialect reads heads, else in full."""
        head_of = self.reader.decode_head
        head = head_of(row) if head_of is not None else None
        return head if head is not None else self.reader.decode(row)

    async def _poll_one(self, st: TaskState) -> None:
        if st.done:
            return
        if st.left_modal and self.reader.can_list and await self._list_one(st):
            return
        if self.reader.lists:
            self._stats.fallback_fetches += 1
        try:
            task = await self.reader.fetch(st.id)
        except TaskNotFound as exc:
            if st.left_modal and self.reader.can_list:
                # new-api keeps two rows for an id after a modal step, and its fetch
                # answers task_no_found (or the stale MODAL row) for it: only the list
                # tells, so fetch alone never ends the wait.
                logger.debug("task %s: fetch after a modal step says not found", st.id)
                return
            self._not_found(st, exc)
            return
        except MidjourneyError as exc:
            self._on_error(exc, [st])
            return
        self._foreign = 0
        self.table.update(st, task, from_json=True)

    async def _list_one(self, st: TaskState) -> bool:
        """Read a task that left a modal step through the list, where every row of its
        id shows (fetch may see only the stale one); True if a row was applied."""
        chunk = await self.reader.list_chunk([st.id], force=True)
        best: Task | None = None
        for row in chunk.rows:
            task = self.reader.decode(row)
            if task is not None and task.id == st.id and is_newer(best, task):
                best = task
        if best is None:
            return False
        self.table.update(st, best, from_json=True)
        return True

    def _not_found(self, st: TaskState, exc: TaskNotFound) -> None:
        now = time.monotonic()
        if st.not_found == 0:
            st.not_found_at = now
        st.not_found += 1
        if st.not_found >= 2 and now - st.not_found_at >= self.not_found_grace:
            logger.warning("task %s is not known to the server; giving up on it", st.id)
            self.table.fail(st, exc)

    def _on_error(self, exc: MidjourneyError, states: list[TaskState]) -> None:
        if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
            # A rejected or forbidden key (trueai's 403 "未登录") will not heal by
            # itself: end the waits with it rather than let them time out.
            for st in states:
                self.table.fail(st, exc)
            return
        if isinstance(exc, NotMidjourneyAPI):
            self._foreign += 1
            if self._foreign >= FOREIGN_ANSWERS_BEFORE_FAILING:
                logger.warning("%s; ending the waits on %d task(s)", exc, len(states))
                for st in states:
                    self.table.fail(st, exc)
                return
        stats = self._stats
        stats.errors += 1
        stats.last_error = str(exc)
        if isinstance(exc, RateLimitError):
            stats.rate_limited += 1
            self._penalty = min(self._penalty * 2, self.max_interval / max(self.interval, 1e-9))
            if exc.retry_after:
                self._pause(exc.retry_after)
        logger.warning("poll failed, will try again next tick: %s", exc)

    async def refresh(self, ids: Iterable[str]) -> None:
        """Poll the given ids now (used after a webhook hint)."""
        for task_id in ids:
            st = self.table.get(task_id)
            if st is not None and not st.done:
                await self._poll_one(st)

