"""The callback receiver under hostile peers: forged states, idle and trickling connections.

Every test drives a real receiver on 127.0.0.1 through real sockets, against the
emulator, and waits on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from mj_support import until

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

from midjourney_async import (
    MidjourneySession,
    ModalRequired,
    RetryPolicy,
    TaskStatus,
    WebhookConfig,
)
from midjourney_async._webhook import BACKLOG, WebhookReceiver
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


# -- connections that never finish a request ----------------------------------


def receiver_address(mj: MidjourneySession) -> tuple[str, int, str]:
    """Host, port and callback path of the session's receiver."""
    url = mj.webhook_url
    assert url is not None
    parsed = urlsplit(url)
    assert parsed.hostname is not None and parsed.port is not None
    return parsed.hostname, parsed.port, parsed.path


async def closed_by_server(reader: asyncio.StreamReader) -> None:
    """Return once the server closed the connection (whatever it sent first)."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionError:
        pass


async def trickle(writer: asyncio.StreamWriter, chunk: bytes, every: float = 0.05) -> None:
    """Send ``chunk`` again and again, slowly, as a slowloris peer does (bounded)."""
    try:
        for _ in range(400):
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(every)
    except ConnectionError:
        pass


async def test_idle_connections_time_out_and_past_the_cap_make_room_for_real_callbacks() -> None:
    cap, flood = 8, 20
    config = WebhookConfig(poll_interval=NEVER, header_timeout=2.0, max_connections=cap)
    async with hooked(config=config, emulator={"speed": STILL}) as (emu, mj, receiver):
        handle = await mj.imagine("finish while the flood goes on")
        host, port, _ = receiver_address(mj)
        peers = [await asyncio.open_connection(host, port) for _ in range(flood)]
        closed = [asyncio.ensure_future(closed_by_server(r)) for r, _ in peers]
        try:
            # Never more than the cap stay open: the rest are closed at once.
            await until(lambda: receiver.stats.connections_refused == flood - cap)
            assert receiver.open_connections == cap
            assert sum(c.done() for c in closed) <= flood - cap
            # A real callback still gets through while the cap is full of idle peers:
            # it ends the wait with no poll at all.
            await emu.complete_all()
            task = await handle.wait(timeout=10)
            assert task.status is TaskStatus.SUCCESS
            assert receiver.stats.confirms >= 1 and mj.tracker_stats.list_requests == 0
            # The idle peers never sent a byte: each is closed after the header timeout.
            await asyncio.wait_for(asyncio.gather(*closed), 10)
            assert receiver.stats.connections_timed_out >= 1
            # Only the emulator's own kept-alive callback connections may be left.
            assert receiver.open_connections < cap
            # And the session's own requests work as before.
            again = await mj.imagine("after the flood")
            assert again.id != handle.id
        finally:
            for c in closed:
                c.cancel()
            for _, w in peers:
                w.close()


@pytest.mark.parametrize("phase", ["headers", "body", "next-headers"])
async def test_a_trickling_request_is_cut_off(phase: str) -> None:
    config = WebhookConfig(
        poll_interval=NEVER, header_timeout=0.5, body_timeout=0.5, keepalive_timeout=60
    )
    async with hooked(config=config) as (_, mj, receiver):
        host, port, path = receiver_address(mj)
        reader, writer = await asyncio.open_connection(host, port)
        if phase == "next-headers":
            # One whole request first, then the next one's headers trickle in on
            # the kept-alive connection: the long keep-alive does not cover them.
            first = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}"
            writer.write(first.encode())
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 400")
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode())
            slow = asyncio.ensure_future(trickle(writer, b"X-Slow: 1\r\n"))
        elif phase == "headers":
            writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode())
            slow = asyncio.ensure_future(trickle(writer, b"X-Slow: 1\r\n"))
        else:
            head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n\r\n"
            writer.write(head.encode() + b"{")
            slow = asyncio.ensure_future(trickle(writer, b" "))
        try:
            await asyncio.wait_for(closed_by_server(reader), 5)
            assert receiver.stats.connections_timed_out == 1
            assert receiver.stats.accepted == 0
            assert receiver.open_connections == 0
        finally:
            slow.cancel()
            writer.close()


async def test_a_kept_alive_connection_serves_again_then_closes_when_idle() -> None:
    config = WebhookConfig(poll_interval=NEVER, keepalive_timeout=0.5)
    async with hooked(config=config) as (_, mj, receiver):
        host, port, path = receiver_address(mj)
        reader, writer = await asyncio.open_connection(host, port)
        body = json.dumps({"id": "4242", "status": "SUCCESS"}).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            for _ in range(2):
                writer.write(request)
                status = await asyncio.wait_for(reader.readline(), 5)
                assert status.startswith(b"HTTP/1.1 404"), status  # not a task of ours
                await asyncio.wait_for(reader.readuntil(b"unknown task"), 5)
            assert receiver.stats.rejected_unknown == 2
            await asyncio.wait_for(closed_by_server(reader), 5)
            await until(lambda: receiver.open_connections == 0)
        finally:
            writer.close()

async def test_close_returns_promptly_while_a_body_trickles_in() -> None:
    # The body timeout is long: close() must not wait for it, nor for aiohttp's 60 s.
    config = WebhookConfig(poll_interval=NEVER, body_timeout=120.0)
    async with Emulator() as emu:
        mj = MidjourneySession(emu.base_url, emu.api_key, webhook=config)
        await mj.open()
        receiver = mj._webhook
        assert receiver is not None
        host, port, path = receiver_address(mj)
        reader, writer = await asyncio.open_connection(host, port)
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100000\r\n\r\n"
        writer.write(head.encode() + b"{")
        slow = asyncio.ensure_future(trickle(writer, b" "))
        try:
            await until(lambda: receiver._reading == 1)
            await asyncio.wait_for(mj.close(), 5)
            await asyncio.wait_for(closed_by_server(reader), 5)
        finally:
            slow.cancel()
            writer.close()
            await mj.close()


# A peer in another process: it opens connections, says nothing, and answers
# each line on stdin with how many of them the server has closed.
FLOODER = """
import resource, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, count = int(sys.argv[1]), int(sys.argv[2])
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
for s in socks:
    s.setblocking(False)
