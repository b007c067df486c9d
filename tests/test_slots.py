"""In-flight slots (max_in_flight): a modal step, a finished answer, an abandoned task or
a closing session each give their slot back exactly once."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from mj_support import KEY, Emulated, RecordingServer, Reply, mask_png, until

from midjourney_async import (
    MidjourneySession,
    ModalRequired,
    RetryPolicy,
    SessionClosed,
    TaskStatus,
)
from midjourney_async._journal import JournalEntry
from midjourney_async.testing import Emulator, FaultRule

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
DONE = {"id": "1", "status": "SUCCESS", "progress": "100%", "buttons": [
    {"customId": "MJ::BOOKMARK::h", "emoji": "❤️", "label": ""},
]}


async def test_modal_press_under_max_in_flight_does_not_deadlock(emulated: Emulated) -> None:
    async with emulated(
        "trueai", emulator={"concurrency": None, "queue_size": None}, max_in_flight=1
    ) as (_emu, mj):
        up = await (await mj.imagine("a garden")).upscale(1)
        await up
        region = await asyncio.wait_for(up.vary_region(mask_png(), prompt="a fountain"), 10)
        task = await region.wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS
        # The slot came back: another submit goes through.
        assert (await asyncio.wait_for(mj.imagine("next"), 10)).id



async def test_an_abandoned_modal_task_gives_its_slot_back(emulated: Emulated) -> None:
    async with emulated(
        "trueai", emulator={"concurrency": None, "queue_size": None}, max_in_flight=1
    ) as (emu, mj):
        up = await (await mj.imagine("a forest")).upscale(1)
        await up
        child = await up.press("Custom Zoom")
        with pytest.raises(ModalRequired):
            await child.wait(timeout=10)
        nxt = await asyncio.wait_for(mj.imagine("not blocked"), 10)
        await nxt.wait(timeout=10)
        polled = emu.stats.list_ids
        await (await mj.imagine("one more")).wait(timeout=10)
        # The MODAL task nobody waits on is no longer polled.
        assert not mj._tracker.watching(child.id)
        assert emu.stats.list_ids - polled <= mj.tracker_stats.list_requests



async def test_a_modal_step_keeps_the_slot_while_its_task_runs(emulated: Emulated) -> None:
    async with emulated(
        "trueai",
        emulator={"account_remix": True, "concurrency": None, "queue_size": None},
        max_in_flight=1,
    ) as (emu, mj):
        grid = await (await mj.imagine("grid")).wait(timeout=10)
        emu.rules.never_finish("grid", action="VARIATION")
        v1 = next(b for b in grid.buttons if b.label == "V1")
        child = await mj.action(grid.id, v1.custom_id, enable_remix=True)
        emu.faults.add(FaultRule("submit/modal", "latency", latency=0.3))
        step = await mj.modal(child.id, prompt="grid remixed")
        await emu.wait_for(step.id, "IN_PROGRESS")
        assert mj._slots is not None
        assert mj._slots.holds(step.id), "the running task holds the only slot"
        blocked = asyncio.ensure_future(mj.imagine("must wait"))
        await until(lambda: mj._slots is not None and mj._slots.waiting == 1)  # type: ignore[attr-defined]
        assert emu.stats.submit_attempts_by_prompt["must wait"] == 0
        blocked.cancel()



async def test_close_during_a_submit_keeps_its_slot_for_the_reopened_session() -> None:
    class SlowJournal:
        """Records only after the test lets it, so close() lands mid-write."""

        async def record(self, entry: JournalEntry) -> None:
            writing.set()
            await release.wait()

        async def finish(self, task_id: str, status: str) -> None:
            return None

        async def unfinished(self) -> list[JournalEntry]:
            return []

        async def get(self, task_id: str) -> JournalEntry | None:
            return None

        async def close(self) -> None:
            return None

    writing, release = asyncio.Event(), asyncio.Event()
    async with Emulator("trueai") as emu:
        mj = MidjourneySession(emu.base_url, emu.api_key, provider="trueai", max_in_flight=1,
                               journal=SlowJournal(), **FAST)
        await mj.open()
        submit = asyncio.ensure_future(mj.imagine("fire and forget"))
        await writing.wait()
        closing = asyncio.ensure_future(mj.close())
        release.set()
        await closing
        await submit
        del submit
        gc.collect()
        async with mj:
            second = await asyncio.wait_for(mj.imagine("second"), 10)
        assert second.id



async def test_close_ends_a_submit_waiting_for_a_slot() -> None:
    async with Emulator("trueai") as emu:
        emu.rules.never_finish("stuck")
        mj = MidjourneySession(emu.base_url, emu.api_key, provider="trueai", max_in_flight=1,
                               **FAST)
        await mj.open()
        await mj.imagine("stuck")
        blocked = asyncio.ensure_future(mj.imagine("next"))
        await until(lambda: mj._slots is not None and mj._slots.waiting == 1)  # type: ignore[attr-defined]
        await mj.close()
        with pytest.raises(SessionClosed):
            await asyncio.wait_for(blocked, 5)
    assert emu.stats.submit_attempts_by_prompt["next"] == 0



async def test_a_submit_answered_with_a_finished_task_gives_its_slot_back(
    server: RecordingServer,
) -> None:
    # trueai answers a Like (MJ::BOOKMARK) with the parent's id and creates no task.
    server.add("GET", "/mj/task/1/fetch", Reply.json(DONE))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "1"}))
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "2"}))
    async with MidjourneySession(server.url, KEY, max_in_flight=1, **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        liked = await parent.press("❤️")
        assert liked.id == "1"
        nxt = await asyncio.wait_for(mj.imagine("not blocked"), 5)
    assert nxt.id == "2"
