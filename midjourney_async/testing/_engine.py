"""The scheduler: one timer drives every task through its plan; concurrency slots and queue.

Design for 10,000 live tasks: a single heap of due events and a single ``loop.call_at``
timer, so an idle task costs nothing and there is no per-task coroutine. The clock is the
event loop's clock plus a skew that :meth:`Engine.advance` moves forward, which is how tests
fast-forward without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Literal

from ._task import TERMINAL, EmuTask, Step

Admission = Literal["run", "queued", "full"]


class Engine:
    """Runs task plans against a scalable clock with per-account concurrency and a queue."""

    def __init__(
        self,
        *,
        time_scale: float,
        concurrency: int | None,
        queue_size: int | None,
        apply: Callable[[EmuTask, Step], None],
    ) -> None:
        self.time_scale = time_scale
        """Real seconds per nominal second (1 / speed)."""
        self.concurrency = concurrency
        self.queue_size = queue_size
        self._apply = apply
        self._skew = 0.0
        self._heap: list[tuple[float, int, EmuTask, int]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = float("inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._in_batch = False
        self._event_time: float | None = None
        self.running = 0
        self.waiting: deque[EmuTask] = deque()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the event loop whose clock and timers drive the tasks."""
        self._loop = loop

    def now(self) -> float:
        """Emulated monotonic time in seconds (real time plus fast-forwards).

        While a due step is applied this is the step's due time, so chained steps and
        timestamps stay exact however late the timer fired or however far a test jumped.
        """
        if self._event_time is not None:
            return self._event_time
        loop = self._loop or asyncio.get_running_loop()
        return loop.time() + self._skew

    # -- capacity -----------------------------------------------------------------------

    def has_slot(self) -> bool:
        """True when a new task would start at once."""
        return self.concurrency is None or self.running < self.concurrency

    def can_admit(self) -> bool:
        """True when a new task would start or fit in the wait queue."""
        if self.has_slot():
            return True
        return self.queue_size is None or len(self.waiting) < self.queue_size

    def admit(self, task: EmuTask) -> tuple[Admission, int]:
        """Start ``task`` or queue it. Returns the outcome and how many wait ahead of it."""
        if self.has_slot():
            self._start(task)
            return "run", 0
        if self.queue_size is None or len(self.waiting) < self.queue_size:
            ahead = len(self.waiting)
            self.waiting.append(task)
            return "queued", ahead
        return "full", len(self.waiting)

    def _start(self, task: EmuTask) -> None:
        task.holds_slot = True
        self.running += 1
        task.step_index = 0
        if task.plan:
            self._schedule(task, task.plan[0].delay)

    def release(self, task: EmuTask) -> None:
        """Free the task's slot or queue place and start whoever waits next."""
        task.generation += 1
        if task.holds_slot:
            task.holds_slot = False
            self.running -= 1
        elif task in self.waiting:
            self.waiting.remove(task)
        while self.waiting and self.has_slot():
            self._start(self.waiting.popleft())

    # -- timing -------------------------------------------------------------------------

    def _schedule(self, task: EmuTask, nominal_delay: float) -> None:
        due = self.now() + nominal_delay * self.time_scale
        heapq.heappush(self._heap, (due, next(self._seq), task, task.generation))
        # Inside a batch the caller re-arms once at the end instead of once per push.
        if not self._in_batch and due < self._timer_due:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_due = float("inf")
        if not self._heap or self._loop is None or self._loop.is_closed():
            return
        due = self._heap[0][0]
        self._timer_due = due
        self._timer = self._loop.call_at(due - self._skew, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = float("inf")
        self._process_due(self.now())
        self._arm()

    def _process_due(self, limit: float) -> int:
        self._in_batch = True
        try:
            return self._drain(self._heap, limit)
        finally:
            self._in_batch = False

    def _drain(self, heap: list[tuple[float, int, EmuTask, int]], limit: float) -> int:
        done = 0
        try:
            while heap and heap[0][0] <= limit:
                due, _, task, generation = heapq.heappop(heap)
                if generation != task.generation or task.step_index >= len(task.plan):
                    continue
                self._event_time = due
                step = task.plan[task.step_index]
                task.step_index += 1
                self._apply(task, step)
                if step.status in TERMINAL:
                    self.release(task)
                    done += 1
                elif task.step_index < len(task.plan):
                    self._schedule(task, task.plan[task.step_index].delay)
                else:
                    task.hung = True
        finally:
            self._event_time = None
        return done

    def advance(self, seconds: float) -> int:
        """Jump the clock ``seconds`` forward and apply every step that became due."""
        if seconds < 0:
            raise ValueError("cannot move the emulator clock backwards")
        self._skew += seconds
        done = self._process_due(self.now())
        self._arm()
        return done

    def run_until_idle(self) -> int:
        """Fast-forward until no step is scheduled; returns how many tasks finished."""
        done = 0
        while self._heap:
            due = self._heap[0][0]
            now = self.now()
            if due > now:
                self._skew += due - now
            done += self._process_due(self.now())
        self._arm()
        return done

    @property
    def scheduled(self) -> int:
        """Events waiting in the heap (stale ones included)."""
        return len(self._heap)

    def close(self) -> None:
        """Cancel the timer; nothing moves afterwards."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_due = float("inf")
        self._heap.clear()
