"""The API key never shows in an error's str or repr, in the text of server bodies
an error quotes (the transport redacts them), in the session or handle repr, or in
any log record, even when the server echoes the key back."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from mj_support import (
    KEY,
    Emulated,
    RecordingServer,
    Reply,
    submit_ok,
    task_json,
)

from midjourney_async import (
    ConfigurationError,
    MidjourneyError,
    MidjourneySession,
    RetryPolicy,
    TaskTimeout,
    WebhookConfig,
)
from midjourney_async._journal import JournalEntry, SQLiteJournal
from midjourney_async.testing import Emulator, FaultRule

TID = "1730621826053455"
FETCH = f"/mj/task/{TID}/fetch"
IMAGINE = "/mj/submit/imagine"
OMG = "/api/v1/ai/draw/mj"
ECHO = f"invalid token {KEY} (Authorization: Bearer {KEY})"


def _leaks(text: str) -> bool:
    lowered = text.lower()
    return KEY.lower() in lowered or "secret-4242" in lowered


def _texts_of(exc: BaseException) -> list[str]:
    """str, repr and every string attribute of an error and its causes."""
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out += [str(current), repr(current)]
        for value in vars(current).values():
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, dict):
                out.append(repr(value))
        # What a traceback shows: the cause, or the context unless suppressed.
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return out


def _assert_clean(exc: BaseException) -> None:
    for text in _texts_of(exc):
        assert not _leaks(text), f"{type(exc).__name__} leaks the key: {text!r}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_detector_detects() -> None:
    assert _leaks(ECHO)
    assert _leaks(ECHO.lower())
    assert not _leaks("invalid token *** (Authorization: Bearer ***)")


# Scripted answers that echo the key, and the call that meets them.
CASES: list[tuple[str, str, str, Reply, str]] = [
    ("401 text", "GET", FETCH, Reply.text(ECHO, status=401), "fetch"),
    ("403 text", "GET", FETCH, Reply.text(ECHO, status=403), "fetch"),
    ("404 text", "GET", FETCH, Reply.text(ECHO, status=404), "fetch"),
    ("429 text", "GET", FETCH, Reply.text(ECHO, status=429), "fetch"),
    ("500 text", "GET", FETCH, Reply.text(ECHO, status=500), "fetch"),
    ("400 other", "GET", FETCH, Reply.json({"code": 9, "description": ECHO}, status=400), "fetch"),
    ("bad json fetch", "GET", FETCH, Reply.raw(f'{{"id": "{KEY}'.encode()), "fetch"),
    ("bad json list", "POST", "/mj/task/list-by-condition",
     Reply.raw(f'[{{"id": "{KEY}"'.encode()), "list"),
    ("list 500", "POST", "/mj/task/list-by-condition", Reply.text(ECHO, status=500), "list"),
    ("submit 401", "POST", IMAGINE, Reply.text(ECHO, status=401), "imagine"),
    ("submit 500", "POST", IMAGINE, Reply.text(ECHO, status=500), "imagine"),
    ("submit code 4", "POST", IMAGINE, Reply.json({"code": 4, "description": ECHO}), "imagine"),
    ("submit code 9", "POST", IMAGINE, Reply.json({"code": 9, "description": ECHO}), "imagine"),
    ("submit code 23", "POST", IMAGINE, Reply.json({"code": 23, "description": ECHO}), "imagine"),
    ("submit code 24", "POST", IMAGINE,
     Reply.json({"code": 24, "description": ECHO, "properties": {"bannedWord": "gore"}}),
     "imagine"),
    ("submit code 3 at 404", "POST", IMAGINE,
     Reply.json({"code": 3, "description": ECHO}, status=404), "imagine"),
    ("new-api 400", "POST", IMAGINE,
     Reply.json({"code": 4, "description": ECHO, "type": "upstream_error"}, status=400),
     "imagine"),
    ("new-api 400 other", "POST", IMAGINE, Reply.json({"error": {"message": ECHO}}, status=400),
     "imagine"),
    ("trueai 200", "POST", IMAGINE,
     Reply.json({"success": False, "code": -1, "message": ECHO, "timestamp": 1}), "imagine"),
    ("trueai 500", "POST", IMAGINE,
     Reply.json({"success": False, "code": -1, "message": ECHO, "timestamp": 1}, status=500),
     "imagine"),
    ("submit garbage", "POST", IMAGINE, Reply.text(f"<html>{ECHO}"), "imagine"),
    ("submit no code", "POST", IMAGINE, Reply.json({"message": ECHO}), "imagine"),
    ("submit no id", "POST", IMAGINE, Reply.json({"code": 1, "description": ECHO}), "imagine"),
    ("seed code 4", "GET", f"/mj/task/{TID}/image-seed",
     Reply.json({"code": 4, "description": ECHO}, status=400), "seed"),
    ("seed garbage", "GET", f"/mj/task/{TID}/image-seed", Reply.text(ECHO), "seed"),
    ("seed 500", "GET", f"/mj/task/{TID}/image-seed", Reply.text(ECHO, status=500), "seed"),
    ("upload code 4", "POST", "/mj/submit/upload-discord-images",
     Reply.json({"code": 4, "description": ECHO}), "upload"),
    ("image 403", "GET", f"/mj/image/{TID}", Reply.text(ECHO, status=403), "image"),
    ("cancel 400", "POST", f"/mj/task/{TID}/cancel", Reply.text(ECHO, status=400), "cancel"),
]


async def _call(mj: MidjourneySession, what: str) -> Any:
    if what == "fetch":
        return await mj.fetch(TID)
    if what == "list":
        return await mj.fetch_many([TID])
    if what == "imagine":
        return await mj.imagine("cat")
    if what == "seed":
        return await mj.image_seed(TID)
    if what == "upload":
        return await mj.upload_images([b"\x89PNG\r\n\x1a\nxx"])
    if what == "image":
        return await mj.image(TID)
    if what == "cancel":
        return await mj.cancel(TID)
    raise AssertionError(what)


@pytest.mark.parametrize(
    ("method", "path", "reply", "what"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_errors_from_bodies_that_echo_the_key(
    server: RecordingServer,
    make_session: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    reply: Reply,
    what: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add(method, path, reply)
    mj = await make_session(retry=RetryPolicy.without_waits(max_tries=2))
    with pytest.raises(MidjourneyError) as info:
        await _call(mj, what)
    _assert_clean(info.value)
    for record in caplog.records:
        assert not _leaks(record.getMessage()), record.getMessage()
    assert not _leaks(caplog.text)
    # The key did travel where it belongs: in the auth header.
    assert server.requests[0].headers["mj-api-secret"] == KEY


@pytest.mark.parametrize(
    ("path", "reply", "what"),
    [
        (f"{OMG}/imagine", Reply.json({"statusCode": 400, "message": ECHO}), "imagine"),
        (f"{OMG}/imagine", Reply.text(ECHO, status=401), "imagine"),
        (f"{OMG}/imagine", Reply.text(ECHO), "imagine"),
        (f"{OMG}/query", Reply.json({"statusCode": 500, "message": ECHO, "data": "x"}), "fetch"),
        (f"{OMG}/query", Reply.json({"statusCode": 400, "message": ECHO, "data": 1}), "fetch"),
        (f"{OMG}/query", Reply.text(ECHO, status=403), "fetch"),
        (f"{OMG}/query", Reply.text(f"{{{ECHO}"), "fetch"),
    ],
)
async def test_ohmygpt_errors_that_echo_the_key(
    server: RecordingServer,
    make_session: Any,
    caplog: pytest.LogCaptureFixture,
    path: str,
    reply: Reply,
    what: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add("POST", path, reply)
    mj = await make_session(provider="ohmygpt", retry=RetryPolicy.never())
    with pytest.raises(MidjourneyError) as info:
        await _call(mj, what)
    _assert_clean(info.value)
    assert not _leaks(caplog.text)


async def test_transport_errors_are_clean(
    server: RecordingServer, make_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.add("POST", IMAGINE, Reply(drop=True))
    server.add("GET", FETCH, Reply(hang=30.0))
    mj = await make_session(timeout=0.2, retry=RetryPolicy.without_waits(max_tries=2))
    with pytest.raises(MidjourneyError) as dropped:
        await mj.imagine("cat")
    _assert_clean(dropped.value)
    with pytest.raises(MidjourneyError) as timed_out:
        await mj.fetch(TID)
    _assert_clean(timed_out.value)
    url = f"http://127.0.0.1:{_free_port()}"
    async with MidjourneySession(url, KEY, retry=RetryPolicy.without_waits(max_tries=2)) as other:
        with pytest.raises(MidjourneyError) as refused:
            await other.imagine("cat")
    _assert_clean(refused.value)
    assert not _leaks(caplog.text)


async def test_reprs_are_clean(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add("POST", "/mj/task/list-by-condition", Reply.json([task_json(TID)]))
    for provider in ("midjourney-proxy", "trueai", "new-api", "openai-hk"):
        mj = await make_session(provider=provider)
        handle = await mj.imagine("cat")
        for obj in (mj, handle, mj.provider, mj.retry):
            assert not _leaks(repr(obj)) and not _leaks(str(obj)), obj
        task = await handle
        assert not _leaks(repr(task))
        assert not _leaks(repr(handle))
    bare = MidjourneySession("http://127.0.0.1:9", KEY, provider="new-api", mode="fast")
    assert not _leaks(repr(bare))


async def test_logs_of_a_whole_run_are_clean(
    server: RecordingServer, make_session: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Submits, polls, 429s and 5xx with Retry-After, timeouts: no record holds the key."""
    caplog.set_level(logging.DEBUG)
    server.add(
        "POST",
        IMAGINE,
        Reply.text(ECHO, status=429, headers={"Retry-After": "0"}),
        Reply.json({"code": 23, "description": ECHO}),
        submit_ok(TID),
    )
    server.add(
        "POST",
        "/mj/task/list-by-condition",
        Reply.text(ECHO, status=503),
        Reply.text(ECHO, status=503),
        Reply.text(ECHO, status=429, headers={"Retry-After": "0"}),
        Reply.raw(f"[{{{ECHO}".encode()),
        Reply.json([task_json(TID, "IN_PROGRESS", "50%", failReason=ECHO)]),
        Reply.json([task_json(TID, "FAILURE", "", failReason="timed out")]),
    )
    mj = await make_session(provider="new-api", retry=RetryPolicy.without_waits(max_tries=3))
    handle = await mj.imagine("cat")
    with pytest.raises(MidjourneyError) as info:
        await handle.wait(timeout=10)
    _assert_clean(info.value)
    timeout_handle = mj.handle("0")
    server.add("POST", "/mj/task/list-by-condition", Reply.json([task_json("0", "SUBMITTED")]))
    with pytest.raises(TaskTimeout) as late:
        await timeout_handle.wait(timeout=0.05)
    _assert_clean(late.value)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("retrying") for m in messages)  # retries did happen
    assert any("-> 503" in m for m in messages)
    for message in messages:
        assert not _leaks(message), message
    assert not _leaks(caplog.text)
    assert mj.tracker_stats.last_error is None or not _leaks(mj.tracker_stats.last_error)


