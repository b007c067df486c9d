"""The callback receiver under hostile peers: forged states, idle and trickling connections.

Every test drives a real receiver on 127.0.0.1 through real sockets, against the
emulator, and waits on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from mj_support import until

from midjourney_async import (
    MidjourneySession,
    ModalRequired,
    RetryPolicy,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async._webhook import WebhookReceiver
from midjourney_async.testing import Emulator

NEVER = 3600.0  # a poll interval no test lives long enough to see
STILL = 1e-6  # an emulator speed at which no task moves until complete_all()


@asynccontextmanager
async def hooked(
    profile: str = "midjourney-proxy",
    *,
    config: WebhookConfig | None = None,
    emulator: dict[str, Any] | None = None,
    **session: Any,
) -> AsyncIterator[tuple[Emulator, MidjourneySession, WebhookReceiver]]:
    async with Emulator(profile=profile, **(emulator or {})) as emu, MidjourneySession(
        emu.base_url,
        emu.api_key,
        provider=profile,
        retry=RetryPolicy.without_waits(),
        webhook=config or WebhookConfig(poll_interval=NEVER),
        **session,
    ) as mj:
        receiver = mj._webhook
        assert receiver is not None
        yield emu, mj, receiver


async def post(url: str, body: bytes) -> int:
    async with aiohttp.ClientSession() as http, http.post(
        url, data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        return resp.status


# -- MODAL is confirmed like every other state that ends a wait ---------------


async def test_forged_modal_callback_neither_ends_a_wait_nor_frees_the_slot() -> None:
    async with hooked(emulator={"speed": STILL}, max_in_flight=1) as (emu, mj, receiver):
        handle = await mj.imagine("held in place")
        waiting = asyncio.ensure_future(handle.wait(timeout=30))
        second = asyncio.ensure_future(mj.imagine("waits for the slot"))
        url = mj.webhook_url
        assert url is not None
        forged = json.dumps({"id": handle.id, "status": "MODAL", "progress": "0%"}).encode()
        try:
            assert await post(url, forged) == 200
            # The claim is checked with one fetch; the server says the task still runs.
            await until(lambda: receiver.stats.confirms == 1 and not receiver._confirming)
            assert emu.stats.requests["task/fetch"] == 1
            assert not waiting.done(), "a forged MODAL ended the wait"
            assert mj._slots is not None and mj._slots.holds(handle.id), "the slot was freed"
            assert not second.done()
            assert emu.stats.requests["submit/imagine"] == 1
            assert handle.task is None or handle.task.status is not TaskStatus.MODAL

            # The real end still comes through, and frees the slot for the next submit.
            await emu.complete_all()
            task = await asyncio.wait_for(waiting, 10)
            assert task.status is TaskStatus.SUCCESS
            later = await asyncio.wait_for(second, 10)
            assert later.id != handle.id
        finally:
            waiting.cancel()
            second.cancel()
            await asyncio.gather(waiting, second, return_exceptions=True)


async def test_a_real_modal_callback_still_ends_the_wait_after_its_fetch() -> None:
    async with hooked("trueai", emulator={"concurrency": None, "queue_size": None}) as (
        emu,
        mj,
        receiver,
    ):
        up = await (await mj.imagine("a forest")).upscale(1)
        child = await up.press("Custom Zoom")
        with pytest.raises(ModalRequired):
            await child.wait(timeout=30)
        assert receiver.stats.confirms >= 1
    assert emu.stats.requests["task/fetch"] >= 1
