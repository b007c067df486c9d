"""Bugs found in review, each shown by the test that failed before its fix."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from mj_support import KEY, LOCAL_HOSTS, RecordingServer, Reply, mask_png, until

from midjourney_async import (
    AuthenticationError,
    ConfigurationError,
    MidjourneySession,
    ModalRequired,
    NotFoundError,
    QueueFullError,
    RateLimitError,
    RequestTimeout,
    RetryPolicy,
    ServerError,
    SessionClosed,
    Task,
    TaskStatus,
    TaskTimeout,
    WebhookConfig,
)
from midjourney_async._journal import JournalEntry
from midjourney_async.testing import Emulator, FaultRule

FAST = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


async def test_modal_press_under_max_in_flight_does_not_deadlock() -> None:
    async with Emulator("trueai", concurrency=None, queue_size=None) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", max_in_flight=1, **FAST
    ) as mj:
        up = await (await mj.imagine("a garden")).upscale(1)
        await up
        region = await asyncio.wait_for(up.vary_region(mask_png(), prompt="a fountain"), 10)
        task = await region.wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS
        # The slot came back: another submit goes through.
        assert (await asyncio.wait_for(mj.imagine("next"), 10)).id


async def test_an_abandoned_modal_task_gives_its_slot_back() -> None:
    async with Emulator("trueai", concurrency=None, queue_size=None) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", max_in_flight=1, **FAST
    ) as mj:
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


async def test_a_poll_during_the_modal_step_does_not_bring_modal_back() -> None:
    async with Emulator("trueai", concurrency=None, queue_size=None) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", max_in_flight=5, **FAST
    ) as mj:
        up = await (await mj.imagine("a desert")).upscale(1)
        await up
        child = await up.press("Custom Zoom")
        emu.faults.add(FaultRule("submit/modal", "latency", latency=0.3))
        done = await mj.modal(child.id, prompt="a desert --zoom 1.5 --ar 1:1")
        task = await done.wait(timeout=10)
        assert task.status is TaskStatus.SUCCESS


async def test_list_endpoint_missing_falls_back_to_fetch(server: RecordingServer) -> None:
    done = {"id": "7", "status": "SUCCESS", "progress": "100%"}
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", "/mj/task/list-by-condition", Reply.json({"error": "Not Found"}, 404))
    server.add("GET", "/mj/task/7/fetch", Reply.json(done))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        task = await (await mj.imagine("x")).wait(timeout=5)
    assert task.status is TaskStatus.SUCCESS
    assert len(server.calls("POST", "/mj/task/list-by-condition")) == 1


async def test_a_rejected_key_ends_waits_with_the_auth_error(server: RecordingServer) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", "/mj/task/list-by-condition", Reply(status=401))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(AuthenticationError):
            await (await mj.imagine("x")).wait(timeout=5)


async def test_webhook_body_in_several_segments_is_read_whole() -> None:
    config = WebhookConfig(poll_interval=3600, trust_callbacks=True)
    async with Emulator("trueai", notify_hook_enabled=False) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", webhook=config
    ) as mj:
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


async def test_redirect_to_another_host_never_carries_the_key(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def grab(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=b"\x89PNG\r\n\x1a\n....", content_type="image/png")

    other = web.Application()
    other.router.add_get("/{p:.*}", grab)
    cdn = web.AppRunner(other)
    await cdn.setup()
    await web.TCPSite(cdn, "127.0.0.1", 0).start()
    cdn_port = cdn.addresses[0][1]

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{cdn_port}/cdn/img.png")

    base = web.Application()
    base.router.add_get("/{p:.*}", redirect)
    provider = web.AppRunner(base)
    await provider.setup()
    await web.TCPSite(provider, "127.0.0.1", 0).start()
    base_url = f"http://127.0.0.1:{provider.addresses[0][1]}"
    try:
        # The CDN is another port on 127.0.0.1.
        async with MidjourneySession(
            base_url, KEY, provider="midjourney-proxy", download_allow=LOCAL_HOSTS
        ) as mj:
            task = Task(id="1", status="SUCCESS", image_url=f"{base_url}/mj/image/1")
            [saved] = await mj.download(task, tmp_path)
        assert saved.read_bytes().startswith(b"\x89PNG")
        assert seen and all(KEY not in v for h in seen for v in h.values())
    finally:
        await provider.cleanup()
        await cdn.cleanup()


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


async def test_states_of_forgotten_handles_are_freed() -> None:
    async with Emulator(concurrency=None, queue_size=None) as emu, MidjourneySession(
        emu.base_url, emu.api_key, **FAST
    ) as mj:
        kept = await mj.imagine("kept")
        for i in range(20):
            await mj.imagine(f"fire and forget {i}")
        gc.collect()
        assert list(mj._table.states) == [kept.id]


async def test_wrong_base_url_says_so_rather_than_task_not_found(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply.json({"error": "Not Found", "status": 404}, 404))
    server.add("GET", "/mj/task/1/image-seed", Reply.text("Not Found", 404))
    async with MidjourneySession(server.url, KEY, **FAST) as mj:
        with pytest.raises(NotFoundError) as fetched:
            await mj.fetch("1")
        with pytest.raises(NotFoundError) as seeded:
            await mj.image_seed("1")
    assert "base URL" in str(fetched.value) and "base URL" in str(seeded.value)


def test_nothing_is_printed_unless_logging_is_configured() -> None:
    code = (
        "import logging, midjourney_async;"
        "logging.getLogger('midjourney_async').warning('should stay quiet')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stderr == ""


async def test_swapped_arguments_do_not_echo_the_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession(KEY, "https://api.example.com")
    assert KEY not in str(info.value) and KEY not in repr(info.value)


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


async def test_ohmygpt_queue_full_wording_is_a_queue_full_error(
    server: RecordingServer,
) -> None:
    refused = {"statusCode": 400, "message": "Submit failed: the queue is full", "data": None}
    server.add("POST", "/api/v1/ai/draw/mj/imagine", Reply.json(refused))
    async with MidjourneySession(
        server.url, KEY, provider="ohmygpt", retry=RetryPolicy.never()
    ) as mj:
        with pytest.raises(QueueFullError):
            await mj.imagine("x")


async def test_as_completed_timeout_is_reported_at_once() -> None:
    async with Emulator() as emu, MidjourneySession(
        emu.base_url, emu.api_key, wait_timeout=30, **FAST
    ) as mj:
        emu.rules.never_finish("hang")
        handles = [await mj.imagine("hang"), await mj.imagine("fine")]
        outcomes: dict[str, str] = {}
        async for h in mj.as_completed(handles, timeout=0.3):
            try:
                outcomes[h.id] = str((await asyncio.wait_for(h.wait(), 2)).status)
            except TaskTimeout:
                outcomes[h.id] = "timeout"
    assert outcomes == {handles[0].id: "timeout", handles[1].id: "SUCCESS"}


def test_log_record_quiet_default_handler_is_a_null_handler() -> None:
    handlers = logging.getLogger("midjourney_async").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


async def test_remix_modal_shown_only_by_status_is_answered_by_wait(
    server: RecordingServer,
) -> None:
    """new-api rewrites code 21 to 1: the modal shows up as the child's status."""
    buttons = [{"customId": "MJ::JOB::variation::1::h", "label": "V1"}]
    grid = {"id": "1", "status": "SUCCESS", "progress": "100%", "buttons": buttons}
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

    server.add("GET", "/mj/task/1/fetch", Reply.json(grid))
    server.add("POST", "/mj/submit/action", Reply.json({"code": 1, "result": "2"}))
    server.on("POST", "/mj/task/list-by-condition", listing)
    server.on("POST", "/mj/submit/modal", modal)
    async with MidjourneySession(server.url, KEY, provider="new-api", **FAST) as mj:
        parent = mj.handle("1")
        await parent.refresh()
        child = await parent.variation(1, prompt="a remixed prompt")
        task = await child.wait(timeout=5)
    assert task.status is TaskStatus.SUCCESS
    [sent] = server.calls("POST", "/mj/submit/modal")
    assert sent.json == {"taskId": "2", "prompt": "a remixed prompt"}


