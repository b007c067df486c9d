"""Modal steps (remix, custom zoom, vary region): the answer, the successor task and
what a refused or failed step leaves behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mj_support import KEY, Emulated, Recorded, RecordingServer, Reply, until

from midjourney_async import (
    MidjourneySession,
    ModalRequired,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Task,
    TaskHandle,
    TaskStatus,
    TaskTimeout,
)
from midjourney_async.testing import FaultRule

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


def serve_grid(server: RecordingServer) -> None:
    """Finished grid 1 with a V1 button; pressing it answers with task 2."""
    buttons = [{"customId": "MJ::JOB::variation::1::h", "label": "V1"}]
    grid = {"id": "1", "status": "SUCCESS", "progress": "100%", "buttons": buttons}
    server.add("GET", "/mj/task/1/fetch", Reply.json(grid))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "2"}))


async def remix(mj: MidjourneySession) -> TaskHandle:
    """Press V1 on grid 1 with a remix prompt: task 2, whose window the wait answers."""
    parent = mj.handle("1")
    await parent.refresh()
    return await parent.variation(1, prompt="a remixed prompt")


async def test_a_poll_during_the_modal_step_does_not_bring_modal_back(emulated: Emulated) -> None:
    async with emulated(
        "trueai", emulator={"concurrency": None, "queue_size": None}, max_in_flight=5
    ) as (emu, mj):
        up = await (await mj.imagine("a desert")).upscale(1)
        await up
        child = await up.press("Custom Zoom")
        emu.faults.add(FaultRule("submit/modal", "latency", latency=0.3))
        done = await mj.modal(child.id, prompt="a desert --zoom 1.5 --ar 1:1")
        task = await done.wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS



async def test_remix_modal_shown_only_by_status_is_answered_by_wait(
    server: RecordingServer,
) -> None:
    """new-api rewrites code 21 to 1: the modal shows up as the child's status."""
    modal_seen: list[int] = []

    def listing(recorded: object) -> Reply:
        child = (
            {"id": "2", "status": "SUCCESS", "progress": "100%"}
            if modal_seen
            else {"id": "2", "status": "MODAL", "progress": "0%"}
        )
        return Reply.json([child])

    def modal(recorded: object) -> Reply:
        modal_seen.append(1)
        return Reply.json({"code": 1, "result": "2"})

    serve_grid(server)
    server.on("POST", "/mj/task/list-by-condition", listing)
    server.on("POST", "/mj/submit/modal", modal)
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        child = await remix(mj)
        task = await child.wait(timeout=5)
    assert task.status is TaskStatus.SUCCESS
    [sent] = server.calls("POST", "/mj/submit/modal")
    assert sent.json == {"taskId": "2", "prompt": "a remixed prompt"}



@pytest.mark.parametrize("second", ["wait", "updates"])
async def test_two_waits_on_one_modal_window_send_the_paid_step_once(
    server: RecordingServer, second: str
) -> None:
    """Both waits see the window at once; the step is sent once and both follow it."""
    arrived, release = asyncio.Event(), asyncio.Event()

    def listing(recorded: object) -> Reply:
        child = (
            {"id": "2", "status": "SUCCESS", "progress": "100%"}
            if release.is_set()
            else {"id": "2", "status": "MODAL", "progress": "0%"}
        )
        return Reply.json([child])

    async def modal(recorded: object) -> Reply:
        arrived.set()
        await release.wait()
        return Reply.json({"code": 1, "result": "2"})

    serve_grid(server)
    server.on("POST", "/mj/task/list-by-condition", listing)
    server.on("POST", "/mj/submit/modal", modal)
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        child = await remix(mj)

        async def follow() -> Task:
            if second == "wait":
                return await child.wait(timeout=10)
            seen = [t async for t in child.updates(timeout=10)]
            return seen[-1]

        both = asyncio.gather(child.wait(timeout=10), follow())
        await asyncio.wait_for(arrived.wait(), 10)
        # The other wait has seen the window too by now: a few more polls went by.
        polled = len(server.calls("POST", "/mj/task/list-by-condition"))
        await until(lambda: len(server.calls("POST", "/mj/task/list-by-condition")) >= polled + 3)
        release.set()
        first, other = await asyncio.wait_for(both, 10)
    assert first.status is TaskStatus.SUCCESS and other.status is TaskStatus.SUCCESS
    assert len(server.calls("POST", "/mj/submit/modal")) == 1


