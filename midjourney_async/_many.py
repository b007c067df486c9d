"""Waiting on many handles at once: in the order they end, or all together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from ._errors import MidjourneyError, SessionClosed, TaskTimeout
from ._handle import TaskHandle, _check, _deadline
from ._models import Task, TaskStatus
from ._tracker import TaskState

__all__ = ["as_completed", "wait_all", "wait_all_settled"]


async def as_completed(
    handles: Iterable[TaskHandle], timeout: float | None
) -> AsyncIterator[TaskHandle]:
    """Yield each handle once its wait ended (a task, an error or its deadline)."""
    queue: asyncio.Queue[TaskHandle] = asyncio.Queue()
    items = list(handles)

    async def watch(h: TaskHandle) -> None:
        try:
            await h.wait(timeout)
        except TaskTimeout as exc:
            # The caller awaits the handle next: it must hear of the deadline at once.
            h._expired = exc.timeout
        except MidjourneyError:
            pass
        finally:
            queue.put_nowait(h)

    tasks = [asyncio.ensure_future(watch(h)) for h in items]
    try:
        for _ in items:
            handle = await queue.get()
            try:
                yield handle
            finally:
                # The deadline note is for the await right after the yield only.
                handle._expired = None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def wait_all(handles: Iterable[TaskHandle], timeout: float | None) -> list[Task]:
    """Every task in order; the first error is raised and the other waits end.

    One event serves every handle: no asyncio task, deadline or event per
    handle, which was most of what waiting on thousands of them cost
    (benchmarks/bench_end_to_end.py).
    """
    items = list(handles)
    if not items:
        return []
    session = items[0].session
    tracker = session._tracker
    limit = session.wait_timeout if timeout is None else timeout
    woke = asyncio.Event()
    results: list[Task | None] = [None] * len(items)
    watched: list[TaskState] = []

    def attach(state: TaskState) -> None:
        tracker.watch(state)
        if state.listeners is None:
            state.listeners = []
        state.listeners.append(woke)
        watched.append(state)

    for handle in items:
        attach(handle._state)
    pending = list(range(len(items)))
    try:
        async with _deadline(limit):
            while pending:
                woke.clear()
                still: list[int] = []
                for i in pending:
                    handle = items[i]
                    state = handle._state
                    task = state.task
                    if (
                        task is not None
                        and task.status == TaskStatus.MODAL
                        and handle._modal_answer is not None
                    ):
                        follow = await handle._answer_modal()
                        if follow.id != handle.id:
                            items[i] = follow
                            attach(follow._state)
                        still.append(i)
                        continue
                    done = _check(task, handle) if task is not None else None
                    if done is not None:
                        results[i] = done
                    elif state.error is not None:
                        raise state.error
                    else:
                        still.append(i)
                pending = still
                if pending:
                    if tracker.closed:
                        raise SessionClosed(items[pending[0]].id)
                    await woke.wait()
    except TimeoutError as exc:
        if isinstance(exc, TaskTimeout):
            raise
        first = items[pending[0]]
        raise TaskTimeout(first.id, limit, first.task) from None
    finally:
        for state in watched:
            tracker.unwatch(state)
            if state.listeners is not None and woke in state.listeners:
                state.listeners.remove(woke)
    return [task for task in results if task is not None]


async def wait_all_settled(
    handles: Iterable[TaskHandle], timeout: float | None
) -> list[Task | MidjourneyError]:
    """Every task in order, or the error its wait ended with."""

    async def settle(h: TaskHandle) -> Task | MidjourneyError:
        try:
            return await h.wait(timeout)
        except MidjourneyError as exc:
            return exc

    return list(await asyncio.gather(*(settle(h) for h in handles)))
