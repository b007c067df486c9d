"""The durable journal: every accepted task id is on disk before submit returns.

Rows are read back with a separate ``sqlite3`` connection, as another process
resuming after a crash would read them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mj_support import Emulated, until

from midjourney_async import (
    ConfigurationError,
    JournalError,
    MidjourneySession,
    RetryPolicy,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async._journal import Journal, JournalEntry, SQLiteJournal
from midjourney_async.testing import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


def rows(path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM tasks ORDER BY rowid")]
    finally:
        conn.close()


def session(emu: Emulator, journal: Any, **options: Any) -> MidjourneySession:
    opts: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
    opts.update(options)
    return MidjourneySession(emu.base_url, emu.api_key, journal=journal, **opts)


class MemoryJournal:
    """A second backend, to prove the session only needs the :class:`Journal` protocol."""

    def __init__(self) -> None:
        self.entries: dict[str, JournalEntry] = {}
        self.finished: dict[str, str] = {}
        self.closed = False

    async def record(self, entry: JournalEntry) -> None:
        self.entries.setdefault(entry.task_id, entry)

    async def finish(self, task_id: str, status: str) -> None:
        self.finished.setdefault(task_id, status)

    async def unfinished(self) -> list[JournalEntry]:
        return [e for i, e in self.entries.items() if i not in self.finished]

    async def get(self, task_id: str) -> JournalEntry | None:
        return self.entries.get(task_id)

    async def close(self) -> None:
        self.closed = True


async def test_row_is_committed_before_submit_returns(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator() as emu, session(emu, str(db)) as mj:
        handle = await mj.imagine("a red fox", state="order-17")
        # Read from another connection right away: the row is already there.
        [row] = rows(db)
        assert row["task_id"] == handle.id
        assert row["operation"] == "imagine"
        assert row["prompt"] == "a red fox"
        assert row["state"] == "order-17"
        assert row["provider"] == "midjourney-proxy"
        assert row["finished_at"] is None and row["status"] is None
        assert row["submitted_at"] > 0


async def test_rows_are_marked_finished_with_their_end(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator() as emu, session(emu, db, not_found_grace=0.05) as mj:
        ok = await mj.imagine("fine")
        bad = await mj.imagine("doomed --emu-fail")
        gone = await mj.imagine("forgotten", state="s")
        emu.forget(gone.id)
        assert (await ok).status is TaskStatus.SUCCESS
        with pytest.raises(TaskFailed):
            await bad
        with pytest.raises(TaskNotFound):
            await gone.wait(timeout=10)
    # close() waited for the background writes.
    by_id = {r["task_id"]: r for r in rows(db)}
    assert by_id[ok.id]["status"] == "SUCCESS"
    assert by_id[bad.id]["status"] == "FAILURE"
    assert by_id[gone.id]["status"] == "NOT_FOUND"
    assert all(r["finished_at"] for r in by_id.values())


async def test_button_press_is_journalled_with_its_custom_id(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator("midjourney-proxy-plus") as emu, session(emu, db) as mj:
        grid = await mj.imagine("grid first")
        up = await (await grid.upscale(2)).wait()
    by_id = {r["task_id"]: r for r in rows(db)}
    assert by_id[up.id]["operation"] == "action"
    assert "::upsample::2::" in by_id[up.id]["prompt"]
    assert by_id[up.id]["status"] == "SUCCESS"


async def test_resume_after_restart_collects_every_unfinished_task(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator(speed=1.0) as emu:
        async with session(emu, db) as first:
            ids = [(await first.imagine(f"resumed {i}")).id for i in range(5)]
            done = await first.imagine("already waited")
            await emu.complete_all()
            await done
        # The first session is gone; its unfinished rows stay.
        assert {r["task_id"] for r in rows(db) if r["finished_at"] is None} == set(ids)
        await emu.complete_all()
        async with session(emu, db) as second:
            handles = await second.resume()
            assert [h.id for h in handles] == ids  # oldest first
            tasks = await second.wait_all(handles, timeout=10)
            assert all(t.status is TaskStatus.SUCCESS for t in tasks)
        async with session(emu, db) as third:
            assert await third.resume() == []


async def test_resume_drops_a_task_the_server_forgot(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator(speed=1.0) as emu:
        async with session(emu, db) as first:
            lost = await first.imagine("the server will forget me")
        emu.forget(lost.id)
        async with session(emu, db, not_found_grace=0.05) as second:
            [handle] = await second.resume()
            with pytest.raises(TaskNotFound):
                await handle.wait(timeout=10)
        async with session(emu, db) as third:
            assert await third.resume() == []
    assert rows(db)[0]["status"] == "NOT_FOUND"


async def test_journal_writes_run_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = SQLiteJournal._record

    def spy(self: SQLiteJournal, entry: JournalEntry) -> None:
        threads.append(threading.get_ident())
        original(self, entry)

    monkeypatch.setattr(SQLiteJournal, "_record", spy)
    async with Emulator() as emu, session(emu, tmp_path / "t.db") as mj:
        await mj.imagine("threaded")
    assert threads and threading.get_ident() not in threads


async def test_any_journal_protocol_backend_works() -> None:
    memory = MemoryJournal()
    assert isinstance(memory, Journal)
    assert isinstance(SQLiteJournal("unused.db"), Journal)
    async with Emulator() as emu, session(emu, memory) as mj:
        handle = await mj.imagine("in memory", state="m")
        assert memory.entries[handle.id].state == "m"
        await handle
        await asyncio.sleep(0)  # the finish write is a background job
    assert memory.finished == {handle.id: "SUCCESS"}
    assert memory.closed


async def test_a_failing_journal_never_loses_the_handle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(MemoryJournal):
        async def record(self, entry: JournalEntry) -> None:
            raise OSError("disk full")

    async with Emulator() as emu, session(emu, Broken()) as mj:
        with caplog.at_level(logging.WARNING, logger="midjourney_async"), pytest.raises(
            JournalError
        ) as info:
            await mj.imagine("paid for all the same")
        handle = info.value.handle
        assert handle is not None
        assert (await handle).status is TaskStatus.SUCCESS
    assert any("journal" in r.getMessage() for r in caplog.records)


async def test_resume_needs_a_journal() -> None:

    async with Emulator() as emu, session(emu, None) as mj:
        with pytest.raises(ConfigurationError):
            await mj.resume()


async def test_journal_reopens_and_ignores_duplicate_records(tmp_path: Path) -> None:
    journal = SQLiteJournal(tmp_path / "deep" / "dir" / "j.db")
    await journal.record(JournalEntry("1", "imagine", prompt="p"))
    await journal.record(JournalEntry("1", "imagine", prompt="other"))
    await journal.close()
    await journal.finish("1", "SUCCESS")
    await journal.finish("1", "FAILURE")  # the first end wins
    entry = await journal.get("1")
    assert entry is not None and entry.prompt == "p" and entry.status == "SUCCESS"
    assert await journal.unfinished() == []
    assert await journal.get("nope") is None
    await journal.close()


async def test_cli_wait_journal_resumes_from_the_shell(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    async with Emulator(speed=1.0) as emu:
        async with session(emu, db) as mj:
            ids = {(await mj.imagine(f"shell {i}")).id for i in range(3)}
        await emu.complete_all()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        env.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=emu.api_key)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "midjourney_async", "wait", "--journal", str(db),
            "--json", "--plain", "--poll-interval", "0.05",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        import json

        assert {t["id"] for t in json.loads(out)} == ids
        assert all(r["status"] == "SUCCESS" for r in rows(db))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "midjourney_async", "wait", "--journal", str(db),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and b"nothing to wait for" in err


async def test_cancel_during_the_journal_write_keeps_the_in_flight_slot_moving() -> None:
    """A submit cancelled while its row is written must not leak its max_in_flight slot."""

    class Slow(MemoryJournal):
        def __init__(self) -> None:
            super().__init__()
            self.entered = asyncio.Event()
            self.block = True

        async def record(self, entry: JournalEntry) -> None:
            self.entered.set()
            if self.block:
                await asyncio.sleep(3600)
            await super().record(entry)

    journal = Slow()
    async with Emulator() as emu, session(emu, journal, max_in_flight=1) as mj:
        first = asyncio.create_task(mj.imagine("cancelled mid-write"))
        await journal.entered.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        journal.block = False
        # The first task ends on the server and gives its slot back: the next submit runs.
        second = await asyncio.wait_for(mj.imagine("next in line"), 10)
        assert (await second.wait(timeout=10)).status is TaskStatus.SUCCESS


async def test_a_webhook_ends_the_journal_entry_of_a_dropped_handle(
    tmp_path: Path, emulated: Emulated
) -> None:
    config = WebhookConfig(poll_interval=3600)
    async with emulated("trueai", webhook=config, journal=tmp_path / "j.db") as (emu, mj):
        await mj.imagine("dropped handle")
        gc.collect()
        await emu.complete_all()
        assert mj.journal is not None
        journal = mj.journal
        await until(lambda: mj._webhook is not None and mj._webhook.stats.confirms >= 1)
        for _ in range(200):
            if not await journal.unfinished():
                break
            await asyncio.sleep(0.01)
        assert await journal.unfinished() == []