async def test_the_live_row_shows_beside_new_apis_stale_modal_row(
    server: RecordingServer,
) -> None:
    """After the step new-api lists the old MODAL row and the live one: the live one
    is the task's state, not nothing until it starts running."""
    answered, finish = asyncio.Event(), asyncio.Event()
    stale = {"id": "2", "status": "MODAL", "progress": "0%"}

    def listing(recorded: object) -> Reply:
        if finish.is_set():
            return Reply.json([stale, {"id": "2", "status": "SUCCESS", "progress": "100%"}])
        if answered.is_set():
            return Reply.json([stale, {"id": "2", "status": "SUBMITTED", "progress": "0%"}])
        return Reply.json([stale])

    def modal(recorded: object) -> Reply:
        answered.set()
        return Reply.json({"code": 1, "result": "2"})

    serve_grid(server)
    server.on("POST", "/mj/task/list-by-condition", listing)
    server.on("POST", "/mj/submit/modal", modal)
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        child = await remix(mj)
        waiting = asyncio.ensure_future(child.wait(timeout=10))
        await asyncio.wait_for(answered.wait(), 10)
        await until(lambda: child.task is not None and child.task.status is TaskStatus.SUBMITTED)
        finish.set()
        task = await asyncio.wait_for(waiting, 10)
    assert task.status is TaskStatus.SUCCESS


async def test_a_modal_step_with_a_new_id_is_followed(server: RecordingServer) -> None:
    buttons = [{"customId": "MJ::JOB::variation::1::h", "label": "V1"}]
    tasks = {
        "P": {"id": "P", "status": "SUCCESS", "progress": "100%", "buttons": buttons},
        "A": {"id": "A", "status": "MODAL", "progress": "0%"},
        "B": {"id": "B", "status": "SUCCESS", "progress": "100%", "imageUrl": "http://x/b.png"},
    }

    def listing(recorded: Recorded) -> Reply:
        ids = recorded.json["ids"]
        return Reply.json([tasks[i] for i in ids if i in tasks])

    server.add("GET", "/mj/task/P/fetch", Reply.json(tasks["P"]))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "A"}))
    server.add("POST", "/mj/submit/modal", Reply.json({"code": 1, "result": "B"}))
    server.on("POST", "/mj/task/list-by-condition", listing)
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        parent = mj.handle("P")
        await parent.refresh()
        child = await parent.variation(1, prompt="remixed")
        first = await child.wait(timeout=5)
        again = await child.wait(timeout=5)
    assert first.id == again.id == "B"
    assert len(server.calls("POST", "/mj/submit/modal")) == 1



async def test_a_wait_whose_modal_answer_hangs_ends_at_its_deadline(
    server: RecordingServer,
) -> None:
    """The wait's deadline covers the modal step it sends on the way."""
    serve_grid(server)
    server.add("POST", "/mj/task/list-by-condition",
               Reply.json([{"id": "2", "status": "MODAL", "progress": "0%"}]))
    server.add("POST", "/mj/submit/modal", Reply(hang=30))
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        child = await remix(mj)
        with pytest.raises(TaskTimeout) as info:
            await asyncio.wait_for(child.wait(timeout=0.5), 10)
    assert info.value.task_id == "2"
    assert len(server.calls("POST", "/mj/submit/modal")) == 1


async def test_a_modal_answer_survives_a_refused_modal_step(emulated: Emulated) -> None:
    async with emulated(
        "new-api",
        emulator={"account_remix": True, "relay_refresh_interval": 0},
        retry=RetryPolicy.never(),
    ) as (emu, mj):
        child = await (await mj.imagine("grid")).variation(1, prompt="grid remixed")
        emu.faults.add(FaultRule("submit/modal", "status", status=429, times=1))
        with pytest.raises(RateLimitError):
            await child.wait(timeout=10)
        assert (await child.wait(timeout=10)).status is TaskStatus.SUCCESS



async def test_a_modal_step_met_by_a_5xx_is_never_sent_again(emulated: Emulated) -> None:
    # A 5xx may come after the server took the step (and billed it).
    async with emulated(
        "new-api",
        emulator={"account_remix": True, "relay_refresh_interval": 0},
        retry=RetryPolicy.never(),
    ) as (emu, mj):
        child = await (await mj.imagine("grid")).variation(1, prompt="grid remixed")
        emu.faults.add(FaultRule("submit/modal", "status", status=503, times=1))
        with pytest.raises(ServerError):
            await child.wait(timeout=10)
        with pytest.raises(ModalRequired):
            await child.wait(timeout=10)
        assert emu.stats.requests["submit/modal"] == 1



async def test_custom_zoom_prompt_carries_zoom_and_aspect_ratio(server: RecordingServer) -> None:
    upscaled = {"id": "1", "status": "SUCCESS", "progress": "100%",
                "properties": {"finalPrompt": "a cat --v 6.1"},
                "buttons": [{"customId": "MJ::CustomZoom::h", "label": "Custom Zoom"}]}
    server.add("GET", "/mj/task/1/fetch", Reply.json(upscaled))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 21, "result": "2"}))
    server.add("POST", "/mj/submit/modal", Reply.json({"code": 1, "result": "2"}))
    async with MidjourneySession(server.url, KEY, provider="trueai", **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        await parent.zoom_out(1.8)
    [modal] = server.calls("POST", "/mj/submit/modal")
    assert modal.json["prompt"] == "a cat --v 6.1 --zoom 1.8 --ar 1:1"
