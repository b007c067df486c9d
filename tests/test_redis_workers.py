"""Several worker processes on one namespace against the emulator: the journal across
a killed worker, a callback on one worker waking a wait on another, and the in-flight
cap counted across workers (the emulator counts what runs). A real redis-server."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
import redis.asyncio as aioredis
from redis_support import Worker, redis_client, redis_server

from midjourney_async import MidjourneySession, TaskStatus, WebhookConfig
from midjourney_async.redis import RedisBackend
from midjourney_async.testing import Emulator, RedisServer

__all__ = ["redis_client", "redis_server"]

pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_killed_workers_tasks_resume_elsewhere_and_a_callback_wakes_another_worker(
    redis_server: RedisServer,
) -> None:
    # speed 10: an imagine takes 4-6 s, so the killed worker's tasks are still running.
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu:
        common = (redis_server.url, "acct", emu.base_url, emu.api_key)
        port = free_port()
        receiver = await Worker.start(*common, "receiver", str(port))
        doomed = await Worker.start(*common, "submit", "3")
        try:
            await receiver.expect("ready")
            ids = await doomed.expect("submitted")
            assert len(ids) == 3
            doomed.kill()
            await doomed.finish()
            # This process is the third worker. Its callbacks go to the receiver
            # worker's address (as behind a load balancer), and it polls every two
            # minutes: only the receiver's callback can end its wait in time.
            hook = WebhookConfig(public_url=f"http://127.0.0.1:{port}", poll_interval=120)
            backend = RedisBackend(redis_server.url, namespace="acct")
            async with MidjourneySession(
                emu.base_url, emu.api_key, backend=backend, poll_interval=120, webhook=hook
            ) as mj:
                resumed = await mj.resume()
                assert sorted(h.id for h in resumed) == sorted(ids)
                handle = await mj.imagine("a callback lands elsewhere")
                started = time.monotonic()
                task = await handle.wait(timeout=30)
                assert task.status == TaskStatus.SUCCESS
                assert time.monotonic() - started < 30
                assert mj._webhook is not None and mj._webhook.stats.accepted == 0
                assert backend.shared_applied >= 1
            # The receiver polled for the namespace (it was first); it dies too, and
            # a new worker takes the polling over and collects what is left of the
            # dead worker's tasks (the receiver may have seen some end, polling as
            # often as the dead worker asked until its registration lapsed):
            # nothing is submitted again.
            receiver.kill()
            await receiver.finish()
            killed = time.monotonic()
            poller = RedisBackend(redis_server.url, namespace="acct")
            async with MidjourneySession(
                emu.base_url, emu.api_key, backend=poller, poll_interval=0.1
            ) as mj:
                resumed = await mj.resume()
                while not (poller.poller and poller.poller.leading):
                    assert time.monotonic() - killed < 5, "nobody took the polling over"
                    await asyncio.sleep(0.02)
                tasks = await mj.wait_all(resumed, timeout=30)
                assert {t.id for t in tasks} <= set(ids)
                assert all(t.status == TaskStatus.SUCCESS for t in tasks)
                journal = poller.journal()
                while True:
                    entries = [await journal.get(i) for i in ids]
                    if all(e is not None and e.status == "SUCCESS" for e in entries):
                        break
                    assert time.monotonic() - killed < 30, entries
                    await asyncio.sleep(0.02)
                assert await mj.resume() == []
            assert emu.stats.tasks_created == 4
        finally:
            for worker in (receiver, doomed):
                worker.kill()
                await worker.proc.wait()


async def test_the_in_flight_cap_counts_across_worker_processes(
    redis_server: RedisServer,
) -> None:
    # The account runs 2 and queues none: one task over the cap comes back queue-full.
    async with Emulator(speed=200, concurrency=2, queue_size=0) as emu:
        common = (redis_server.url, "capped", emu.base_url, emu.api_key)
        workers = [await Worker.start(*common, "burst", "4", "2") for _ in range(3)]
        try:
            for worker in workers:
                await worker.expect("ready")
            most = 0
            for worker in workers:
                await worker.say("go")
            done = asyncio.gather(*(w.expect("done", timeout=60) for w in workers))
            while not done.done():
                most = max(most, emu.running)
                await asyncio.sleep(0.005)
            results = await done
            assert results == [["4", "0"]] * 3, [await w.stderr() for w in workers]
            assert emu.stats.tasks_created == 12
            assert emu.stats.submits_by_code.get(23, 0) == 0
            assert most == 2
        finally:
            for worker in workers:
                worker.kill()
                await worker.proc.wait()


async def test_a_dead_workers_slots_come_back_when_their_leases_expire(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with Emulator(speed=2, concurrency=None, queue_size=None) as emu:
        common = (redis_server.url, "leases", emu.base_url, emu.api_key)
        holder = await Worker.start(*common, "burst", "2", "2")
        try:
            await holder.expect("ready")
            await holder.say("go")
            # Both slots of the cap are taken, by the other process.
            deadline = time.monotonic() + 10
            while await redis_client.zcard("mj:{leases}:slots") < 2:
                assert time.monotonic() < deadline, "the worker took no slots"
                await asyncio.sleep(0.02)
            backend = RedisBackend(redis_server.url, namespace="leases", lease_ttl=1.0)
            async with MidjourneySession(
                emu.base_url, emu.api_key, backend=backend, max_in_flight=2, poll_interval=0.1
            ) as mj:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(mj.imagine("no slot yet"), 0.5)
                assert emu.stats.submit_attempts_by_prompt["no slot yet"] == 0
                holder.kill()
                await holder.proc.wait()
                started = time.monotonic()
                handle = await mj.imagine("a slot of the dead worker")
                # Its leases last 1 s past their last renewal.
                assert time.monotonic() - started < 3
                assert handle.id
        finally:
            holder.kill()
            await holder.proc.wait()


async def test_one_worker_polls_for_the_namespace_and_another_takes_over_when_it_is_killed(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu:
        common = (redis_server.url, "polling", emu.base_url, emu.api_key)
        workers = [await Worker.start(*common, "submit", "2") for _ in range(3)]
        try:
            ids = {(await w.expect("ready"))[0]: w for w in workers}
            for worker in workers:
                await worker.expect("submitted")
            leader_id = _text(await redis_client.get("mj:{polling}:poller"))
            assert leader_id in ids
            # Everyone's tasks are polled by the leader alone: one list request per
            # tick for all six ids, not one per worker.
            stats = emu.stats
            requests, asked = stats.requests["task/list-by-condition"], stats.list_ids
            await asyncio.sleep(0.5)  # a window to count requests in, not a wait
            requests = stats.requests["task/list-by-condition"] - requests
            asked = stats.list_ids - asked
            print(f"one poller: {requests} list requests, {asked / requests:.1f} ids each")
            # Each worker holds 2 ids: polling on their own, no request could ask for more.
            assert asked / requests > 2
            leader = ids.pop(leader_id)
            leader.kill()
            await leader.finish()
            killed = time.monotonic()
            while True:
                holder = await redis_client.get("mj:{polling}:poller")
                if holder is not None and _text(holder) != leader_id:
                    break
                assert time.monotonic() - killed < 5, "nobody took the polling over"
                await asyncio.sleep(0.02)
            takeover = time.monotonic() - killed
            assert _text(holder) in ids
            sent = [int((await w.expect("finished", timeout=30))[0]) for w in ids.values()]
            # Only the worker that took over ever polled.
            assert sorted(sent)[0] == 0 and sorted(sent)[1] > 0, sent
            print(f"takeover after SIGKILL: {takeover:.2f} s")
        finally:
            for worker in workers:
                worker.kill()
                await worker.proc.wait()


def _text(value: bytes | str | None) -> str:
    """A Redis reply as text (the client may be set to decode replies or not)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value
