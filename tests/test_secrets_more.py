"""More places the API key must never reach: journal rows and files, the logs and
errors of a chaos run, the command line's output, and the reprs of the journal,
its entries and the webhook receiver. (tests/test_secrets.py covers errors
quoting server bodies, reprs of sessions and handles, and logs of a scripted run.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from mj_support import RecordingServer, Reply

from midjourney_async import MidjourneyError, MidjourneySession, RetryPolicy, WebhookConfig
from midjourney_async._journal import JournalEntry, SQLiteJournal
from midjourney_async.testing import Emulator, FaultRule

KEY = "sk-Zq9-DISTINCTIVE-KEY-31337"


def leaks(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return KEY.lower() in text.lower() or "distinctive-key" in text.lower()


def texts_of(exc: BaseException) -> list[str]:
    out: list[str] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out += [str(current), repr(current)]
        out += [repr(v) for v in vars(current).values()]
        current = current.__cause__ or current.__context__
    return out


def files_of(directory: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in directory.iterdir()]


def test_the_detector_detects() -> None:
    assert leaks(f"Bearer {KEY}") and leaks(KEY.upper().encode())
    assert not leaks("Bearer ***")


async def test_journal_rows_files_and_reprs_hold_no_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="midjourney_async")
    db = tmp_path / "tasks.db"
    async with Emulator(api_key=KEY, speed="instant") as emu:
        async with MidjourneySession(
            emu.base_url, KEY, journal=db, poll_interval=0.01,
            retry=RetryPolicy.without_waits(), webhook=WebhookConfig(poll_interval=0.05),
        ) as mj:
            handles = [await mj.imagine(f"journal {i}", state=f"s{i}") for i in range(3)]
            grid = await handles[0]
            await (await handles[0].upscale(1)).wait()
            await mj.wait_all(handles[1:])
            assert mj.journal is not None and not leaks(repr(mj.journal))
            receiver = mj._webhook
            assert receiver is not None and not leaks(repr(receiver))
            assert not leaks(repr(mj._transport))
            assert grid.id
        journal = SQLiteJournal(db)
        entries = await journal.all()
        await journal.close()
    assert len(entries) == 4
    for entry in entries:
        assert not leaks(repr(entry))
    conn = sqlite3.connect(db)
    try:
        for row in conn.execute("SELECT * FROM tasks"):
            assert not any(leaks(str(cell)) for cell in row), row
    finally:
        conn.close()
    for name, data in files_of(tmp_path):  # the db and any -wal / -shm file
        assert not leaks(data), name
    assert not leaks(caplog.text)
    assert not leaks(repr(JournalEntry("1", "imagine", prompt="p")))


async def test_logs_and_errors_of_a_chaos_run_hold_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with Emulator(api_key=KEY, speed=50.0, concurrency=None, queue_size=None) as emu:
        for rule in (
            FaultRule("*", "status", status=503, rate=0.15),
            FaultRule("*", "429", rate=0.15, retry_after=0.01),
            FaultRule("*", "drop_after_read", rate=0.05),
            FaultRule("*", "malformed", rate=0.05),
            FaultRule("*", "truncated", rate=0.05),
            FaultRule("*", "trueai_error_shape", rate=0.05, message=f"bad token {KEY}"),
        ):
            emu.faults.add(rule)
        emu.rules.never_finish("stuck")
        async with MidjourneySession(
            emu.base_url, KEY, poll_interval=0.02,
            retry=RetryPolicy(max_tries=4, max_time=5, base_delay=0.01, max_delay=0.05),
        ) as mj:

            async def one(i: int) -> None:
                try:
                    prompt = f"chaos secret {i}" + (" stuck" if i % 20 == 0 else "")
                    await (await mj.imagine(prompt)).wait(timeout=3)
                except MidjourneyError as exc:
                    errors.append(exc)

            await asyncio.gather(*(one(i) for i in range(100)))
            last_error = mj.tracker_stats.last_error
    assert sum(emu.stats.faults.values()) > 0 and errors
    for exc in errors:
        for text in texts_of(exc):
            assert not leaks(text), text
    for record in caplog.records:
        assert not leaks(record.getMessage()), record.getMessage()
    assert not leaks(caplog.text)
    assert last_error is None or not leaks(last_error)


async def cli(env_extra: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env.update(env_extra)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "midjourney_async", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_cli_output_holds_no_key(tmp_path: Path) -> None:
    fast = ("--poll-interval", "0.05", "--plain")
    async with Emulator(api_key=KEY, speed="instant") as emu:
        env = {"MJ_BASE_URL": emu.base_url, "MJ_API_KEY": KEY}
        runs: list[tuple[int, bytes, bytes]] = [
            await cli(env, "imagine", "a cli fox", "--json", *fast),
            await cli(env, "imagine", "doomed --emu-fail", *fast),
            await cli(env, "fetch", "123456789", *fast),
            await cli({"MJ_BASE_URL": emu.base_url}, "imagine", "x", "--api-key", KEY, *fast),
        ]
        db = tmp_path / "j.db"
        async with MidjourneySession(emu.base_url, KEY, journal=db) as mj:
            await mj.imagine("journal then cli")
        runs.append(await cli(env, "wait", "--journal", str(db), "--json", *fast))
    assert runs[0][0] == 0 and runs[1][0] == 1 and runs[-1][0] == 0
    for code, out, err in runs:
        assert not leaks(out) and not leaks(err), (code, out, err)


async def test_cli_errors_from_a_server_echoing_the_key_hold_no_key(
    server: RecordingServer,
) -> None:
    echo = f"invalid key {KEY}"
    server.add("POST", "/mj/submit/imagine", Reply.text(echo, status=401))
    server.add("GET", "/mj/task/1/fetch", Reply.raw(f'{{"id": "{KEY}'.encode()))
    env: dict[str, Any] = {"MJ_BASE_URL": server.url, "MJ_API_KEY": KEY}
    for args in (("imagine", "x", "--plain"), ("fetch", "1"), ("wait", "1", "--timeout", "1")):
        code, out, err = await cli(env, *args)
        assert code != 0
        assert not leaks(out) and not leaks(err), err
