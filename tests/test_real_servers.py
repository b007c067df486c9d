"""How the client copes with real servers, driven end to end against the emulator.

Each test switches on one behaviour of a real server (novicezk's open edition,
trueai's per-user caps, new-api's duplicate rows and refusals, dying image
links) and checks what a user of the client sees.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mj_support import mask_png

from midjourney_async import (
    AccountFilter,
    ConfigurationError,
    InvalidArgument,
    InvalidRequestError,
    MidjourneySession,
    NoChannelError,
    QueueFullError,
    QuotaExceeded,
    RemixDisabled,
    RetryPolicy,
    SubmitRejected,
    TaskAction,
    TaskNotFound,
    TaskStatus,
    UnsupportedOperation,
    WebhookConfig,
)
from midjourney_async._media import loopback_from_remote, on_base_url
from midjourney_async.testing import Emulator, ServerQuirks

OPEN = "midjourney-proxy-open"
PLUS = "midjourney-proxy-plus"


@asynccontextmanager
async def served(
    profile: str,
    *,
    retry: RetryPolicy | None = None,
    session: dict[str, Any] | None = None,
    **emu_kwargs: Any,
) -> AsyncIterator[tuple[Emulator, MidjourneySession]]:
    emu_kwargs.setdefault("concurrency", None)
    emu_kwargs.setdefault("queue_size", None)
    options: dict[str, Any] = {
        "provider": None,
        "poll_interval": 0.01,
        "retry": retry or RetryPolicy.without_waits(),
        **(session or {}),
    }
    async with Emulator(profile, **emu_kwargs) as emu:
        options["provider"] = options["provider"] or emu.provider
        async with MidjourneySession(emu.base_url, emu.api_key, **options) as mj:
            yield emu, mj


def routes(emu: Emulator) -> list[str]:
    return [route for route, _ in emu.received]


def sent(emu: Emulator, prompt: str) -> int:
    """Submit requests the emulator received for ``prompt``, accepted or not."""
    return sum(1 for _, body in emu.received if body.get("prompt") == prompt)


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait (bounded) for a condition the emulator's own waits cannot see (a refused submit)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- 1. novicezk's open edition: no buttons -------------------------------------------------


async def test_open_edition_u_v_and_reroll_go_through_change() -> None:
    async with served(OPEN) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        children = [
            await grid.upscale(2),
            await grid.variation(3),
            await grid.reroll(),
            await grid.press("V1"),
        ]
        tasks = await mj.wait_all(children, timeout=10)
    assert routes(emu)[1:] == ["submit/change"] * 4
    bodies = [body for _, body in list(emu.received)[1:]]
    assert [(b["action"], b.get("index")) for b in bodies] == [
        ("UPSCALE", 2), ("VARIATION", 3), ("REROLL", 1), ("VARIATION", 1)
    ]
    assert [t.action for t in tasks] == [
        TaskAction.UPSCALE, TaskAction.VARIATION, TaskAction.REROLL, TaskAction.VARIATION
    ]
    assert all(t.status is TaskStatus.SUCCESS for t in tasks)


async def test_open_edition_zoom_pan_vary_region_and_other_labels_send_nothing() -> None:
    async with served(OPEN) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        calls = (
            grid.zoom_out(2),
            grid.zoom_out(1.3),
            grid.pan("left"),
            grid.vary_region(mask_png()),
            grid.press("Vary (Strong)"),
            grid.upscale("subtle"),
        )
        for call in calls:
            with pytest.raises(UnsupportedOperation, match="only U1-U4, V1-V4 and reroll"):
                await call
    assert routes(emu) == ["submit/imagine"]


async def test_open_edition_changes_on_an_upscale_are_refused_before_sending() -> None:
    async with served(OPEN) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        up = await grid.upscale(1)
        await up.wait(timeout=10)
        sent = len(emu.received)
        for call in (up.upscale(2), up.variation(1), up.reroll(), up.press("U1")):
            with pytest.raises(UnsupportedOperation, match="refuses any change on an upscale"):
                await call
    assert len(emu.received) == sent


async def test_emulator_default_profile_is_the_open_edition() -> None:
    async with Emulator() as emu:
        assert emu.profile_info.name == OPEN


# -- 2. trueai's per-user caps and quotas -----------------------------------------------------


@pytest.mark.parametrize("op", ["imagine", "describe"])
async def test_trueai_concurrency_cap_is_queue_full_whatever_the_shape(op: str) -> None:
    async with served(
        "trueai", speed="realtime", retry=RetryPolicy.never(),
        quirks=ServerQuirks(user_core_size=1),
    ) as (emu, mj):
        await mj.imagine("first")
        with pytest.raises(QueueFullError, match="并发数已达上限"):
            if op == "imagine":
                await mj.imagine("second")
            else:
                await mj.describe(mask_png())
        assert len(emu.tasks) == 1


async def test_trueai_queue_cap_is_queue_full() -> None:
    async with served(
        "trueai", speed="realtime", retry=RetryPolicy.never(),
        quirks=ServerQuirks(user_queue_size=1),
    ) as (_, mj):
        await mj.imagine("first")
        with pytest.raises(QueueFullError, match="队列数已达上限"):
            await mj.shorten("second")


async def test_trueai_concurrency_cap_is_retried_within_the_submit_budget() -> None:
    retry = RetryPolicy(max_tries=50, max_time=20, base_delay=0.02, max_delay=0.05)
    async with served(
        "trueai", speed="realtime", retry=retry, quirks=ServerQuirks(user_core_size=1)
    ) as (emu, mj):
        await mj.imagine("first")
        second = asyncio.ensure_future(mj.imagine("second"))
        await until(lambda: sent(emu, "second") >= 2)
        await emu.complete_all()
        handle = await asyncio.wait_for(second, 10)
    assert emu.tasks[handle.id].prompt == "second"
    assert emu.stats.submits_by_prompt["second"] == 1


@pytest.mark.parametrize(
    ("quirks", "message"),
    [
        (ServerQuirks(user_day_limit=1), "用户今日绘图次数已达上限"),
        (ServerQuirks(user_day_limit=1, guest=True), "访客今日绘图次数已达上限"),
        (ServerQuirks(user_total_limit=1), "总绘图次数已达上限"),
    ],
)
async def test_trueai_quota_is_quota_exceeded_and_never_retried(
    quirks: ServerQuirks, message: str
) -> None:
    async with served("trueai", quirks=quirks) as (emu, mj):
        await mj.imagine("one")
        await mj.imagine("two")
        with pytest.raises(QuotaExceeded, match=message):
            await mj.imagine("three")
        with pytest.raises(QuotaExceeded):
            await mj.shorten("three")
    assert sent(emu, "three") == 2  # one each, no retry
    assert not issubclass(QuotaExceeded, QueueFullError)


async def test_trueai_too_long_state_is_invalid_request() -> None:
    async with served("trueai") as (emu, mj):
        for call in (mj.imagine("no", state="s" * 256), mj.shorten("no", state="s" * 256)):
            with pytest.raises(InvalidRequestError, match="State参数过长"):
                await call
        assert not emu.tasks


# -- 3. new-api's duplicate rows after a modal step ---------------------------------------------


@pytest.mark.parametrize("variant", ["stale", "not_found"])
async def test_new_api_duplicate_rows_after_a_modal_step_end_the_wait(variant: str) -> None:
    async with served(
        "new-api",
        account_remix=True,
        relay_refresh_interval=0,
        quirks=ServerQuirks(relay_duplicate_fetch=variant),  # type: ignore[arg-type]
        session={"not_found_grace": 0.0},
    ) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        child = await grid.variation(1, prompt="a red fox")
        # The relay's list stops answering: the poller reads the id by fetch alone,
        # which answers the stale MODAL row or task_no_found until the list is back.
        emu.add_fault("task/list-by-condition", "status", status=404, times=8)
        task = await child.wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS
        assert emu.stats.requests["task/fetch"] >= 2


# -- 4. REROLL carries an index -------------------------------------------------------------------


async def test_change_reroll_sends_index_1_and_new_api_takes_it() -> None:
    async with served("new-api", relay_refresh_interval=0) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        rerolled = await (await mj.change(grid.id, "REROLL")).wait(timeout=10)
    assert emu.received[-1] == ("submit/change", {"taskId": grid.id, "action": "REROLL",
                                                  "index": 1})
    assert rerolled.status is TaskStatus.SUCCESS


# -- 5. remix off on the account -------------------------------------------------------------------


async def test_remix_prompt_on_an_account_without_remix_is_remix_disabled() -> None:
    async with served("trueai", account_remix=False) as (emu, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        with pytest.raises(RemixDisabled, match="remix is off on the account") as info:
            await grid.variation(1, prompt="a red fox")
    assert isinstance(info.value, InvalidRequestError)
    assert emu.stats.submits_by_action["VARIATION"] == 0


# -- 6. new-api's own OpenAI-shaped refusals -------------------------------------------------------


@pytest.mark.parametrize("style", ["openai", "chinese", "mixed"])
async def test_new_api_unknown_action_is_invalid_request_naming_the_button(style: str) -> None:
    async with served(
        "new-api", relay_refresh_interval=0,
        quirks=ServerQuirks(relay_error_style=style),  # type: ignore[arg-type]
    ) as (_, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        with pytest.raises(InvalidRequestError, match="MJ::Job::PicReader::1"):
            await mj.action(grid.id, "MJ::Job::PicReader::1")


async def test_new_api_without_a_channel_says_the_relay_has_no_upstream() -> None:
    async with served("zhongzhuan", quirks=ServerQuirks(relay_no_channel=True)) as (emu, mj):
        with pytest.raises(NoChannelError, match="no upstream channel for this model"):
            await mj.imagine("a fox")
    assert emu.stats.requests["submit/imagine"] == 1  # not retried


# -- 7. novicezk's save race


@pytest.mark.parametrize(("profile", "code"), [(OPEN, 4), (OPEN, 3), (PLUS, 4)])
async def test_press_right_after_success_is_sent_again_through_the_save_race(
    profile: str, code: int
) -> None:
    async with served(
        profile, speed="realtime",
        quirks=ServerQuirks(save_race_window=1.0, save_race_code=code),  # type: ignore[arg-type]
    ) as (emu, mj):
        grid = await mj.imagine("a fox")
        await emu.complete_all()
        await grid.wait(timeout=10)
        up = await grid.upscale(1)
        await emu.complete_all()
        task = await up.wait(timeout=10)
    route = "submit/change" if profile == OPEN else "submit/action"
    assert routes(emu).count(route) >= 2  # refused at first, then accepted
    assert emu.stats.submits_by_action["UPSCALE"] == 1
    assert task.status is TaskStatus.SUCCESS


async def test_save_race_retry_gives_up_after_about_three_seconds() -> None:
    async with served(
        OPEN, speed="realtime", quirks=ServerQuirks(save_race_window=60.0)
    ) as (emu, mj):
        grid = await mj.imagine("a fox")
        await emu.complete_all()
        await grid.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(InvalidRequestError, match="关联任务状态错误"):
            await grid.upscale(1)
        took = time.monotonic() - started
    assert 2.0 < took < 6.0
    assert emu.stats.submits_by_action["UPSCALE"] == 0


# -- 8. small misreads


async def test_queue_position_survives_new_api_rewriting_22_to_1() -> None:
    async with served(
        "new-api", speed="realtime", concurrency=1, queue_size=5, relay_refresh_interval=0
    ) as (_, mj):
        await mj.imagine("runs")
        await mj.imagine("waits 0")
        third = await mj.imagine("waits 1")
    assert third.submit_code == 1
    assert third.queue_position == 1


@pytest.mark.parametrize("message", ["未找到 seed", "无可用的账号实例"])
async def test_trueai_image_seed_failure_is_not_task_not_found(message: str) -> None:
    async with served("trueai", quirks=ServerQuirks(image_seed_failure=message)) as (_, mj):
        grid = await mj.imagine("a fox")
        await grid.wait(timeout=10)
        with pytest.raises(SubmitRejected, match=message) as info:
            await mj.image_seed(grid.id)
    assert not isinstance(info.value, TaskNotFound)


async def test_trueai_video_extend_without_prompt_is_refused_before_sending() -> None:
    async with served("trueai") as (emu, mj):
        video = await mj.video("waves", image=mask_png())
        await video.wait(timeout=10)
        sent = len(emu.received)
        with pytest.raises(InvalidArgument, match="prompt must not be empty"):
            await mj.video(extend_task_id=video.id, index=1)
        assert len(emu.received) == sent
        more = await mj.video("more waves", extend_task_id=video.id, index=1)
        assert (await more.wait(timeout=10)).status is TaskStatus.SUCCESS


# -- 9. niji and account selection


async def test_niji_bot_is_sent_on_imagine_describe_and_blend() -> None:
    async with served("trueai") as (emu, mj):
        handles = [
            await mj.imagine("a fox", bot="niji"),
            await mj.describe(mask_png(), bot="niji"),
            await mj.blend([mask_png(), mask_png()], bot="niji"),
        ]
        plain = await mj.imagine("a cat")
    assert [body.get("botType") for _, body in emu.received] == ["NIJI_JOURNEY"] * 3 + [None]
    assert [emu.tasks[h.id].bot_type for h in handles] == ["NIJI_JOURNEY"] * 3
    assert emu.tasks[plain.id].bot_type == "MID_JOURNEY"


async def test_account_filter_is_sent_as_trueai_and_the_plus_edition_read_it() -> None:
    async with served("trueai") as (emu, mj):
        wanted = AccountFilter(instance_id=emu.instance_id, modes=["fast"], remix=True)
        handle = await mj.imagine("a fox", account_filter=wanted)
        expected = {"instanceId": emu.instance_id, "modes": ["FAST"], "remix": True}
        assert emu.received[-1][1]["accountFilter"] == expected
        assert emu.tasks[handle.id].account_filter == expected
    async with served(PLUS) as (emu, mj):
        wanted = AccountFilter(instance_id=emu.instance_id, modes=["relax"])
        handle = await mj.imagine("a fox", account_filter=wanted)
        assert emu.tasks[handle.id].account_filter == {
            "instanceId": emu.instance_id, "modes": ["RELAX"]
        }
        assert "accountFilter" not in emu.received[-1][1]


async def test_presets_offer_only_their_documented_speed_modes() -> None:
    with pytest.raises(ConfigurationError, match="fast, relax"):
        MidjourneySession("http://127.0.0.1:9", "k", provider="openai-hk", mode="turbo")
    for name in ("zhongzhuan", "pro365"):
        with pytest.raises(ConfigurationError, match="documents no speed modes"):
            MidjourneySession("http://127.0.0.1:9", "k", provider=name, mode="fast")
    # mode_prefix= still bends any preset, and the relay then serves the mode route.
    async with served(
        "zhongzhuan",
        relay_refresh_interval=0,
        session={"mode": "fast", "mode_prefix": "/{mode}"},
    ) as (_, mj):
        task = await (await mj.imagine("a fox")).wait(timeout=10)
    assert task.status is TaskStatus.SUCCESS


# -- 10. image links that die


async def test_download_of_an_expired_link_fetches_the_task_for_new_links(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served("trueai", quirks=ServerQuirks(image_link_uses=1)) as (_, mj):
        task = await (await mj.imagine("a fox")).wait(timeout=10)
        first = await mj.download(task, tmp_path / "a")
        with caplog.at_level(logging.WARNING, logger="midjourney_async"):
            second = await mj.download(task, tmp_path / "b")  # the same, now dead, links
    assert len(first) == len(second) == 5
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in second)
    assert any("fresh" in r.getMessage() for r in caplog.records)


async def test_relay_link_on_a_wrong_host_is_fetched_from_the_base_url(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with served(
        "new-api", relay_refresh_interval=0,
        quirks=ServerQuirks(relay_image_host="http://localhost:3000"),
    ) as (_, mj):
        task = await (await mj.imagine("a fox")).wait(timeout=10)
        assert task.image_url == f"http://localhost:3000/mj/image/{task.id}"
        with caplog.at_level(logging.WARNING, logger="midjourney_async"):
            [path] = await mj.download(task, tmp_path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert any("base URL" in r.getMessage() for r in caplog.records)


# -- 11. webhooks that cannot arrive


async def test_webhook_on_loopback_toward_a_remote_server_warns_and_keeps_polling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # TEST-NET-1 (192.0.2.0/24) is never routed; opening a session sends nothing there.
    remote = MidjourneySession(
        "http://192.0.2.1", "k", provider="trueai", poll_interval=2.0, webhook=True
    )
    with caplog.at_level(logging.WARNING, logger="midjourney_async"):
        async with remote:
            assert remote.settings.tracker_interval == 2.0
    warnings = [r.getMessage() for r in caplog.records if "cannot reach" in r.getMessage()]
    assert len(warnings) == 1
    # With a public URL, or with the server on this machine, callbacks can arrive.
    public = WebhookConfig(public_url="https://me.example/mj")
    reachable = MidjourneySession(
        "http://192.0.2.1", "k", provider="trueai", poll_interval=2.0, webhook=public
    )
    assert reachable.settings.tracker_interval == 30.0


def test_loopback_links_from_a_remote_server_are_never_taken_as_given() -> None:
    # A server that is not on this machine cannot host its images here: its own
    # /mj/image route is read from the base URL, any other such link is refused.
    remote = "https://relay.example"
    assert loopback_from_remote("http://localhost:3000/mj/image/7", remote)
    assert loopback_from_remote("http://127.0.0.1/a.png", remote)
    assert not loopback_from_remote("https://cdn.example/a.png", remote)
    assert not loopback_from_remote("http://localhost:3000/a.png", "http://127.0.0.1:8080")
    assert on_base_url("http://localhost:3000/mj/image/7?ex=1", remote) == (
        "https://relay.example/mj/image/7?ex=1"
    )
    assert on_base_url("https://relay.example/mj/image/7", remote) is None
    assert on_base_url("http://localhost:3000/a.png", remote) is None
