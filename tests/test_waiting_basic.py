"""Handles and the shared poller against a scripted server (no emulator): waits that
succeed, fail, time out or lose the task, updates() that only move forward, the
per-id fallback, and downloads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mj_support import (
    Emulated,
    Recorded,
    RecordingServer,
    Reply,
    submit_ok,
    task_json,
)

from midjourney_async import (
    DownloadRefused,
    DownloadTooLarge,
    ModalRequired,
    NotFoundError,
    RetryPolicy,
    Task,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
    TaskTimeout,
)

TID = "1730621826053455"
LIST = "/mj/task/list-by-condition"
IMAGINE = "/mj/submit/imagine"
OMG = "/api/v1/ai/draw/mj"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
IMG = "https://cdn.example/grid.png"


FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*"))


def _listing(*snapshots: Any) -> list[Reply]:
    return [Reply.json(s if isinstance(s, list) else [s]) for s in snapshots]


async def test_await_handle_returns_success_via_list_by_condition(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add(
        "POST",
        LIST,
        *_listing(
            task_json(TID, "SUBMITTED", "0%"),
            task_json(TID, "IN_PROGRESS", "46%"),
            task_json(TID, "SUCCESS", "100%", imageUrl=IMG),
        ),
    )
    mj = await make_session()
    handle = await mj.imagine("cat")
    task = await handle
    assert task.status is TaskStatus.SUCCESS
    assert task.image_url == IMG
    assert handle.task is task
    lists = server.calls("POST", LIST)
    assert len(lists) == 3
    assert all(r.json == {"ids": [TID]} for r in lists)
    assert server.calls("GET") == []  # no per-id fetch was needed
    assert mj.pending == 0


async def test_wait_with_timeout_returns_success(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add("POST", LIST, *_listing(task_json(TID, "IN_PROGRESS", "10%"), task_json(TID)))
    mj = await make_session()
    handle = await mj.imagine("cat")
    task = await handle.wait(timeout=10)
    assert task.status is TaskStatus.SUCCESS
    # Waiting again on a finished handle answers at once, without a request.
    before = len(server.requests)
    assert await handle.wait(timeout=10) is task
    assert len(server.requests) == before


async def test_failure_raises_task_failed_with_reason(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add(
        "POST",
        LIST,
        *_listing(
            task_json(TID, "IN_PROGRESS", "20%"),
            task_json(TID, "FAILURE", "", failReason="可能包含敏感词"),
        ),
    )
    mj = await make_session()
    handle = await mj.imagine("cat")
    with pytest.raises(TaskFailed) as info:
        await handle.wait(timeout=10)
    assert info.value.reason == "可能包含敏感词"
    assert info.value.task.status is TaskStatus.FAILURE
    assert info.value.task.id == TID
    assert "可能包含敏感词" in str(info.value)


async def test_task_that_never_finishes_times_out(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add("POST", LIST, Reply.json([task_json(TID, "IN_PROGRESS", "62%")]))
    mj = await make_session(poll_interval=0.01)
    handle = await mj.imagine("cat")
    with pytest.raises(TaskTimeout) as info:
        await handle.wait(timeout=0.3)
    exc = info.value
    assert isinstance(exc, TimeoutError)
    assert exc.task_id == TID
    assert exc.timeout == 0.3
    assert exc.task is not None
    assert exc.task.status is TaskStatus.IN_PROGRESS
    assert exc.task.progress_percent == 62
    assert server.calls("POST", LIST)  # it did poll meanwhile


async def test_timeout_before_any_snapshot(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add("POST", LIST, Reply(hang=30.0))
    mj = await make_session()
    handle = await mj.imagine("cat")
    with pytest.raises(TaskTimeout) as info:
        await handle.wait(timeout=0.2)
    assert info.value.task is None


async def test_session_default_wait_timeout(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", LIST, Reply.json([task_json(TID, "SUBMITTED", "0%")]))
    mj = await make_session(wait_timeout=0.2)
    with pytest.raises(TaskTimeout) as info:
        await mj.handle(TID)
    assert info.value.timeout == 0.2


async def test_modal_raises_modal_required(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/action", submit_ok("555", code=21))
    server.add("POST", LIST, Reply.json([task_json("555", "MODAL", "0%")]))
    mj = await make_session()
    handle = await mj.action(TID, "MJ::CustomZoom::h")
    assert handle.submit_code == 21
    with pytest.raises(ModalRequired) as info:
        await handle.wait(timeout=10)
    assert info.value.handle.id == "555"
    assert "session.modal('555'" in str(info.value)


async def test_updates_one_per_change_and_never_backwards(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok(TID))
    server.add(
        "POST",
        LIST,
        *_listing(
            task_json(TID, "SUBMITTED", "0%"),
            task_json(TID, "IN_PROGRESS", "20%"),
            task_json(TID, "IN_PROGRESS", "20%"),  # duplicate
            task_json(TID, "IN_PROGRESS", "10%"),  # older progress
            task_json(TID, "SUBMITTED", "0%"),  # older status
            task_json(TID, "NOT_START", ""),  # older still
            task_json(TID, "IN_PROGRESS", "60%"),
            task_json(TID, "SUCCESS", "100%"),
            task_json(TID, "IN_PROGRESS", "90%"),  # after the end: never asked
        ),
    )
    mj = await make_session()
    handle = await mj.imagine("cat")
    seen = [(str(t.status), t.progress_percent) async for t in handle.updates()]
    assert seen == [
        ("SUBMITTED", 0),
        ("IN_PROGRESS", 20),
        ("IN_PROGRESS", 60),
        ("SUCCESS", 100),
    ]
    assert len(server.calls("POST", LIST)) == 8
    assert handle.task is not None and handle.task.status is TaskStatus.SUCCESS
    assert mj.tracker_stats.snapshots_dropped == 4


async def test_updates_end_at_failure_without_raising(
    server: RecordingServer, make_session: Any
) -> None:
    server.add(
        "POST",
        LIST,
        *_listing(
            task_json(TID, "IN_PROGRESS", "5%"),
            task_json(TID, "FAILURE", "", failReason="x"),
        ),
    )
    mj = await make_session()
    seen = [t.status async for t in mj.handle(TID).updates()]
    assert seen == [TaskStatus.IN_PROGRESS, TaskStatus.FAILURE]


async def test_unknown_status_does_not_end_the_wait(
    server: RecordingServer, make_session: Any
) -> None:
    server.add(
        "POST",
        LIST,
        *_listing(task_json(TID, "PAUSED", "30%"), task_json(TID, "SUCCESS", "100%")),
    )
    mj = await make_session()
    seen = [t.status async for t in mj.handle(TID).updates()]
    assert seen == ["PAUSED", TaskStatus.SUCCESS]


async def test_results_are_matched_by_id_not_position(
    server: RecordingServer, make_session: Any
) -> None:
    def answer(rec: Recorded) -> Reply:
        # Reversed, with a stranger and a missing id (c stays pending).
        ids = [i for i in rec.json["ids"] if i != "c"]
        tasks = [task_json(i, imageUrl=f"https://img/{i}.png") for i in reversed(ids)]
        return Reply.json([task_json("stranger"), *tasks])

    server.on("POST", LIST, answer)
    server.add("GET", "/mj/task/c/fetch", Reply.json(task_json("c", imageUrl="https://img/c.png")))
    mj = await make_session()
    handles = [mj.handle(i) for i in ("a", "b", "c", "d")]
    tasks = await mj.wait_all(handles, timeout=10)
    assert [t.id for t in tasks] == ["a", "b", "c", "d"]
    assert [t.image_url for t in tasks] == [f"https://img/{i}.png" for i in "abcd"]
    # c was missing from two batches in a row, then fetched on its own.
    assert len(server.calls("GET", "/mj/task/c/fetch")) == 1
    assert mj.tracker_stats.fallback_fetches == 1


async def test_forgotten_task_raises_task_not_found(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", LIST, Reply.json([]))
    server.add("GET", "/mj/task/999/fetch", Reply(status=200, body=b""))
    mj = await make_session(not_found_grace=0)
    with pytest.raises(TaskNotFound) as info:
        await mj.handle("999").wait(timeout=10)
    assert info.value.task_id == "999"
    assert len(server.calls("GET", "/mj/task/999/fetch")) >= 2


async def test_poller_survives_errors(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "POST",
        LIST,
        Reply.text("down", status=500),
        Reply.text("{garbage", status=200),
        Reply.text("{garbage", status=200),
        Reply.json([task_json(TID)]),
    )
    mj = await make_session()
    task = await mj.handle(TID).wait(timeout=10)
    assert task.status is TaskStatus.SUCCESS
    assert mj.tracker_stats.errors >= 2


async def test_ohmygpt_handles_poll_by_query(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", Reply.json({"statusCode": 200, "data": 20}))
    server.add(
        "POST",
        f"{OMG}/query",
        Reply.json({"statusCode": 200, "data": {"taskId": 20, "status": "IN_PROGRESS"}}),
        Reply.json(
            {"statusCode": 200, "data": {"taskId": 20, "status": "SUCCESS", "imageDcUrl": IMG}}
        ),
    )
    mj = await make_session(provider="ohmygpt")
    task = await (await mj.imagine("cat"))
    assert task.id == "20"
    assert task.image_url == IMG
    queries = server.calls("POST", f"{OMG}/query")
    assert len(queries) == 2
    assert all(q.form == {"model": "midjourney", "taskId": "20"} for q in queries)


async def test_refresh_fetches_now(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(task_json(TID, "IN_PROGRESS", "31%")))
    mj = await make_session()
    handle = mj.handle(TID)
    task = await handle.refresh()
    assert task.progress_percent == 31
    assert handle.task is task


async def test_max_in_flight_releases_on_terminal(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", IMAGINE, submit_ok("1"), submit_ok("2"))
    server.add("POST", LIST, Reply.json([task_json("1", "IN_PROGRESS", "5%")]))
    mj = await make_session(max_in_flight=1)
    first = await mj.imagine("one")
    second = asyncio.ensure_future(mj.imagine("two"))
    await server.wait_for(1, LIST)  # task 1 is being watched while the slot is held
    assert not second.done()
    assert len(server.calls("POST", IMAGINE)) == 1
    server.add("POST", LIST, Reply.json([task_json("1", "SUCCESS")]))
    handle = await asyncio.wait_for(second, 10)
    assert handle.id == "2"
    assert first.task is not None and first.task.status is TaskStatus.SUCCESS
    assert len(server.calls("POST", IMAGINE)) == 2


async def test_as_completed_yields_each_handle(server: RecordingServer, make_session: Any) -> None:
    def answer(rec: Recorded) -> Reply:
        ids = rec.json["ids"]
        return Reply.json([task_json(i, "FAILURE" if i == "x" else "SUCCESS") for i in ids])

    server.on("POST", LIST, answer)
    mj = await make_session()
    handles = [mj.handle("x"), mj.handle("y")]
    done = [h.id async for h in mj.as_completed(handles, timeout=10)]
    assert sorted(done) == ["x", "y"]
    results = await mj.wait_all(handles, timeout=10, return_exceptions=True)
    assert isinstance(results[0], TaskFailed)
    assert isinstance(results[1], Task)


# ---------------------------------------------------------------------------
# Downloads


async def test_download_saves_images_named_from_the_task(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    jpeg = b"\xff\xd8\xff" + b"j" * 100
    server.add("GET", "/files/grid.png", Reply.raw(PNG, content_type="image/png"))
    server.add("GET", "/files/0.jpg", Reply.raw(jpeg, content_type="image/jpeg"))
    server.add("GET", "/files/1", Reply.raw(PNG, content_type="image/png; charset=binary"))
    server.add("GET", "/files/v.mp4", Reply.raw(b"mp4data", content_type="video/mp4"))
    task = Task(
        id=TID,
        status="SUCCESS",
        image_url=f"{server.url}/files/grid.png",
        image_url_refs=[f"{server.url}/files/0.jpg", f"{server.url}/files/1"],
        video_url_refs=[f"{server.url}/files/v.mp4"],
    )
    mj = await make_session()
    paths = await mj.download(task, tmp_path / "out")
    names = [p.name for p in paths]
    assert names == [f"{TID}.png", f"{TID}_1.jpg", f"{TID}_2.png", f"{TID}_video_1.mp4"]
    assert paths[0].read_bytes() == PNG
    assert paths[1].read_bytes() == jpeg
    assert paths[3].read_bytes() == b"mp4data"
    assert all(p.parent == tmp_path / "out" for p in paths)
    assert _files(tmp_path / "out") == sorted(names)


async def test_download_sends_the_key_only_to_the_base_url(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    server.add("GET", "/api/mj/image/7", Reply.raw(PNG, content_type="image/png"))
    server.add("GET", "/cdn/7.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session(base_url=server.url + "/api", provider="new-api")
    relay = Task(id="7", status="SUCCESS", image_url="/mj/image/7")  # new-api rewrite
    other = Task(id="8", status="SUCCESS", image_url=f"{server.url}/cdn/7.png")
    (relay_path,) = await mj.download(relay, tmp_path)
    (other_path,) = await mj.download(other, tmp_path)
    assert relay_path.name == "7.png" and other_path.name == "8.png"
    by_path = {r.path: r for r in server.requests}
    assert by_path["/api/mj/image/7"].headers["Authorization"].startswith("Bearer ")
    assert "Authorization" not in by_path["/cdn/7.png"].headers


async def test_download_from_a_handle_waits_for_it(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    server.add("POST", LIST, Reply.json([task_json(TID, imageUrl=f"{server.url}/g.png")]))
    server.add("GET", "/g.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    (path,) = await mj.download(mj.handle(TID), tmp_path)
    assert path == tmp_path / f"{TID}.png"
    assert path.read_bytes() == PNG


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "data:,x"])
async def test_download_refuses_other_schemes(
    server: RecordingServer, make_session: Any, tmp_path: Path, url: str
) -> None:
    mj = await make_session()
    with pytest.raises(DownloadRefused) as info:
        await mj.download(Task(id="1", status="SUCCESS", image_url=url), tmp_path)
    assert "only http(s)" in str(info.value)
    assert server.requests == []
    assert _files(tmp_path) == []


async def test_download_refuses_oversized_body(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    server.add("GET", "/big.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    task = Task(id="1", status="SUCCESS", image_url=f"{server.url}/big.png")
    with pytest.raises(DownloadTooLarge) as info:
        await mj.download(task, tmp_path, max_bytes=100)
    assert "100-byte cap" in str(info.value)
    assert _files(tmp_path) == []


async def test_download_stops_an_oversized_stream(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    body = PNG * 400  # about 400 kB, sent in chunks with no Content-Length
    server.add("GET", "/stream.png", Reply(body=body, headers={"Content-Type": "image/png"},
                                           chunked=True))
    mj = await make_session()
    task = Task(id="1", status="SUCCESS", image_url=f"{server.url}/stream.png")
    with pytest.raises(DownloadTooLarge) as info:
        await mj.download(task, tmp_path, max_bytes=len(body) - 1)
    assert "stopped" in str(info.value)
    assert _files(tmp_path) == []  # no partial file left
    # The same stream under a cap it fits is saved whole.
    (path,) = await mj.download(task, tmp_path, max_bytes=len(body))
    assert path.read_bytes() == body


async def test_download_names_cannot_escape_the_directory(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    server.add("GET", "/x.png", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session()
    task = Task(id="../../etc/evil", status="SUCCESS", image_url=f"{server.url}/x.png")
    (path,) = await mj.download(task, tmp_path / "d")
    assert path.parent == tmp_path / "d"
    assert ".." not in path.name and "/" not in path.name


async def test_download_http_error(
    server: RecordingServer, make_session: Any, tmp_path: Path
) -> None:
    server.add("GET", "/gone.png", Reply.text("expired", status=404))
    mj = await make_session()
    task = Task(id="1", status="SUCCESS", image_url=f"{server.url}/gone.png")
    with pytest.raises(NotFoundError):
        await mj.download(task, tmp_path)
    assert _files(tmp_path) == []


async def test_as_completed_timeout_is_reported_at_once(emulated: Emulated) -> None:
    async with emulated(wait_timeout=30) as (emu, mj):
        emu.rules.never_finish("hang")
        handles = [await mj.imagine("hang"), await mj.imagine("fine")]
        outcomes: dict[str, str] = {}
        async for h in mj.as_completed(handles, timeout=0.3):
            try:
                outcomes[h.id] = str((await asyncio.wait_for(h.wait(), 2)).status)
            except TaskTimeout:
                outcomes[h.id] = "timeout"
    assert outcomes == {handles[0].id: "timeout", handles[1].id: "SUCCESS"}



async def test_as_completed_deadline_does_not_leak_into_later_waits(emulated: Emulated) -> None:
    async with emulated("trueai", emulator={"speed": 100}, wait_timeout=30) as (_emu, mj):
        handles = [await mj.imagine(f"cat {i}") for i in range(3)]
        async for _ in mj.as_completed(handles, timeout=0.001):
            pass
        results = await mj.wait_all(handles, return_exceptions=True)
    assert all(isinstance(r, Task) for r in results)
