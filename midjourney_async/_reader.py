"""Reading many task snapshots at once: list-by-condition in chunks, fetch for the rest.

One reader serves both the shared poller's tick and ``session.fetch_many``,
so chunking, the request cap and the fall back from the list endpoint to
per-id fetch exist once.

A relay without ``list-by-condition`` answers 404, 405, an HTML page or a
5xx; any failure of the list a few times in a row switches the reader to
per-id fetch for a while, after which the list is tried again (a relay that
was only restarting gets its batching back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec

from ._dialects._base import ListRows
from ._errors import (
    AuthenticationError,
    MidjourneyError,
    NotFoundError,
    NotMidjourneyAPI,
    PermissionDeniedError,
    RateLimitError,
    TaskNotFound,
    UnsupportedOperation,
)
from ._models import RowHead, Task
from ._state import TrackerStats, is_newer

__all__ = ["Chunk", "TaskReader", "auto_chunk_size"]

logger = logging.getLogger("midjourney_async")

ListFn = Callable[[list[str]], Awaitable[ListRows]]
DecodeFn = Callable[[msgspec.Raw | bytes], "Task | None"]
HeadFn = Callable[[msgspec.Raw | bytes], "RowHead | None"]
FetchFn = Callable[[str], Awaitable[Task]]

# Consecutive failed list requests after which the reader fetches one by one.
LIST_FAILURES_BEFORE_FALLBACK = 3
# How long it then fetches one by one before it tries the list again.
LIST_RETRY_AFTER = 300.0
# Automatic chunking: 100 ids a request, more once a sweep would need over 100
# requests, up to 1,000 ids (no server limits the count; past a few thousand pending
# tasks, the per-request cost of HTTP outweighs everything else a sweep does).
AUTO_CHUNK = 100
AUTO_CHUNK_MAX = 1000
AUTO_REQUESTS = 100


def auto_chunk_size(n: int) -> int:
    """Ids per list request when a sweep reads ``n`` ids and no size was set."""
    return min(AUTO_CHUNK_MAX, max(AUTO_CHUNK, -(-n // AUTO_REQUESTS)))


_NO_ROWS = ListRows(rows=[])


@dataclass(slots=True)
class Chunk:
    """The answer to one list request: every row it held (undecoded, with their
    heads when the dialect read them), or the error it met.

    ``fetch_all`` says the list could not serve these ids at all (the relay
    has no list endpoint): each must be fetched by id.
    """

    ids: list[str]
    answer: ListRows = _NO_ROWS
    error: MidjourneyError | None = None
    fetch_all: bool = False

    @property
    def rows(self) -> list[msgspec.Raw]:
        return self.answer.rows

    @property
    def heads(self) -> list[RowHead] | None:
        return self.answer.heads


class TaskReader:
    """Batched reads of task snapshots, bounded to ``concurrency`` requests at once."""

    def __init__(
        self,
        *,
        list_tasks: ListFn | None,
        decode: DecodeFn,
        fetch: FetchFn,
        decode_head: HeadFn | None = None,
        chunk_size: int | None = None,
        concurrency: int = 8,
    ) -> None:
        self._list = list_tasks
        self.decode = decode
        #: Reads a row's id, status and progress alone, or says it cannot (None).
        self.decode_head = decode_head
        self._fetch = fetch
        # None: sized by ``auto_chunk_size`` for each sweep.
        self.chunk_size = None if chunk_size is None else max(1, chunk_size)
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._failures = 0
        self._list_again_at = 0.0
        self.stats = TrackerStats()

    @property
    def lists(self) -> bool:
        """Whether ids are read through the list endpoint right now."""
        return self._list is not None and time.monotonic() >= self._list_again_at

    def chunk_for(self, n: int) -> int:
        """Ids per list request for a read of ``n`` ids."""
        return self.chunk_size or auto_chunk_size(n)

    def chunks(self, ids: list[str]) -> list[list[str]]:
        size = self.chunk_for(len(ids))
        return [ids[i : i + size] for i in range(0, len(ids), size)]

    @property
    def can_list(self) -> bool:
        """Whether the server has a list endpoint at all (even while fetching one by one)."""
        return self._list is not None

    async def list_chunk(self, ids: list[str], *, force: bool = False) -> Chunk:
        """List ``ids`` in one request; errors come back in the chunk, not raised.

        ``force`` asks the list even while the reader fetches one by one.
        """
        if not (self.lists or (force and self._list is not None)):
            return Chunk(ids, fetch_all=True)
        assert self._list is not None
        async with self._limit:
            self.stats.list_requests += 1
            try:
                answer = await self._list(ids)
            except UnsupportedOperation:
                self._list = None
                return Chunk(ids, fetch_all=True)
            except (AuthenticationError, PermissionDeniedError, RateLimitError) as exc:
                # Not the endpoint's fault: fetch would meet the same answer.
                return Chunk(ids, error=exc)
            except MidjourneyError as exc:
                self._list_failed(exc)
                # A 404 says the route is missing here (a web server's error page
                # too, in front of a relay without it): these ids are fetched now.
                fetch_all = (
                    isinstance(exc, NotFoundError)
                    or (isinstance(exc, NotMidjourneyAPI) and exc.status in (404, 405))
                    or not self.lists
                )
                return Chunk(ids, error=exc, fetch_all=fetch_all)
        self._failures = 0
        return Chunk(ids, answer)

    def _list_failed(self, exc: MidjourneyError) -> None:
        # One stray failure must not end batching for the session's life; a few
        # in a row mean the relay does not serve the list (404, 405, an HTML page).
        self._failures += 1
        if self._failures >= LIST_FAILURES_BEFORE_FALLBACK:
            self._failures = 0
            self._list_again_at = time.monotonic() + LIST_RETRY_AFTER
            logger.warning(
                "list-by-condition failed %d times in a row (%s); fetching one by one for %g s",
                LIST_FAILURES_BEFORE_FALLBACK,
                exc,
                LIST_RETRY_AFTER,
            )

    async def fetch(self, task_id: str) -> Task:
        """Fetch one task by id (under the same request cap as the lists)."""
        async with self._limit:
            self.stats.fetch_requests += 1
            return await self._fetch(task_id)

    async def read_many(self, ids: list[str]) -> dict[str, Task]:
        """Snapshots of ``ids`` by id; ids the server does not know are left out.

        Errors other than "not found" are raised.
        """
        found: dict[str, Task] = {}
        if self.lists:
            chunks = await asyncio.gather(*(self.list_chunk(c) for c in self.chunks(ids)))
            for chunk in chunks:
                if chunk.error is not None and not chunk.fetch_all:
                    raise chunk.error
                for row in chunk.rows:
                    task = self.decode(row)
                    # A relay may keep two rows for one id: the one furthest on wins.
                    if task is not None and is_newer(found.get(task.id), task):
                        found[task.id] = task
        missing = [i for i in ids if i not in found]

        async def one(task_id: str) -> None:
            with contextlib.suppress(TaskNotFound):
                found[task_id] = await self.fetch(task_id)

        await asyncio.gather(*(one(i) for i in missing))
        return found