# -- chained exceptions ---------------------------------------------------------


def _chain(exc: BaseException) -> list[BaseException]:
    """The error and every exception chained to it, by cause or context, suppressed or not."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [current.__cause__, current.__context__]
    return found


async def _garbage_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A TCP server on 127.0.0.1 that reads a request and answers ``answer``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage that is not HTTP at all\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\"",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["not-http", "bad-length", "short-body", "bad-chunk"],
)
@pytest.mark.parametrize("provider", ["midjourney-proxy", "new-api"])
async def test_no_chained_exception_carries_the_key(answer: bytes, provider: str) -> None:
    srv, url = await _garbage_server(answer)
    try:
        async with MidjourneySession(
            url, KEY, provider=provider, retry=RetryPolicy.never(), timeout=5
        ) as mj:
            for call in (mj.fetch(TID), mj.imagine("cat")):
                with pytest.raises(MidjourneyError) as info:
                    await call
                chain = _chain(info.value)
                for error in chain:
                    assert not _leaks(repr(error)), f"{type(error).__name__}: {error!r}"
                    assert not _leaks(str(error))
                    assert not any(_leaks(repr(v)) for v in vars(error).values())
    finally:
        srv.close()
        await srv.wait_closed()


# -- the webhook token echoed back in tasks -------------------------------------------

TOKEN = "tOkEn-Of-ThE-rEcEiVeR-9f8e7d"


async def test_the_callback_token_echoed_in_a_task_is_redacted(
    server: RecordingServer, make_session: Any
) -> None:
    hook = f"http://127.0.0.1:8099/mj-webhook/{TOKEN}"
    server.add(
        "GET",
        FETCH,
        Reply.json(
            task_json(
                TID, notifyHook=hook, properties={"notifyHook": hook, "finalPrompt": "a cat"}
            )
        ),
    )
    mj = await make_session()
    task = await mj.fetch(TID)
    shown = [repr(task), json.dumps(task.to_dict()), str(task.properties)]
    assert all(TOKEN not in text for text in shown)
    assert task.properties["notifyHook"] == "http://127.0.0.1:8099/***"
    assert task.final_prompt == "a cat"  # the rest of the snapshot is untouched


async def test_the_receivers_own_token_never_shows_in_a_finished_task(emulated: Emulated) -> None:
    async with emulated(webhook=WebhookConfig(host="127.0.0.1", port=0)) as (_emu, mj):
        handle = await mj.imagine("a cat with a callback")
        task = await handle.wait(timeout=30)
    # The emulator echoes the callback URL in properties, as novicezk does; the
    # token is the last segment of its path, so no part of the path is kept.
    hook = task.properties["notifyHook"]
    assert hook.startswith("http://127.0.0.1:") and hook.endswith("/***")
    for shown in (repr(task), json.dumps(task.to_dict())):
        assert "/midjourney/callback/" not in shown


async def test_swapped_arguments_do_not_echo_the_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession(KEY, "https://api.example.com")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


# -- journal rows and files, a chaos run, the command line -------------------------
# These runs use a key of their own, told apart from the one of mj_support.

DISTINCT_KEY = "sk-Zq9-DISTINCTIVE-KEY-31337"


def _leaks_distinct(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return DISTINCT_KEY.lower() in text.lower() or "distinctive-key" in text.lower()



def _all_texts_of(exc: BaseException) -> list[str]:
    out: list[str] = []
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out += [str(current), repr(current)]
        out += [repr(v) for v in vars(current).values()]
        current = current.__cause__ or current.__context__
    return out



def _files_of(directory: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in directory.iterdir()]



def test_the_detector_of_the_distinct_key_detects() -> None:
    assert _leaks_distinct(f"Bearer {DISTINCT_KEY}")
    assert _leaks_distinct(DISTINCT_KEY.upper().encode())
    assert not _leaks_distinct("Bearer ***")



async def test_journal_rows_files_and_reprs_hold_no_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="midjourney_async")
    db = tmp_path / "tasks.db"
    async with Emulator(api_key=DISTINCT_KEY, speed="instant") as emu:
        async with MidjourneySession(
            emu.base_url, DISTINCT_KEY, journal=db, poll_interval=0.01,
            retry=RetryPolicy.without_waits(), webhook=WebhookConfig(poll_interval=0.05),
        ) as mj:
            handles = [await mj.imagine(f"journal {i}", state=f"s{i}") for i in range(3)]
            grid = await handles[0]
            await (await handles[0].upscale(1)).wait()
            await mj.wait_all(handles[1:])
            assert mj.journal is not None and not _leaks_distinct(repr(mj.journal))
            receiver = mj._webhook
            assert receiver is not None and not _leaks_distinct(repr(receiver))
            assert not _leaks_distinct(repr(mj._transport))
            assert grid.id
        journal = SQLiteJournal(db)
        entries = await journal.all()
        await journal.close()
    assert len(entries) == 4
    for entry in entries:
        assert not _leaks_distinct(repr(entry))
    conn = sqlite3.connect(db)
    try:
        for row in conn.execute("SELECT * FROM tasks"):
            assert not any(_leaks_distinct(str(cell)) for cell in row), row
    finally:
        conn.close()
    for name, data in _files_of(tmp_path):  # the db and any -wal / -shm file
        assert not _leaks_distinct(data), name
    assert not _leaks_distinct(caplog.text)
    assert not _leaks_distinct(repr(JournalEntry("1", "imagine", prompt="p")))



async def test_logs_and_errors_of_a_chaos_run_hold_no_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    async with Emulator(api_key=DISTINCT_KEY, speed=50.0, concurrency=None, queue_size=None) as emu:
        for rule in (
            FaultRule("*", "status", status=503, rate=0.15),
            FaultRule("*", "429", rate=0.15, retry_after=0.01),
            FaultRule("*", "drop_after_read", rate=0.05),
            FaultRule("*", "malformed", rate=0.05),
            FaultRule("*", "truncated", rate=0.05),
            FaultRule("*", "trueai_error_shape", rate=0.05, message=f"bad token {DISTINCT_KEY}"),
        ):
            emu.faults.add(rule)
        emu.rules.never_finish("stuck")
        async with MidjourneySession(
            emu.base_url, DISTINCT_KEY, poll_interval=0.02,
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
        for text in _all_texts_of(exc):
            assert not _leaks_distinct(text), text
    for record in caplog.records:
        assert not _leaks_distinct(record.getMessage()), record.getMessage()
    assert not _leaks_distinct(caplog.text)
    assert last_error is None or not _leaks_distinct(last_error)



async def _cli(env_extra: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
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
    async with Emulator(api_key=DISTINCT_KEY, speed="instant") as emu:
        env = {"MJ_BASE_URL": emu.base_url, "MJ_API_KEY": DISTINCT_KEY}
        runs: list[tuple[int, bytes, bytes]] = [
            await _cli(env, "imagine", "a cli fox", "--json", *fast),
            await _cli(env, "imagine", "doomed --emu-fail", *fast),
            await _cli(env, "fetch", "123456789", *fast),
            await _cli(
                {"MJ_BASE_URL": emu.base_url}, "imagine", "x", "--api-key", DISTINCT_KEY, *fast
            ),
        ]
        db = tmp_path / "j.db"
        async with MidjourneySession(emu.base_url, DISTINCT_KEY, journal=db) as mj:
            await mj.imagine("journal then cli")
        runs.append(await _cli(env, "wait", "--journal", str(db), "--json", *fast))
    assert runs[0][0] == 0 and runs[1][0] == 1 and runs[-1][0] == 0
    for code, out, err in runs:
        assert not _leaks_distinct(out) and not _leaks_distinct(err), (code, out, err)



async def test_cli_errors_from_a_server_echoing_the_key_hold_no_key(
    server: RecordingServer,
) -> None:
    echo = f"invalid key {DISTINCT_KEY}"
    server.add("POST", "/mj/submit/imagine", Reply.text(echo, status=401))
    server.add("GET", "/mj/task/1/fetch", Reply.raw(f'{{"id": "{DISTINCT_KEY}'.encode()))
    env: dict[str, Any] = {"MJ_BASE_URL": server.url, "MJ_API_KEY": DISTINCT_KEY}
    for args in (("imagine", "x", "--plain"), ("fetch", "1"), ("wait", "1", "--timeout", "1")):
        code, out, err = await _cli(env, *args)
        assert code != 0
        assert not _leaks_distinct(out) and not _leaks_distinct(err), err