async def test_a_retry_never_runs_a_whole_request_timeout_past_max_time(
    server: RecordingServer,
) -> None:
    server.add("GET", "/mj/task/1/fetch", Reply(status=503), Reply(hang=30))
    policy = RetryPolicy(max_tries=3, max_time=0.5, wait_scale=0.0)
    async with MidjourneySession(server.url, KEY, timeout=20, retry=policy) as mj:
        with pytest.raises(RequestTimeout) as info:
            await mj.fetch("1")
    # The retries got what was left of the 0.5 s, not the 20 s request timeout.
    limit = float(str(info.value).split("no answer within ")[1].split(" s")[0])
    assert limit <= 1.0  # what was left of max_time, at least a second; not 20 s
    assert 2 <= len(server.calls("GET", "/mj/task/1/fetch")) <= policy.max_tries


# -- second review ----------------------------------------------------------


async def test_a_submit_retried_after_a_long_retry_after_keeps_its_full_timeout(
    server: RecordingServer,
) -> None:
    answer = Reply.json({"code": 1, "result": "42"})
    answer.hang = 0.2  # the accepted answer takes a moment, as a real one does
    server.add("POST", "/mj/submit/imagine", Reply(status=429, headers={"Retry-After": "100"}),
               answer)
    policy = RetryPolicy(max_tries=3, max_time=0.3)
    async with MidjourneySession(server.url, KEY, retry=policy) as mj:
        handle = await mj.imagine("x")
    assert handle.id == "42"
    assert len(server.calls("POST", "/mj/submit/imagine")) == 2


