"""Crash test: a client killed with SIGKILL mid-wait loses no task.

The emulator runs in the test process, so it outlives the client. A child
process submits 50 tasks with a journal and starts waiting; once the journal
holds 50 rows and the emulator has created 50 tasks (and the child is
polling), the child is killed with SIGKILL while the tasks are still running.
A second process, ``midjourney-async wait --journal``, resumes and collects
all 50 results without submitting anything again.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from midjourney_async.testing import Emulator

N = 50
KEY = "sk-CRASH-5150-distinctive"

CHILD = """
import asyncio, sys
from midjourney_async import MidjourneySession

async def main() -> None:
    async with MidjourneySession(journal=sys.argv[1], poll_interval=0.05) as mj:
        handles = await asyncio.gather(
            *(mj.imagine(f"crash {i} a fox", state=f"crash-{i}") for i in range(int(sys.argv[2])))
        )
        print("submitted", len(handles), flush=True)
        await mj.wait_all(handles, timeout=600)
        print("finished", flush=True)

asyncio.run(main())
"""

pytestmark = pytest.mark.timeout(120)


def files_of(directory: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(directory.iterdir())]


def journal_rows(path: Path) -> list[tuple[str, str | None, str | None]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        # Rows of submits on their way (intents) are not tasks.
        return list(
            conn.execute(
                "SELECT task_id, state, status FROM tasks "
                "WHERE task_id NOT LIKE 'intent:%' ORDER BY rowid"
            )
        )
    except sqlite3.OperationalError:  # the child has not created the table yet
        return []
    finally:
        conn.close()


async def test_sigkill_mid_wait_then_resume_recovers_every_task(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    # speed 10: an imagine takes 4-6 s, so every task is still running when the kill lands.
    async with Emulator(speed=10.0, api_key=KEY, concurrency=None, queue_size=None) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        env.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=KEY)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(db), str(N),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.split() == [b"submitted", str(N).encode()], line
            # Conditions, not sleeps: 50 rows on disk, 50 tasks on the server, and the
            # child's poller is running (it is waiting, not submitting).
            assert len(journal_rows(db)) == N
            assert emu.stats.tasks_created == N
            await emu.wait_until(
                lambda: emu.stats.requests["task/list-by-condition"] >= 1, timeout=10
            )
        finally:
            if child.returncode is None:
                child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL
        running = sum(1 for t in emu.tasks.values() if t.status not in ("SUCCESS", "FAILURE"))
        assert running > 0, "the kill must land while tasks are still running"

        submitted = journal_rows(db)
        assert all(status is None for _, _, status in submitted)

        resume = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "midjourney_async", "wait", "--journal", str(db),
            "--json", "--plain", "--poll-interval", "0.1", "--timeout", "60",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        out, err = await asyncio.wait_for(resume.communicate(), 90)
        assert resume.returncode == 0, err.decode()
        tasks = json.loads(out)
        recovered = {t["id"] for t in tasks if t["status"] == "SUCCESS"}

        print(
            f"\ncrash test: recovered {len(recovered)}/{len(submitted)} "
            f"(running at SIGKILL: {running}, tasks created on the server: "
            f"{emu.stats.tasks_created})"
        )
        assert recovered == {task_id for task_id, _, _ in submitted}
        assert len(recovered) == N
        # Nothing was submitted again, and the journal now holds every end.
        assert emu.stats.tasks_created == N
        assert max(emu.stats.submits_by_prompt.values()) == 1
        assert {status for _, _, status in journal_rows(db)} == {"SUCCESS"}
        assert sorted(str(state) for _, state, _ in journal_rows(db)) == sorted(
            f"crash-{i}" for i in range(N)
        )
        # The key never reaches the journal file, the outputs or the error stream.
        for name, data in files_of(tmp_path):  # tasks.db and any -wal / -shm file
            assert KEY.encode() not in data, name
        assert KEY.encode() not in out + err
