"""A durable journal of submitted tasks, so a crashed service loses no task id.

Every accepted task is written (and committed) before the submit call
returns; it is marked finished when a handle sees it end. After a crash,
``await session.resume()`` gives handles for everything still unfinished.

:class:`Journal` is the interface; :class:`SQLiteJournal` keeps it in one
SQLite file through the standard library, with every call run in a worker
thread so the event loop never waits on the disk. A shared backend (a
database many machines reach) implements the same five methods.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
import msgspec

from ._errors import TaskNotFound

if TYPE_CHECKING:
    from ._state import TaskState

__all__ = ["IntentJournal", "Journal", "JournalEntry", "JournalKeeper", "SQLiteJournal"]

logger = logging.getLogger("midjourney_async")


class JournalEntry(msgspec.Struct, frozen=True):
    """One submitted task as the journal keeps it (never any credential)."""

    task_id: str
    operation: str
    prompt: str | None = None
    state: str | None = None
    provider: str | None = None
    submitted_at: int = 0
    finished_at: int | None = None
    status: str | None = None


@runtime_checkable
class Journal(Protocol):
    """Where accepted task ids are kept until they end."""

    async def record(self, entry: JournalEntry) -> None:
        """Store ``entry`` durably before returning."""

    async def finish(self, task_id: str, status: str) -> None:
        """Mark ``task_id`` as ended with ``status``."""

    async def unfinished(self) -> list[JournalEntry]:
        """Every entry not yet marked finished, oldest first."""

    async def get(self, task_id: str) -> JournalEntry | None:
        """The entry of ``task_id``, if any."""

    async def close(self) -> None:
        """Release the backend."""


@runtime_checkable
class IntentJournal(Journal, Protocol):
    """A journal that also keeps each submit while it is on its way.

    An intent is written before a submit is sent and settled when its answer
    comes; one left open after a crash names a submit whose task may exist
    on the server, found by its ``state`` tag. Optional: a plain
    :class:`Journal` works without it.
    """

    async def intend(self, entry: JournalEntry) -> None:
        """Store an intent (``entry.state`` is its tag) durably before returning."""

    async def settle_intent(self, tag: str, outcome: str) -> None:
        """Close the intent ``tag`` with ``outcome`` (ACCEPTED or NOT_ACCEPTED)."""

    async def unconfirmed(self) -> list[JournalEntry]:
        """Every intent still open, oldest first (``task_id`` is empty)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id      TEXT PRIMARY KEY,
    operation    TEXT NOT NULL,
    prompt       TEXT,
    state        TEXT,
    provider     TEXT,
    submitted_at INTEGER NOT NULL,
    finished_at  INTEGER,
    status       TEXT
);
CREATE INDEX IF NOT EXISTS tasks_unfinished ON tasks (finished_at, submitted_at);
CREATE TABLE IF NOT EXISTS intents (
    tag        TEXT PRIMARY KEY,
    operation  TEXT NOT NULL,
    prompt     TEXT,
    provider   TEXT,
    sent_at    INTEGER NOT NULL,
    outcome    TEXT
);
"""

_COLUMNS = "task_id, operation, prompt, state, provider, submitted_at, finished_at, status"


class SQLiteJournal:
    """The journal in one SQLite file.

    Example::

        async with MidjourneySession(..., journal="tasks.db") as mj:
            for handle in await mj.resume():
                print(handle.id, await handle)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteJournal({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # WAL keeps readers (another process resuming) from blocking the writer.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def _record(self, entry: JournalEntry) -> None:
        with self._lock:
            self._connect().execute(
                f"INSERT OR IGNORE INTO tasks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.task_id,
                    entry.operation,
                    entry.prompt,
                    entry.state,
                    entry.provider,
                    entry.submitted_at or int(time.time() * 1000),
                    entry.finished_at,
                    entry.status,
                ),
            )

    def _finish(self, task_id: str, status: str) -> None:
        with self._lock:
            self._connect().execute(
                "UPDATE tasks SET finished_at = ?, status = ? "
                "WHERE task_id = ? AND finished_at IS NULL",
                (int(time.time() * 1000), status, task_id),
            )

    def _select(self, where: str, params: tuple[str, ...] = ()) -> list[JournalEntry]:
        with self._lock:
            rows = self._connect().execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE {where} ORDER BY submitted_at, rowid",
                params,
            ).fetchall()
        return [JournalEntry(*row) for row in rows]

    async def record(self, entry: JournalEntry) -> None:
        await anyio.to_thread.run_sync(self._record, entry)

    def _intend(self, entry: JournalEntry) -> None:
        with self._lock:
            self._connect().execute(
                "INSERT OR REPLACE INTO intents (tag, operation, prompt, provider, sent_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (entry.state, entry.operation, entry.prompt, entry.provider, entry.submitted_at),
            )

    def _settle_intent(self, tag: str, outcome: str) -> None:
        with self._lock:
            self._connect().execute(
                "UPDATE intents SET outcome = ? WHERE tag = ?", (outcome, tag)
            )

    def _unconfirmed(self) -> list[JournalEntry]:
        with self._lock:
            rows = self._connect().execute(
                "SELECT tag, operation, prompt, provider, sent_at FROM intents "
                "WHERE outcome IS NULL ORDER BY sent_at, rowid"
            ).fetchall()
        return [
            JournalEntry(task_id="", operation=op, prompt=prompt, state=tag,
                         provider=provider, submitted_at=sent)
            for tag, op, prompt, provider, sent in rows
        ]

    async def intend(self, entry: JournalEntry) -> None:
        await anyio.to_thread.run_sync(self._intend, entry)

    async def settle_intent(self, tag: str, outcome: str) -> None:
        await anyio.to_thread.run_sync(self._settle_intent, tag, outcome)

    async def unconfirmed(self) -> list[JournalEntry]:
        return await anyio.to_thread.run_sync(self._unconfirmed)

    async def finish(self, task_id: str, status: str) -> None:
        await anyio.to_thread.run_sync(self._finish, task_id, status)

    async def unfinished(self) -> list[JournalEntry]:
        return await anyio.to_thread.run_sync(self._select, "finished_at IS NULL")

    async def get(self, task_id: str) -> JournalEntry | None:
        rows = await anyio.to_thread.run_sync(self._select, "task_id = ?", (task_id,))
        return rows[0] if rows else None

    async def all(self) -> list[JournalEntry]:
        """Every entry, oldest first."""
        return await anyio.to_thread.run_sync(self._select, "1 = 1")

    async def close(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await anyio.to_thread.run_sync(close)


class JournalKeeper:
    """A session's bookkeeping around its journal.

    It writes each accepted id before the submit returns, marks a task
    finished once the session sees it end, and lists what ``resume()`` should
    pick up again: the unfinished tasks of this provider.
    """

    def __init__(self, journal: Journal, provider: str) -> None:
        self.journal = journal
        self.provider = provider
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<JournalKeeper {self.journal!r}>"

    @property
    def keeps_intents(self) -> bool:
        """Whether the journal keeps submits on their way (:class:`SQLiteJournal` does)."""
        return isinstance(self.journal, IntentJournal)

    async def intend(self, operation: str, prompt: str | None, tag: str) -> None:
        """Write that a submit tagged ``tag`` is about to be sent.

        Should the process die before the answer arrives, the intent stays
        open: :meth:`unconfirmed` lists it, with the ``state`` tag the server
        got, so the task can be looked for.
        """
        journal = self.journal
        assert isinstance(journal, IntentJournal)
        entry = JournalEntry(
            task_id="",
            operation=operation,
            prompt=prompt,
            state=tag,
            provider=self.provider,
            submitted_at=int(time.time() * 1000),
        )
        await self._write(journal.intend, entry, what=f"the intent to {operation}")

    async def settle_intent(self, tag: str, outcome: str) -> None:
        """The submit tagged ``tag`` was answered: accepted, or provably not."""
        journal = self.journal
        assert isinstance(journal, IntentJournal)
        try:
            await journal.settle_intent(tag, outcome)
        except Exception:
            # The ids themselves are written: a stale intent only asks for a look.
            logger.exception("could not close the journal's intent %s", tag)

    async def record(
        self, operation: str, prompt: str | None, state: str | None, ids: list[str]
    ) -> None:
        """Write every id of one accepted submit; raise once the writes keep failing."""
        now = int(time.time() * 1000)
        for task_id in ids:
            entry = JournalEntry(
                task_id=task_id,
                operation=operation,
                prompt=prompt,
                state=state,
                provider=self.provider,
                submitted_at=now,
            )
            await self._write(self.journal.record, entry, what=f"task {task_id}")

    async def _write(
        self, write: Callable[[JournalEntry], Awaitable[None]], entry: JournalEntry, *, what: str
    ) -> None:
        # A busy disk or a locked database often clears within a moment.
        for attempt, pause in enumerate((0.05, 0.2, 0.0)):
            try:
                await write(entry)
                return
            except Exception as exc:
                logger.warning("could not write %s to the journal: %r", what, exc)
                if attempt == 2:
                    raise
                await asyncio.sleep(pause)

    def settled(self, st: TaskState) -> None:
        """A state observer: mark the task finished once the server said it ended.

        Only a final state the server reported, or its not knowing the id after
        the grace, finishes a row: a rejected key ends waits but says nothing of
        the task, which still runs and is paid for.
        """
        if st.error is not None:
            if not isinstance(st.error, TaskNotFound):
                return
            status = "NOT_FOUND"
        elif st.task is not None and st.done:
            status = str(st.task.status)
        else:
            return
        job = asyncio.get_running_loop().create_task(self._finish(st.id, status))
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    async def _finish(self, task_id: str, status: str) -> None:
        try:
            await self.journal.finish(task_id, status)
        except Exception:
            logger.exception("could not mark task %s finished in the journal", task_id)

    def _mine(self, entries: list[JournalEntry]) -> list[JournalEntry]:
        # Another provider's server would not know these ids.
        return [e for e in entries if e.provider in (None, self.provider)]

    async def unfinished(self) -> list[JournalEntry]:
        """The unfinished tasks of this provider, oldest first."""
        return self._mine(await self.journal.unfinished())

    async def unconfirmed(self) -> list[JournalEntry]:
        """Submits sent whose answer never came: their tasks may exist on the server."""
        if not isinstance(self.journal, IntentJournal):
            return []
        return self._mine(await self.journal.unconfirmed())

    async def close(self) -> None:
        """Let pending writes land, then release the journal."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.journal.close()