async def test_a_modal_step_keeps_the_slot_while_its_task_runs() -> None:
    async with Emulator(
        "trueai", account_remix=True, concurrency=None, queue_size=None
    ) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", max_in_flight=1, **FAST
    ) as mj:
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


async def test_a_modal_step_with_a_new_id_is_followed(server: RecordingServer) -> None:
    buttons = [{"customId": "MJ::JOB::variation::1::h", "label": "V1"}]
    tasks = {
        "P": {"id": "P", "status": "SUCCESS", "progress": "100%", "buttons": buttons},
        "A": {"id": "A", "status": "MODAL", "progress": "0%"},
        "B": {"id": "B", "status": "SUCCESS", "progress": "100%", "imageUrl": "http://x/b.png"},
    }

    def listing(recorded: object) -> Reply:
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


async def test_a_modal_answer_survives_a_refused_modal_step() -> None:
    async with Emulator(
        "new-api", account_remix=True, relay_refresh_interval=0
    ) as emu, MidjourneySession(emu.base_url, emu.api_key, provider="new-api",
                                poll_interval=0.01, retry=RetryPolicy.never()) as mj:
        child = await (await mj.imagine("grid")).variation(1, prompt="grid remixed")
        emu.faults.add(FaultRule("submit/modal", "status", status=429, times=1))
        with pytest.raises(RateLimitError):
            await child.wait(timeout=10)
        assert (await child.wait(timeout=10)).status is TaskStatus.SUCCESS


async def test_a_modal_step_met_by_a_5xx_is_never_sent_again() -> None:
    # A 5xx may come after the server took the step (and billed it).
    async with Emulator(
        "new-api", account_remix=True, relay_refresh_interval=0
    ) as emu, MidjourneySession(emu.base_url, emu.api_key, provider="new-api",
                                poll_interval=0.01, retry=RetryPolicy.never()) as mj:
        child = await (await mj.imagine("grid")).variation(1, prompt="grid remixed")
        emu.faults.add(FaultRule("submit/modal", "status", status=503, times=1))
        with pytest.raises(ServerError):
            await child.wait(timeout=10)
        with pytest.raises(ModalRequired):
            await child.wait(timeout=10)
        assert emu.stats.requests["submit/modal"] == 1


async def test_as_completed_deadline_does_not_leak_into_later_waits() -> None:
    async with Emulator("trueai", speed=100) as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", wait_timeout=30, **FAST
    ) as mj:
        handles = [await mj.imagine(f"cat {i}") for i in range(3)]
        async for _ in mj.as_completed(handles, timeout=0.001):
            pass
        results = await mj.wait_all(handles, return_exceptions=True)
    assert all(isinstance(r, Task) for r in results)


async def test_one_stray_404_from_list_does_not_end_batching() -> None:
    async with Emulator("trueai", speed=50, concurrency=None, queue_size=None) as emu:
        emu.faults.add(FaultRule("task/list*", "status", status=404, nth=[1]))
        async with MidjourneySession(emu.base_url, emu.api_key, provider="trueai",
                                     **FAST) as mj:
            handles = [await mj.imagine(f"cat {i}") for i in range(20)]
            await mj.wait_all(handles, timeout=30)
            assert mj._reader.lists
            assert mj.tracker_stats.list_requests > 1


async def test_a_webhook_ends_the_journal_entry_of_a_dropped_handle(tmp_path: Path) -> None:
    config = WebhookConfig(poll_interval=3600)
    async with Emulator("trueai") as emu, MidjourneySession(
        emu.base_url, emu.api_key, provider="trueai", webhook=config,
        journal=tmp_path / "j.db", **FAST,
    ) as mj:
        await mj.imagine("dropped handle")
        gc.collect()
        await emu.complete_all()
        assert mj.journal is not None
        journal = mj.journal
        await until(lambda: mj._webhook is not None and mj._webhook.stats.confirms >= 1)
        for _ in range(200):
            if not await journal.unfinished():
                break
            await asyncio.sleep(0.01)
        assert await journal.unfinished() == []
