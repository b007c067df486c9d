"""Opening, closing and reopening a session: waiters woken, resources freed."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from mj_support import KEY, Emulated, until

from midjourney_async import (
    ConfigurationError,
    MidjourneySession,
    RetryPolicy,
    SessionClosed,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async.testing import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


async def test_close_wakes_waiters_and_the_session_can_reopen() -> None:
    async with Emulator() as emu:
        emu.rules.never_finish("hang")
        mj = MidjourneySession(emu.base_url, emu.api_key, **FAST)
        async with mj:
            handle = await mj.imagine("hang on")
            waiter = asyncio.ensure_future(handle.wait(timeout=30))
            await until(lambda: handle._state.waiters == 1)
        with pytest.raises(SessionClosed):
            await asyncio.wait_for(waiter, 5)
        with pytest.raises(SessionClosed):
            await handle.wait(timeout=30)
        async with mj:
            task = await (await mj.imagine("again")).wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS



async def test_failed_open_closes_the_http_session() -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    try:
        mj = MidjourneySession("http://127.0.0.1:1", KEY, webhook=WebhookConfig(port=port))
        with pytest.raises(ConfigurationError):
            await mj.open()
        assert mj._transport._client is None
    finally:
        blocker.close()
        await blocker.wait_closed()



async def test_states_of_forgotten_handles_are_freed(emulated: Emulated) -> None:
    async with emulated(emulator={"concurrency": None, "queue_size": None}) as (_emu, mj):
        kept = await mj.imagine("kept")
        for i in range(20):
            await mj.imagine(f"fire and forget {i}")
        gc.collect()
        assert list(mj._table.states) == [kept.id]
