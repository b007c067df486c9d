"""Webhook callbacks: they wake waiters early, and nobody can forge their way in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from mj_support import KEY, Emulated, sample_bytes, until

from midjourney_async import (
    DecodeError,
    MidjourneySession,
    RetryPolicy,
    TaskStatus,
    WebhookConfig,
    parse_notification,
)
from midjourney_async._models import STATUS_RANK
from midjourney_async.testing import Emulator

NEVER = 3600.0  # a poll interval no test lives long enough to see


@asynccontextmanager
async def hooked(
    profile: str = "midjourney-proxy",
    *,
    config: WebhookConfig | None = None,
    emulator: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Emulator, MidjourneySession]]:
    async with Emulator(profile=profile, **(emulator or {})) as emu, MidjourneySession(
        emu.base_url,
        emu.api_key,
        provider=profile,
        retry=RetryPolicy.without_waits(),
        webhook=config or WebhookConfig(poll_interval=NEVER),
    ) as mj:
        yield emu, mj


async def test_callback_wakes_wait_before_any_poll() -> None:
    async with hooked() as (emu, mj):
        handle = await mj.imagine("wake me by callback")
        task = await handle.wait(timeout=30)
        receiver = mj._webhook
        assert receiver is not None
        confirms = receiver.stats.confirms
    assert task.status is TaskStatus.SUCCESS
    assert mj.tracker_stats.list_requests == 0, "no poll tick came due"
    assert emu.stats.webhooks_sent >= 2
    # The terminal callback was confirmed with exactly the fetches the receiver made.
    assert confirms >= 1
    assert emu.stats.requests["task/fetch"] == confirms


async def test_trusted_callbacks_need_no_fetch() -> None:
    config = WebhookConfig(poll_interval=NEVER, trust_callbacks=True)
    async with hooked(config=config) as (emu, mj):
        task = await (await mj.imagine("trust the callback")).wait(timeout=30)
    assert task.status is TaskStatus.SUCCESS
    assert emu.stats.requests["task/fetch"] == 0
    assert emu.stats.requests["task/list-by-condition"] == 0


async def test_duplicate_and_reordered_callbacks_never_move_backwards() -> None:
    async with hooked(emulator={"speed": 200.0}) as (emu, mj):
        emu.webhooks.duplicate_rate = 1.0
        emu.webhooks.reorder = 0.5
        handle = await mj.imagine("shuffled callbacks")
        snapshots = [t async for t in handle.updates()]
    ranks = [STATUS_RANK.get(t.status, 2) for t in snapshots]
    assert ranks == sorted(ranks)
    progress = [t.progress_percent or 0 for t in snapshots if t.status == "IN_PROGRESS"]
    assert progress == sorted(progress)
    assert snapshots[-1].status is TaskStatus.SUCCESS
    assert emu.stats.webhooks_duplicated > 0
    assert mj.tracker_stats.snapshots_dropped > 0, "the duplicates were dropped"


async def post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as http, http.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        return resp.status


async def test_forged_oversized_garbage_and_unknown_callbacks_change_nothing() -> None:
    config = WebhookConfig(poll_interval=NEVER, max_body=4096)
    async with hooked(config=config) as (emu, mj):
        emu.rules.never_finish("hold")
        handle = await mj.imagine("hold still")
        # Let the task reach the progress it hangs at, so no legitimate change is left.
        await emu.wait_until(lambda: emu.tasks[handle.id].progress == "46%")
        await handle.refresh()
        before = handle.task
        assert before is not None
        url = mj.webhook_url
        assert url is not None
        forged = json.dumps(
            {"id": handle.id, "status": "SUCCESS", "progress": "100%", "imageUrl": "http://x/y"}
        ).encode()
        base, token = url.rsplit("/", 1)

        assert await post(f"{base}/{'x' * len(token)}", forged) == 404
        assert await post(url, forged + b" " * 5000) == 413
        assert await post(url, b"{not json") == 400
        unknown = json.dumps({"id": "9999999999999999", "status": "SUCCESS"}).encode()
        assert await post(url, unknown) == 404
        # A right token with a forged terminal state is checked with a fetch: the
        # server says the task still runs, so nothing changes.
        assert await post(url, forged) == 200
        receiver = mj._webhook
        assert receiver is not None
        # The emulator's wait_until re-checks only on task changes; these are ours.
        await until(lambda: receiver.stats.confirms == 1 and not receiver._confirming)

        stats = receiver.stats
        assert (stats.rejected_token, stats.rejected_size, stats.rejected_body) == (1, 1, 1)
        assert stats.rejected_unknown == 1
        assert handle.task is not None
        assert handle.task.status is not TaskStatus.SUCCESS
        assert handle.task.image_url == before.image_url


def test_parse_notification_reads_both_dialects() -> None:
    proxy = parse_notification(sample_bytes("proxy-fetch-imagine-success.json"))
    assert proxy.id == "1730621826053455" and proxy.status is TaskStatus.SUCCESS
    omg = parse_notification(sample_bytes("ohmygpt-query-success.json"), "ohmygpt")
    assert omg.id == "20" and [b.label for b in omg.buttons][:2] == ["U1", "U2"]
    with pytest.raises(DecodeError):
        parse_notification(b"[1, 2, 3]")
    with pytest.raises(DecodeError):
        parse_notification(b"")


async def test_session_notify_feeds_the_same_state_machine(emulated: Emulated) -> None:
    async with emulated(poll_interval=NEVER) as (emu, mj):
        handle = await mj.imagine("fed by hand")
        await emu.complete_all()
        done = parse_notification(emu.live_json(emu.tasks[handle.id]))
        stale = parse_notification(
            json.dumps({"id": handle.id, "status": "IN_PROGRESS", "progress": "15%"}).encode()
        )
        assert mj.notify(done) is True
        assert mj.notify(stale) is False
        assert (await handle.wait(timeout=5)).status is TaskStatus.SUCCESS


async def test_webhook_body_in_several_segments_is_read_whole(emulated: Emulated) -> None:
    config = WebhookConfig(poll_interval=3600, trust_callbacks=True)
    async with emulated(
        "trueai", emulator={"notify_hook_enabled": False}, webhook=config
    ) as (emu, mj):
        emu.rules.never_finish("cat")
        handle = await mj.imagine("a cat")
        body = json.dumps(
            {"id": handle.id, "status": "IN_PROGRESS", "progress": "50%", "pad": "x" * 4000}
        ).encode()
        assert mj.webhook_url is not None
        url = urlsplit(mj.webhook_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        head = (
            f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body[:1000])
        await writer.drain()
        await asyncio.sleep(0.1)  # a second segment, as a real network delivers it
        writer.write(body[1000:])
        await writer.drain()
        status_line = (await reader.read()).split(b"\r\n")[0]
        writer.close()
        assert b" 200 " in status_line
        assert handle.task is not None and handle.task.progress == "50%"



def test_relays_that_strip_callbacks_keep_polling_at_the_normal_pace() -> None:
    relay = MidjourneySession("http://127.0.0.1:9", KEY, provider="new-api", poll_interval=2,
                              webhook=WebhookConfig())
    java = MidjourneySession("http://127.0.0.1:9", KEY, poll_interval=2, webhook=WebhookConfig())
    assert relay._tracker.interval == 2
    assert java._tracker.interval == 30
