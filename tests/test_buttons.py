"""Button helpers end to end against the emulator, including trueai's MODAL flow."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mj_support import KEY, Emulated, RecordingServer, Reply, mask_png

from midjourney_async import (
    ButtonNotFound,
    InvalidArgument,
    MidjourneySession,
    ModalRequired,
    RetryPolicy,
    TaskAction,
    TaskHandle,
    TaskStatus,
)
from midjourney_async.testing import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}
DONE = {"id": "1", "status": "SUCCESS", "progress": "100%", "buttons": [
    {"customId": "MJ::BOOKMARK::h", "emoji": "❤️", "label": ""},
]}


@asynccontextmanager
async def trueai() -> AsyncIterator[tuple[Emulator, MidjourneySession]]:
    async with (
        Emulator(profile="trueai", concurrency=None, queue_size=None) as emu,
        MidjourneySession(
            emu.base_url,
            emu.api_key,
            provider="trueai",
            poll_interval=0.01,
            retry=RetryPolicy.without_waits(),
        ) as mj,
    ):
        yield emu, mj


async def pressed(emu: Emulator, child: TaskHandle) -> str:
    """The customId the emulator recorded for the child task."""
    return str(emu.tasks[child.id].custom_id)


async def test_grid_buttons() -> None:
    async with trueai() as (emu, mj):
        grid = await mj.imagine("a castle")
        u2 = await grid.upscale(2)
        v3 = await grid.variation(3)
        rr = await grid.reroll()
        results = await mj.wait_all([u2, v3, rr], timeout=30)
        custom = [await pressed(emu, h) for h in (u2, v3, rr)]
    assert [t.action for t in results] == [
        TaskAction.UPSCALE,
        TaskAction.VARIATION,
        TaskAction.IMAGINE,
    ]
    assert "::upsample::2::" in custom[0]
    assert "::variation::3::" in custom[1]
    assert "::reroll::0::" in custom[2]
    assert all(emu.stats.submits_by_custom_id[c] == 1 for c in custom)
    assert all(t.status is TaskStatus.SUCCESS for t in results)


async def test_upscale_buttons_zoom_pan_vary_and_hd() -> None:
    async with trueai() as (emu, mj):
        grid = await mj.imagine("a lighthouse")
        up = await grid.upscale(1)
        await up
        children = {
            "zoom2": await up.zoom_out(2),
            "zoom15": await up.zoom_out(1.5),
            "left": await up.pan("left"),
            "down": await up.pan("down"),
            "subtle": await up.variation("subtle"),
            "strong": await up.variation("strong"),
            "hd": await up.upscale("subtle"),
            "emoji": await up.press("➡️"),
        }
        await mj.wait_all(children.values(), timeout=30)
        custom = {k: await pressed(emu, h) for k, h in children.items()}
    assert "::Outpaint::50::" in custom["zoom2"]
    assert "::Outpaint::75::" in custom["zoom15"]
    assert "::pan_left::" in custom["left"]
    assert "::pan_down::" in custom["down"]
    assert "::low_variation::" in custom["subtle"]
    assert "::high_variation::" in custom["strong"]
    assert "::upsample_" in custom["hd"] and "subtle" in custom["hd"]
    assert "::pan_right::" in custom["emoji"]


async def test_vary_region_submits_the_modal_step_itself() -> None:
    async with trueai() as (emu, mj):
        up = await (await mj.imagine("a garden")).upscale(1)
        region = await up.vary_region(mask_png(), prompt="a fountain")
        task = await region.wait(timeout=30)
    assert task.status is TaskStatus.SUCCESS
    assert emu.stats.requests["submit/modal"] == 1
    assert emu.stats.submits_by_code[21] == 1
    assert "a fountain" in (emu.tasks[region.id].final_prompt or "")


async def test_custom_zoom_goes_through_modal_with_zoom_parameter() -> None:
    async with trueai() as (emu, mj):
        up = await (await mj.imagine("a desert road --ar 1:1")).upscale(1)
        zoomed = await up.zoom_out(1.8)
        task = await zoomed.wait(timeout=30)
    assert task.status is TaskStatus.SUCCESS
    assert emu.stats.requests["submit/modal"] == 1
    assert "--zoom 1.8" in (emu.tasks[zoomed.id].final_prompt or "")


async def test_press_without_modal_input_raises_modal_required_then_modal_finishes() -> None:
    async with trueai() as (_emu, mj):
        up = await (await mj.imagine("a forest")).upscale(1)
        child = await up.press("Custom Zoom")
        assert child.submit_code == 21
        with pytest.raises(ModalRequired) as info:
            await child.wait(timeout=30)
        assert info.value.handle.id == child.id
        finished = await mj.modal(child.id, prompt="a forest --zoom 1.5 --ar 1:1")
        task = await finished.wait(timeout=30)
    assert finished.id == child.id
    assert task.status is TaskStatus.SUCCESS


async def test_missing_button_lists_what_the_task_has() -> None:
    async with trueai() as (emu, mj):
        grid = await mj.imagine("a river")
        with pytest.raises(ButtonNotFound) as info:
            await grid.pan("left")
        requests_before = emu.stats.requests["submit/action"]
    assert "U1" in info.value.available and "V4" in info.value.available
    assert "U1" in str(info.value)
    assert requests_before == 0


async def test_bad_button_arguments_send_nothing() -> None:
    async with trueai() as (emu, mj):
        grid = await mj.imagine("a mountain")
        calls: tuple[Callable[[], Awaitable[object]], ...] = (
            lambda: grid.upscale(5),
            lambda: grid.variation("medium"),
            lambda: grid.zoom_out(3),
            lambda: grid.pan("sideways"),  # type: ignore[arg-type]
            lambda: grid.vary_region(""),
        )
        for call in calls:
            with pytest.raises(InvalidArgument):
                await call()
        assert emu.stats.requests["submit/action"] == 0


async def test_new_api_relay_keeps_inpaint_modal(emulated: Emulated) -> None:
    async with emulated("new-api", emulator={"relay_refresh_interval": 0.01}) as (emu, mj):
        up = await (await mj.imagine("a harbour")).upscale(2)
        region = await up.vary_region(mask_png(), prompt="a sailing ship")
        task = await region.wait(timeout=30)
    assert task.status is TaskStatus.SUCCESS
    assert emu.stats.requests["submit/modal"] == 1


@pytest.mark.parametrize("profile", ["trueai", "new-api"])
async def test_remix_press_with_a_prompt_answers_the_modal_window(
    profile: str, emulated: Emulated
) -> None:
    async with emulated(
        profile, emulator={"account_remix": True, "relay_refresh_interval": 0.01}
    ) as (emu, mj):
        grid = await mj.imagine("a lighthouse")
        child = await grid.variation(2, prompt="a lighthouse in a storm")
        task = await child.wait(timeout=30)
        # Without a prompt no remix window is asked for: the press just runs.
        without = await (await grid.variation(3)).wait(timeout=30)
    assert task.status is TaskStatus.SUCCESS
    assert without.status is TaskStatus.SUCCESS
    assert emu.stats.requests["submit/modal"] == 1
    assert "storm" in (emu.tasks[child.id].final_prompt or "")
    pressed = [body for route, body in emu.received if route == "submit/action"]
    assert [b.get("enableRemix") for b in pressed] == [True, None]
    # trueai says "modal" in the submit code (21); new-api only in the task's status.
    assert emu.stats.submits_by_code[21] == (1 if profile == "trueai" else 0)


async def test_task_status_after_a_liked_parent_is_still_success(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply.json(DONE))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "1"}))
    async with MidjourneySession(server.url, KEY, max_in_flight=1, **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        liked = await parent.press("❤️")
        assert (await liked.wait(timeout=5)).status is TaskStatus.SUCCESS
