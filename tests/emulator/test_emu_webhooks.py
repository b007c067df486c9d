"""notifyHook callbacks: every change, unsigned, never retried, with chaos knobs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from emu_support import WireFactory


class Receiver:
    """A tiny callback server on 127.0.0.1 that records every POST body."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = status
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _hook(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook?token=t0k"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def states(self) -> list[tuple[str, str | None]]:
        return [(b["status"], b["progress"]) for b in self.bodies]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


async def test_callbacks_follow_every_change_in_order(
    wire: WireFactory, receiver: Receiver
) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox", notifyHook=receiver.url)
    await w.emu.wait_for(tid)
    await w.emu.webhooks.drain(timeout=5)
    assert receiver.states() == w.emu.tasks[tid].history[1:]  # NOT_START is never posted
    final = receiver.bodies[-1]
    assert final == await w.task(tid)  # same shape as fetch
    assert "Authorization" not in receiver.headers[0] and "X-Signature" not in receiver.headers[0]
    assert w.emu.stats.webhooks_sent == len(receiver.bodies) == 9


async def test_drop_rate_one_sends_nothing(wire: WireFactory, receiver: Receiver) -> None:
    w = await wire("trueai")
    w.emu.webhooks.drop_rate = 1.0
    tid = await w.imagine("fox", notifyHook=receiver.url)
    await w.emu.complete_all()
    await w.emu.webhooks.drain(timeout=5)
    assert receiver.bodies == []
    assert w.emu.stats.webhooks_dropped == len(w.emu.tasks[tid].history) - 1


async def test_duplicate_rate_one_sends_everything_twice(
    wire: WireFactory, receiver: Receiver
) -> None:
    w = await wire("trueai")
    w.emu.webhooks.duplicate_rate = 1.0
    tid = await w.imagine("fox", notifyHook=receiver.url)
    await w.emu.complete_all()
    await w.emu.webhooks.drain(timeout=5)
    expected = [s for s in w.emu.tasks[tid].history[1:] for _ in (0, 1)]
    assert receiver.states() == expected
    assert w.emu.stats.webhooks_duplicated == len(expected) // 2


async def test_reorder_delivers_stale_states_late(wire: WireFactory, receiver: Receiver) -> None:
    w = await wire("trueai")
    w.emu.webhooks.reorder = 1.0
    tid = await w.imagine("fox", notifyHook=receiver.url)
    await w.emu.complete_all()
    await w.emu.webhooks.drain(timeout=5)
    history = w.emu.tasks[tid].history[1:]
    assert sorted(receiver.states(), key=str) == sorted(history, key=str)
    assert receiver.states() != history
    assert w.emu.stats.webhooks_reordered > 0


async def test_non_local_hooks_are_refused(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    await w.imagine("fox", notifyHook="http://example.com/hook")
    await w.emu.complete_all()
    assert w.emu.stats.webhooks_sent == 0
    assert w.emu.stats.webhooks_refused == w.emu.stats.webhooks_dropped == 9


async def test_failing_receiver_is_not_retried(wire: WireFactory) -> None:
    receiver = Receiver(status=502)
    await receiver.start()
    try:
        w = await wire("midjourney-proxy-plus")
        tid = await w.imagine("fox", notifyHook=receiver.url)
        await w.emu.wait_for(tid)
        await w.emu.webhooks.drain(timeout=5)
        assert len(receiver.bodies) == 9
        assert w.emu.stats.webhooks_failed == 9
    finally:
        await receiver.close()


async def test_unreachable_receiver_is_counted(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox", notifyHook="http://127.0.0.1:9/hook")
    await w.emu.wait_for(tid)
    await w.emu.webhooks.drain(timeout=10)
    assert w.emu.stats.webhooks_failed == 9


async def test_ohmygpt_webhook_carries_query_data(wire: WireFactory, receiver: Receiver) -> None:
    w = await wire("ohmygpt")
    r = await w.call(
        "POST", "/api/v1/ai/draw/mj/imagine",
        data={"model": "midjourney", "prompt": "fox", "webhook": receiver.url},
    )
    task_id = r.json()["data"]
    await w.emu.complete_all()
    await w.emu.webhooks.drain(timeout=5)
    assert receiver.bodies[-1]["taskId"] == task_id
    assert receiver.bodies[-1]["status"] == "SUCCESS"
    assert receiver.bodies[-1]["webhookUrl"] == receiver.url
