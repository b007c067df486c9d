"""The shared poller against the emulator: batching, quirks, deadlines, cancellation.

Request counts come from the emulator's counters and the tracker's own; no test
asserts a wall-clock time.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mj_support import KEY, RecordingServer, Reply, until

from midjourney_async import (
    MidjourneySession,
    RetryPolicy,
    Task,
    TaskFailed,
    TaskNotFound,
    TaskStatus,
    TaskTimeout,
)
from midjourney_async._models import STATUS_RANK
from midjourney_async._reader import auto_chunk_size
from midjourney_async.testing import Emulator, FaultRule

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


@asynccontextmanager
async def pair(
    profile: str = "midjourney-proxy", *, emulator: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[Emulator, MidjourneySession]]:
    opts: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
    opts.update(options)
    async with (
        Emulator(profile=profile, **(emulator or {})) as emu,
        MidjourneySession(emu.base_url, emu.api_key, provider=profile, **opts) as mj,
    ):
        yield emu, mj


def forward_only(snapshots: list[Task]) -> bool:
    ranks = [STATUS_RANK.get(t.status, 2) for t in snapshots]
    if ranks != sorted(ranks):
        return False
    for a, b in itertools.pairwise(snapshots):
        if a.status == b.status and (b.progress_percent or -1) < (a.progress_percent or -1):
            return False
    return True


async def test_thousand_concurrent_imagines_are_polled_in_batches() -> None:
    n, chunk = 1000, 100
    async with pair(
        emulator={"concurrency": None, "queue_size": None}, chunk_size=chunk, poll_interval=0.02
    ) as (emu, mj):
        handles = await asyncio.gather(*(mj.imagine(f"fox {i}") for i in range(n)))
        tasks = await mj.wait_all(handles, timeout=120)
        stats = mj.tracker_stats

    assert len(tasks) == n and all(t.status is TaskStatus.SUCCESS for t in tasks)
    assert {t.id for t in tasks} == {h.id for h in handles}
    assert all(v == 1 for v in emu.stats.submits_by_prompt.values())
    lists = emu.stats.requests["task/list-by-condition"]
    # Never more than ceil(pending / chunk) list requests in one tick ...
    assert max(stats.ids_per_tick) <= n
    assert lists == stats.list_requests
    assert lists <= stats.ticks * math.ceil(n / chunk)
    # ... and every single fetch is a fallback the tracker accounted for.
    assert emu.stats.requests["task/fetch"] == stats.fallback_fetches
    # Batching is the point: far fewer status requests than tasks times ticks.
    assert lists + stats.fetch_requests < n * 2


async def test_results_are_matched_by_id_whatever_the_order() -> None:
    async with pair() as (_emu, mj):
        handles = [await mj.imagine(f"order {i}") for i in range(12)]
        tasks = await mj.wait_all(handles, timeout=30)
    for handle, task in zip(handles, tasks, strict=True):
        assert task.id == handle.id
        assert task.prompt == f"order {handles.index(handle)}"


async def test_id_dropped_from_batches_falls_back_to_fetch_then_not_found() -> None:
    async with pair(not_found_grace=0.0) as (emu, mj):
        real = await mj.imagine("a real task")
        ghost = mj.handle("1111222233334444")
        results = await mj.wait_all([real, ghost], timeout=30, return_exceptions=True)
        stats = mj.tracker_stats
    assert isinstance(results[0], Task) and results[0].status is TaskStatus.SUCCESS
    assert isinstance(results[1], TaskNotFound)
    # The ghost was left out of the list answers, so it cost single fetches.
    assert stats.fallback_fetches >= 2
    assert emu.stats.requests["task/fetch"] == stats.fallback_fetches


async def test_new_api_empty_status_reads_as_not_started() -> None:
    async with pair("new-api", emulator={"relay_refresh_interval": 0.05}) as (_emu, mj):
        handle = await mj.imagine("relay quirk")
        first = await mj.fetch(handle.id)
        assert first.status is TaskStatus.NOT_START
        snapshots = [t async for t in handle.updates()]
    assert snapshots[-1].status is TaskStatus.SUCCESS
    assert forward_only(snapshots)


async def test_ohmygpt_polls_by_single_fetch() -> None:
    async with pair("ohmygpt") as (emu, mj):
        handles = [await mj.imagine(f"ohmygpt {i}") for i in range(5)]
        tasks = await mj.wait_all(handles, timeout=30)
        stats = mj.tracker_stats
    assert all(t.status is TaskStatus.SUCCESS for t in tasks)
    assert stats.list_requests == 0
    assert emu.stats.requests["task/list-by-condition"] == 0
    assert stats.fetch_requests >= 5


async def test_a_handle_nobody_waits_on_costs_nothing() -> None:
    async with pair() as (emu, mj):
        idle = await mj.imagine("nobody waits for me")
        watched = await mj.imagine("somebody waits for me")
        await watched.wait(timeout=30)
        list_ids = emu.stats.list_ids
        fetch_ids = emu.stats.fetch_ids
        requests = emu.stats.list_ids + emu.stats.fetch_ids
    assert idle.task is None
    assert requests >= 1
    # Every id the poller asked about was the watched one.
    assert list_ids == mj.tracker_stats.list_requests
    assert fetch_ids == mj.tracker_stats.fetch_requests


async def test_wait_deadline_raises_task_timeout_with_last_snapshot() -> None:
    async with pair() as (emu, mj):
        emu.rules.never_finish("stuck", at_progress="46%")
        handle = await mj.imagine("stuck forever")
        await emu.wait_for(handle.id, "IN_PROGRESS")
        await emu.wait_until(lambda: emu.tasks[handle.id].progress == "46%")
        with pytest.raises(TaskTimeout) as info:
            await handle.wait(timeout=0.5)
    assert isinstance(info.value, TimeoutError)
    assert info.value.task is not None
    assert info.value.task.status is TaskStatus.IN_PROGRESS
    assert info.value.task_id == handle.id
    assert "may still finish" in str(info.value)


async def test_failing_task_raises_task_failed_with_reason() -> None:
    async with pair() as (emu, mj):
        emu.rules.fail("doomed", reason="Emulated moderation")
        handle = await mj.imagine("doomed prompt")
        with pytest.raises(TaskFailed) as info:
            await handle
    assert info.value.task.status is TaskStatus.FAILURE
    assert info.value.reason == "Emulated moderation"
    assert "Emulated moderation" in str(info.value)


async def test_updates_yield_each_change_and_end_at_terminal() -> None:
    async with pair(poll_interval=0.002, emulator={"speed": 100.0}) as (_emu, mj):
        handle = await mj.imagine("progress please")
        snapshots = [t async for t in handle.updates()]
    assert snapshots[-1].status is TaskStatus.SUCCESS
    assert forward_only(snapshots)
    keys = [(t.status, t.progress) for t in snapshots]
    assert len(keys) == len(set(keys)), "one snapshot per change, no repeats"
    assert any(t.status is TaskStatus.IN_PROGRESS for t in snapshots)


async def test_cancelled_waiters_leave_the_tracker_healthy() -> None:
    async with pair() as (emu, mj):
        emu.rules.never_finish("hang")
        stuck = await mj.imagine("hang here")
        others = [await mj.imagine(f"fine {i}") for i in range(5)]

        with anyio.move_on_after(0.2):
            await stuck.wait(timeout=60)
        waiter = asyncio.ensure_future(stuck.wait(timeout=60))
        await until(lambda: stuck._state.waiters == 1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

        tasks = await mj.wait_all(others, timeout=30)
        assert all(t.status is TaskStatus.SUCCESS for t in tasks)
        assert mj._tracker.running
        assert stuck._state.waiters == 0
        # The cancelled task's state no longer costs requests.
        assert not mj._tracker.watching(stuck.id)


async def test_max_in_flight_turns_a_burst_into_a_stream() -> None:
    async with pair(
        max_in_flight=3, emulator={"concurrency": 3, "queue_size": 0}
    ) as (emu, mj):
        handles = await asyncio.gather(*(mj.imagine(f"burst {i}") for i in range(20)))
        tasks = await mj.wait_all(handles, timeout=60)
    assert len(tasks) == 20
    assert emu.stats.submits_by_code[1] == 20
    assert sum(c for code, c in emu.stats.submits_by_code.items() if code != 1) == 0


async def test_queue_position_from_code_22_is_on_the_handle() -> None:
    async with pair(emulator={"concurrency": 1, "queue_size": 5}) as (emu, mj):
        emu.rules.never_finish("blocker")
        first = await mj.imagine("blocker")
        second = await mj.imagine("queued one")
        third = await mj.imagine("queued two")
    # numberOfQueues counts the tasks waiting ahead in the queue (not the running one).
    assert first.queue_position is None and first.submit_code == 1
    assert second.submit_code == 22 and second.queue_position == 0
    assert third.submit_code == 22 and third.queue_position == 1


async def test_as_completed_yields_every_handle_once() -> None:
    async with pair() as (emu, mj):
        emu.rules.fail("bad")
        handles = [await mj.imagine(p) for p in ("good 1", "bad 1", "good 2")]
        seen = [h async for h in mj.as_completed(handles, timeout=30)]
        assert sorted(h.id for h in seen) == sorted(h.id for h in handles)
        # Every yielded handle has ended: awaiting it answers at once.
        outcomes = {}
        for h in seen:
            try:
                outcomes[h.id] = (await h.wait(timeout=0.001)).status
            except TaskFailed:
                outcomes[h.id] = TaskStatus.FAILURE
    assert [outcomes[h.id] for h in handles] == [
        TaskStatus.SUCCESS,
        TaskStatus.FAILURE,
        TaskStatus.SUCCESS,
    ]


async def test_refresh_and_reattach_by_id() -> None:
    async with pair() as (emu, mj):
        handle = await mj.imagine("reattach me")
        await emu.complete_all()
        again = mj.handle(handle.id)
        task = await again.refresh()
        assert task.status is TaskStatus.SUCCESS
        assert (await again).id == handle.id


async def test_wait_all_raises_the_first_error_and_leaves_nothing_behind() -> None:
    async with pair(emulator={"concurrency": None, "queue_size": None}) as (emu, mj):
        emu.rules.fail("bad", reason="Emulated failure")
        emu.rules.never_finish("hang")
        good = [await mj.imagine(f"good {i}") for i in range(3)]
        bad = await mj.imagine("bad one")
        hung = await mj.imagine("hang on")
        with pytest.raises(TaskFailed) as failed:
            await mj.wait_all([*good, bad], timeout=30)
        assert failed.value.task.id == bad.id
        with pytest.raises(TaskTimeout) as timed_out:
            await mj.wait_all([*good, hung], timeout=0.3)
        assert timed_out.value.task_id == hung.id
        tasks = await mj.wait_all(good, timeout=30)
        assert [t.id for t in tasks] == [h.id for h in good]
        for handle in (*good, bad, hung):
            assert not handle._state.subscribers
            assert handle._state.waiters == 0
        assert not mj._tracker.watching(hung.id)


async def test_list_endpoint_missing_falls_back_to_fetch(server: RecordingServer) -> None:
    done = {"id": "7", "status": "SUCCESS", "progress": "100%"}
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", "/mj/task/list-by-condition", Reply.json({"error": "Not Found"}, 404))
    server.add("GET", "/mj/task/7/fetch", Reply.json(done))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        task = await (await mj.imagine("x")).wait(timeout=5)
    assert task.status is TaskStatus.SUCCESS
    assert len(server.calls("POST", "/mj/task/list-by-condition")) == 1



async def test_one_stray_404_from_list_does_not_end_batching() -> None:
    async with Emulator("trueai", speed=50, concurrency=None, queue_size=None) as emu:
        emu.faults.add(FaultRule("task/list*", "status", status=404, nth=[1]))
        async with MidjourneySession(emu.base_url, emu.api_key, provider="trueai",
                                     **FAST) as mj:
            handles = [await mj.imagine(f"cat {i}") for i in range(20)]
            await mj.wait_all(handles, timeout=30)
            assert mj._reader.lists
            assert mj.tracker_stats.list_requests > 1


@pytest.mark.parametrize(
    ("pending", "per_request"),
    [(1, 100), (10_000, 100), (10_001, 101), (20_000, 200), (100_000, 1000), (10**6, 1000)],
)
def test_chunks_grow_past_ten_thousand_pending_up_to_a_thousand_ids(
    pending: int, per_request: int
) -> None:
    # At 100,000 pending tasks, 1,000 requests a tick cost more CPU than reading the
    # answers; no server limits the id count, so a sweep stays at 100 requests.
    assert auto_chunk_size(pending) == per_request
    assert math.ceil(pending / per_request) <= max(100, math.ceil(pending / 1000))


async def test_an_explicit_chunk_size_is_kept_whatever_the_count() -> None:
    async with pair(chunk_size=7) as (_emu, mj):
        assert mj._tracker.reader.chunks([str(i) for i in range(20_000)])[0] == [
            str(i) for i in range(7)
        ]


async def test_a_list_answer_with_rows_that_are_no_tasks_still_moves_the_others(
    server: RecordingServer,
) -> None:
    # A null entry, a bare string and a numeric id: the answer cannot be read in one
    # go, so its rows are read one by one (the numeric id by the tolerant decoder).
    def answer(status: str, progress: str) -> Reply:
        return Reply.json([
            None,
            "junk",
            {"id": 77, "action": "IMAGINE", "status": status, "progress": progress},
            {"id": "1730621826053455", "action": "IMAGINE", "status": status,
             "progress": progress, "imageUrl": "https://cdn.example/a.png"},
        ])

    server.add("POST", "/mj/task/list-by-condition",
               answer("IN_PROGRESS", "40%"), answer("IN_PROGRESS", "40%"),
               answer("SUCCESS", "100%"))
    async with MidjourneySession(server.url, KEY, poll_interval=0.02) as mj:
        numeric, plain = mj.handle("77"), mj.handle("1730621826053455")
        updates = plain.updates(timeout=10)
        running = await anext(updates)
        assert (running.status, running.progress_percent) == (TaskStatus.IN_PROGRESS, 40)
        assert running.image_url == "https://cdn.example/a.png"
        done = await mj.wait_all([numeric, plain], timeout=10)
        assert [(t.id, t.status) for t in done] == [
            ("77", TaskStatus.SUCCESS), ("1730621826053455", TaskStatus.SUCCESS)]
        assert len(server.calls("POST", "/mj/task/list-by-condition")) >= 3
