"""Waiting on many handles at once: in the order they end, or all together."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from ._errors import MidjourneyError, TaskTimeout
from ._handle import TaskHandle, settle
from ._models import Task

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
    """Every task in order; the first error is raised and the other waits end."""
    items = list(handles)
    if not items:
        return []
    limit = items[0].session.wait_timeout if timeout is None else timeout
    return await settle(items, limit, limit)


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