print("ready", flush=True)
for _ in sys.stdin:
    closed = 0
    for s in socks:
        try:
            closed += s.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(closed, flush=True)
"""


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(
    resource is None or not os.path.isdir("/proc/self/fd"), reason="needs rlimits and /proc"
)
async def test_a_flood_of_silent_connections_cannot_starve_the_sessions_own_requests() -> None:
    # The receiver may hold cap + BACKLOG descriptors for an instant; the flood is
    # far larger than what this process may open.
    cap, flood = 16, 600
    spare = cap + BACKLOG + 64
    config = WebhookConfig(poll_interval=NEVER, max_connections=cap, header_timeout=60.0)
    async with hooked(config=config) as (_, mj, receiver):
        _, port, _ = receiver_address(mj)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        flooder = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOODER, str(port), str(flood),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert flooder.stdin is not None and flooder.stdout is not None
        stdin, stdout = flooder.stdin, flooder.stdout

        async def closed_so_far() -> int:
            stdin.write(b"?\n")
            await stdin.drain()
            return int(await asyncio.wait_for(stdout.readline(), 10))

        # This process may open only `spare` more files while the flood lasts.
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds() + spare, hard))
        try:
            assert await asyncio.wait_for(stdout.readline(), 30) == b"ready\n"
            deadline = asyncio.get_running_loop().time() + 10
            while (closed := await closed_so_far()) < flood - cap:
                assert asyncio.get_running_loop().time() < deadline, f"{closed} closed"
            assert receiver.open_connections <= cap
            # The session opens connections of its own and its tasks still finish.
            task = await (await mj.imagine("through the flood")).wait(timeout=10)
            assert task.status is TaskStatus.SUCCESS
            assert receiver.stats.connections_refused >= flood - cap
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            if flooder.returncode is None:
                flooder.kill()
            await flooder.wait()
