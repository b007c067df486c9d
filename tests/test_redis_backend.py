"""RedisBackend in one process: the shared journal, sharing snapshots and callbacks,
and what happens while Redis is away. A real redis-server, never a mock."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis_support import GateProxy, redis_client, redis_server

from midjourney_async import (
    ConfigurationError,
    JournalError,
    MidjourneySession,
    TaskNotFound,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async._config import MIN_POLL_INTERVAL_LOCAL
from midjourney_async.redis import RedisBackend
from midjourney_async.testing import Emulator, RedisServer

__all__ = ["redis_client", "redis_server"]

pytestmark = pytest.mark.timeout(60)


async def until(check, what: str, limit: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + limit
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {limit} s: {what}")
        await asyncio.sleep(0.02)


def session(emu: Emulator, backend: RedisBackend, **options: object) -> MidjourneySession:
    options.setdefault("poll_interval", 0.05)
    return MidjourneySession(emu.base_url, emu.api_key, backend=backend, **options)  # type: ignore[arg-type]


async def test_an_accepted_id_is_in_redis_before_the_submit_returns_and_any_worker_resumes_it(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with Emulator(speed=50) as emu:
        a = RedisBackend(redis_server.url, namespace="acct")
        async with session(emu, a) as mj:
            handle = await mj.imagine("a red fox")
            # Read straight from Redis, the moment the submit returned.
            assert await redis_client.hexists("mj:{acct}:tasks", handle.id)
            assert await redis_client.zscore("mj:{acct}:open", handle.id) is not None
            assert await redis_client.zcard("mj:{acct}:intents:open") == 0
        # The first worker is gone; another one, on its own connection, finds the task.
        b = RedisBackend(redis_server.url, namespace="acct")
        async with session(emu, b) as other:
            resumed = await other.resume()
            assert [h.id for h in resumed] == [handle.id]
            task = await resumed[0].wait(timeout=20)
            assert task.status == TaskStatus.SUCCESS
            await until(lambda: emu.stats.tasks_created == 1, "one task only")
        # Marked finished once a worker saw it end: nothing left to resume.
        c = RedisBackend(redis_server.url, namespace="acct")
        async with session(emu, c) as third:
            assert await third.resume() == []
        # Another namespace shares nothing.
        d = RedisBackend(redis_server.url, namespace="other")
        assert await d.journal().unfinished() == []
        await d.detach()


async def test_a_snapshot_one_worker_polls_wakes_the_wait_on_another(
    redis_server: RedisServer,
) -> None:
    async with Emulator(speed=100) as emu:
        polling = RedisBackend(redis_server.url, namespace="n")
        idle = RedisBackend(redis_server.url, namespace="n")
        async with session(emu, polling) as a, session(emu, idle, poll_interval=120) as b:
            handle = await a.imagine("a grey wolf")
            waiting = asyncio.ensure_future(b.handle(handle.id).wait(timeout=20))
            # Worker a polls it to the end; worker b (which polls every 2 minutes) is
            # woken by what a applied.
            await a.handle(handle.id).wait(timeout=20)
            task = await asyncio.wait_for(waiting, 10)
            assert task.status == TaskStatus.SUCCESS
            assert idle.shared_applied >= 1


async def test_a_callback_on_one_worker_wakes_the_wait_on_another_and_foreign_ids_are_refused(
    redis_server: RedisServer,
) -> None:
    async with Emulator(speed=50) as emu:
        receiving = RedisBackend(redis_server.url, namespace="hooks")
        async with session(
            emu, receiving, poll_interval=120,
            webhook=WebhookConfig(poll_interval=120),
        ) as b:  # fmt: skip
            assert b.webhook_url is not None
            public = b.webhook_url.split("/midjourney/")[0]
            submitting = RedisBackend(redis_server.url, namespace="hooks")
            # Both receivers behind one address: the submit names b's.
            hook = WebhookConfig(public_url=public, poll_interval=120)
            async with session(emu, submitting, poll_interval=120, webhook=hook) as a:
                assert a.webhook_url == b.webhook_url  # one token for the namespace
                handle = await a.imagine("a lynx")
                task = await handle.wait(timeout=20)
                assert task.status == TaskStatus.SUCCESS
                assert b._webhook is not None and a._webhook is not None
                assert b._webhook.stats.accepted >= 1
                assert a._webhook.stats.accepted == 0
                # An id no worker of the namespace submitted is refused.
                async with aiohttp.ClientSession() as http:
                    body = {"id": "999", "status": "SUCCESS", "progress": "100%"}
                    async with http.post(b.webhook_url, json=body) as resp:
                        assert resp.status == 404


async def test_submits_are_refused_while_redis_is_away_waits_go_on_and_workers_rejoin(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "midjourney_async")
    async with Emulator(speed=20) as emu:
        backend = RedisBackend(redis_server.url, namespace="faults", timeout=0.5)
        async with session(emu, backend, max_in_flight=2) as mj:
            running = await mj.imagine("before the outage")
            redis_server.halt()
            with pytest.raises(JournalError) as refused:
                await mj.imagine("during the outage")
            assert refused.value.task_ids == []
            assert emu.stats.submit_attempts_by_prompt["during the outage"] == 0
            # The task already running is still waited on, by this worker's polling.
            task = await running.wait(timeout=20)
            assert task.status == TaskStatus.SUCCESS
            assert "Redis unreachable" in caplog.text
            redis_server.start()
            await until(backend.connected.is_set, "the worker rejoined", limit=15)
            again = await mj.imagine("after the outage")
            assert (await again.wait(timeout=20)).status == TaskStatus.SUCCESS
            other = RedisBackend(redis_server.url, namespace="faults")
            entries = await other.journal().get(again.id)
            await other.detach()
            assert entries is not None


async def test_a_worker_that_does_not_poll_learns_of_a_task_that_already_ended(
    redis_server: RedisServer,
) -> None:
    async with Emulator(speed=200) as emu:
        leading = RedisBackend(redis_server.url, namespace="late")
        following = RedisBackend(redis_server.url, namespace="late")
        async with session(emu, leading) as a, session(emu, following) as b:
            assert leading.poller is not None and leading.poller.leading
            assert following.poller is not None and not following.poller.leading
            handle = await a.imagine("an owl")
            await handle.wait(timeout=20)
            # Long past the end: the snapshots a shared then reached nobody on b.
            await asyncio.sleep(0.3)
            # b polls nothing while a leads; a tells it what it knows.
            task = await b.handle(handle.id).wait(timeout=10)
            assert task.status == TaskStatus.SUCCESS
            assert b.tracker_stats.list_requests == 0


async def test_a_task_the_server_does_not_know_ends_the_waits_of_workers_that_do_not_poll(
    redis_server: RedisServer,
) -> None:
    async with Emulator(speed=200) as emu:
        leading = RedisBackend(redis_server.url, namespace="gone")
        following = RedisBackend(redis_server.url, namespace="gone")
        async with session(emu, leading, not_found_grace=0.2) as a, session(
            emu, following, not_found_grace=0.2
        ) as b:
            assert leading.poller is not None and leading.poller.leading
            started = time.monotonic()
            with pytest.raises(TaskNotFound):
                await b.handle("1234567890").wait(timeout=15)
            assert time.monotonic() - started < 10
            assert b.tracker_stats.fetch_requests == 0
            assert a.tracker_stats.fetch_requests > 0


async def test_a_reopened_session_counts_its_running_tasks_against_the_shared_cap(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # speed 10: an imagine runs 4-6 s, past the close and the reopen.
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu:
        backend = RedisBackend(redis_server.url, namespace="reopen")
        mj = session(emu, backend, max_in_flight=2)
        async with mj:
            running = [await mj.imagine(f"still running {i}") for i in range(2)]
        # Closed, it holds no slot: should the process end here, nothing lingers.
        assert await redis_client.zcard("mj:{reopen}:slots") == 0
        async with mj:
            # Reopened, its two tasks still run on the account: they count again.
            assert await redis_client.zcard("mj:{reopen}:slots") == 2
            other = RedisBackend(redis_server.url, namespace="reopen")
            async with session(emu, other, max_in_flight=2) as second:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(second.imagine("over the cap"), 0.5)
                assert emu.stats.submit_attempts_by_prompt["over the cap"] == 0
                await mj.wait_all(running, timeout=30)
                # Their slots come back when they end.
                handle = await asyncio.wait_for(second.imagine("a freed slot"), 5)
                await handle.wait(timeout=30)
            assert emu.stats.most_in_flight == 2
        assert await redis_client.zcard("mj:{reopen}:slots") == 0


async def test_finished_entries_leave_redis_after_the_retention(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with Emulator(speed=200) as emu:
        backend = RedisBackend(redis_server.url, namespace="kept", retention=0.5)
        async with session(emu, backend) as mj:
            first = await mj.imagine("first")
            await first.wait(timeout=20)
            entry = None
            end = time.monotonic() + 10
            while entry is None or entry.finished_at is None:
                assert time.monotonic() < end, "the first task was never marked finished"
                await asyncio.sleep(0.02)
                entry = await backend.journal().get(first.id)
            # Past its retention (time has to pass), the next finished task sweeps it out.
            await asyncio.sleep(max(0.0, (entry.finished_at + 500) / 1000 - time.time()))
            second = await mj.imagine("second")
            await second.wait(timeout=20)
            end = time.monotonic() + 10
            while await redis_client.hexists("mj:{kept}:tasks", first.id):
                assert time.monotonic() < end, "the finished entry stayed past its retention"
                await asyncio.sleep(0.02)
            assert await redis_client.hexists("mj:{kept}:tasks", second.id)
            assert await redis_client.hlen("mj:{kept}:intents") == 1
            assert not await backend.knows(first.id)
            assert await mj.resume() == []
    with pytest.raises(ConfigurationError):
        RedisBackend(redis_server.url, retention=0)


async def test_the_poller_polls_as_often_as_the_most_eager_live_worker_asks(
    redis_server: RedisServer,
) -> None:
    # speed 20: an imagine runs 2-3 s, past the poller's first look at it.
    async with Emulator(speed=20, concurrency=None, queue_size=None) as emu:
        slow = RedisBackend(redis_server.url, namespace="eager")
        eager = RedisBackend(redis_server.url, namespace="eager")
        async with session(emu, slow, poll_interval=120) as a:
            async with session(emu, eager, poll_interval=0.05) as b:
                assert slow.poller is not None and slow.poller.leading
                handle = await b.imagine("asked for often")
                task = await handle.wait(timeout=15)
                assert task.status == TaskStatus.SUCCESS
                assert b.tracker_stats.list_requests == 0
            # The eager worker is gone: the poller goes back to its own pace.
            end = time.monotonic() + 15
            while a._tracker.interval != 120:
                assert time.monotonic() < end, "the poller kept the interval of a gone worker"
                await asyncio.sleep(0.05)


async def test_the_poller_asks_about_another_workers_fresh_submits_together_after_an_interval(
    redis_server: RedisServer,
) -> None:
    # As one session would: a fresh submit is first asked about after an interval,
    # so a burst from another worker costs one request, not one per announcement.
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu, GateProxy(
        emu.base_url
    ) as proxy:
        leading = RedisBackend(redis_server.url, namespace="burst")
        following = RedisBackend(redis_server.url, namespace="burst")
        # An interval of 2 s: ids announced within a second of each other are one sweep.
        async with session(emu, leading, poll_interval=2.0), MidjourneySession(
            proxy.url, emu.api_key, backend=following, poll_interval=2.0
        ) as b:
            assert leading.poller is not None and leading.poller.leading
            # The five answers come back together, however slowly a loaded box sends them.
            proxy.gate("burst")
            submits = asyncio.gather(*(b.imagine(f"burst {i}") for i in range(5)))
            await proxy.until_held(5)
            proxy.release()
            handles = await submits
            waiting = asyncio.ensure_future(b.wait_all(handles, timeout=30))
            stats = emu.stats
            end = time.monotonic() + 10
            while stats.requests["task/list-by-condition"] == 0:
                assert time.monotonic() < end, "nobody polled"
                await asyncio.sleep(0.002)
            assert (stats.requests["task/list-by-condition"], stats.list_ids) == (1, 5)
            assert b.tracker_stats.list_requests == 0
            await waiting


async def test_the_poller_waits_an_interval_for_an_id_registered_before_it_was_announced(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # A round of the leader may read the registry between another worker's write
    # there and its announcement: that fresh id waits an interval too, rather than
    # being asked about at once, alone.
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu:
        async with MidjourneySession(emu.base_url, emu.api_key) as elsewhere:
            fresh = await elsewhere.imagine("registered, not yet announced")
        backend = RedisBackend(redis_server.url, namespace="early")
        async with session(emu, backend, poll_interval=2.0):
            poller = backend.poller
            assert poller is not None and poller.leading
            later = int(time.time() * 1000) + 60_000
            await redis_client.zadd("mj:{early}:watched", {fresh.id: later})
            await poller.round()
            taken = time.monotonic()
            assert fresh.id in poller._remote
            stats = emu.stats
            end = time.monotonic() + 10
            while stats.requests["task/list-by-condition"] + stats.requests["task/fetch"] == 0:
                assert time.monotonic() < end, "nobody polled"
                await asyncio.sleep(0.002)
            # Due one interval after the leader took it; a sweep reaches half an interval ahead.
            assert time.monotonic() - taken >= 0.8


async def test_a_reused_state_tag_keeps_its_open_intent_past_the_retention(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # The intent's tag is the caller's own state: a second submit with it, still
    # on its way, must stay listed whatever the first one's retention says.
    async with Emulator(speed=200) as emu, GateProxy(emu.base_url) as proxy:
        backend = RedisBackend(redis_server.url, namespace="reused", retention=0.3)
        async with MidjourneySession(
            proxy.url, emu.api_key, backend=backend, poll_interval=0.05
        ) as mj:
            first = await mj.imagine("first", state="order-7")
            await first.wait(timeout=20)
            ended = await redis_client.zscore("mj:{reused}:intents:ended", "order-7")
            assert ended is not None
            # Past the first intent's retention (time has to pass).
            await asyncio.sleep(max(0.0, (ended + 300) / 1000 - time.time()) + 0.05)
            proxy.gate("second")
            second = asyncio.ensure_future(mj.imagine("second", state="order-7"))
            await proxy.until_held(1)
            # Another submit settles meanwhile and sweeps what is past the retention.
            await (await mj.imagine("third")).wait(timeout=20)
            assert [e.state for e in await mj.unconfirmed_submits()] == ["order-7"]
            # The same with an end time left behind by a worker of an older version:
            # an open intent is never swept.
            await redis_client.zadd("mj:{reused}:intents:ended", {"order-7": 1})
            await (await mj.imagine("fourth")).wait(timeout=20)
            assert [e.state for e in await mj.unconfirmed_submits()] == ["order-7"]
            proxy.release()
            await (await second).wait(timeout=20)
            assert await mj.unconfirmed_submits() == []
            assert emu.stats.submit_attempts_by_prompt["second"] == 1


async def test_the_poller_never_polls_faster_than_the_floor_whatever_redis_says(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # A bad writer (or a worker on another server) names absurd intervals: the
    # leader keeps to the session's floor and ignores what is no number of seconds.
    async with Emulator(speed=200) as emu:
        backend = RedisBackend(redis_server.url, namespace="floor", poller_ttl=0.3)
        async with session(emu, backend, poll_interval=0.05) as mj:
            poller = backend.poller
            assert poller is not None and poller.leading
            tracker = mj._tracker
            later = int(time.time() * 1000) + 60_000
            rounds = poller.takeovers
            await redis_client.zadd(
                "mj:{floor}:intervals", {"w1 1e-06": later, "w2 inf": later, "w3 nan": later}
            )
            # Two rounds read the intervals (one may have read them before the write).
            seen: list[float] = []
            for _ in range(2):
                await poller.round()
                seen.append(tracker.interval)
            assert seen == [MIN_POLL_INTERVAL_LOCAL] * 2
            assert poller.takeovers == rounds
            await redis_client.delete("mj:{floor}:intervals")
            await poller.round()
            assert tracker.interval == 0.05
            # An announcement naming a tiny interval (or none a number can be).
            for n, interval in enumerate((1e-06, 0.0, -1.0)):
                message = {"worker": "w9", "kind": "watch", "task_id": f"77{n}",
                           "interval": interval}  # fmt: skip
                await redis_client.publish("mj:{floor}:events", json.dumps(message))
            await until(lambda: len(poller._remote) == 3, "the announcements arrived")
            assert tracker.interval == MIN_POLL_INTERVAL_LOCAL


async def test_the_shared_cap_holds_after_redis_lost_its_data(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # speed 2: an imagine runs 20-30 s, long past this test's checks.
    async with Emulator(speed=2, concurrency=None, queue_size=None) as emu:
        backend = RedisBackend(redis_server.url, namespace="lost", lease_ttl=1.0)
        async with session(emu, backend, max_in_flight=2) as mj:
            for i in range(2):
                await mj.imagine(f"running {i}")
            assert await redis_client.zcard("mj:{lost}:slots") == 2
            # Redis restarted without its data (or a write of the leases failed).
            await redis_client.flushall()
            # The heartbeat (every third of lease_ttl) puts the running tasks' leases back.
            end = time.monotonic() + 5
            while await redis_client.zcard("mj:{lost}:slots") < 2:
                assert time.monotonic() < end, "the running tasks' leases were never restored"
                await asyncio.sleep(0.02)
            other = RedisBackend(redis_server.url, namespace="lost", lease_ttl=1.0)
            async with session(emu, other, max_in_flight=2) as second:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(second.imagine("over the cap"), 1.5)
            assert emu.stats.submit_attempts_by_prompt["over the cap"] == 0
            assert emu.stats.most_in_flight == 2


async def test_a_worker_without_retention_keeps_its_entries_and_a_swept_ids_callback_is_refused(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with Emulator(speed=200) as emu:

        async def finished(backend: RedisBackend, task_id: str) -> None:
            end = time.monotonic() + 10
            while True:
                entry = await backend.journal().get(task_id)
                if entry is not None and entry.finished_at is not None:
                    return
                assert time.monotonic() < end, f"task {task_id} was never marked finished"
                await asyncio.sleep(0.02)

        keeping = RedisBackend(redis_server.url, namespace="mixed", retention=None)
        async with session(emu, keeping) as k:
            kept = await k.imagine("kept")
            await kept.wait(timeout=20)
            await finished(keeping, kept.id)
        sweeping = RedisBackend(redis_server.url, namespace="mixed", retention=0.3)
        async with session(emu, sweeping) as s:
            first = await s.imagine("first")
            await first.wait(timeout=20)
            await finished(sweeping, first.id)
            # Past the retention of both (time has to pass), a finish sweeps.
            await asyncio.sleep(0.4)
            second = await s.imagine("second")
            await second.wait(timeout=20)
            end = time.monotonic() + 10
            while await redis_client.hexists("mj:{mixed}:tasks", first.id):
                assert time.monotonic() < end, "the sweeping worker's entry stayed"
                await asyncio.sleep(0.02)
        # The entry and the intent the worker without retention finished stay.
        entry = json.loads(await redis_client.hget("mj:{mixed}:tasks", kept.id) or "null")
        assert entry is not None and entry["status"] == "SUCCESS"
        intents = [json.loads(v)["prompt"] for v in await redis_client.hvals("mj:{mixed}:intents")]
        assert sorted(intents) == ["kept", "second"]
        # A late callback about the swept id is refused by any worker; not one about a kept id.
        receiving = RedisBackend(redis_server.url, namespace="mixed", retention=None)
        hook = WebhookConfig(poll_interval=0.05)
        async with session(emu, receiving, webhook=hook) as r, aiohttp.ClientSession() as http:
            assert r.webhook_url is not None
            for task_id, status in ((first.id, 404), (second.id, 200), (kept.id, 200)):
                body = {"id": task_id, "status": "IN_PROGRESS", "progress": "50%"}
                async with http.post(r.webhook_url, json=body) as resp:
                    assert resp.status == status, task_id
