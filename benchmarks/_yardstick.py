"""The yardsticks: what a careful user writes with aiohttp and msgspec and nothing else.

No library code here on purpose: these loops are the limit the library is held
to. They keep the library's pace and chunking (list-by-condition, 100 ids a
request growing to 1,000 once a sweep holds over 10,000 ids, at most 8 requests
at once) so that a ratio against them is the
library's own overhead.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec

CHUNK = 100  # ids per list-by-condition request, as the library's default chunking
CHUNK_MAX = 1000  # ... which grows so a sweep takes at most 100 requests, up to this
CONCURRENCY = 8  # list requests at once, as the library's poller


class Reply(msgspec.Struct):
    code: int
    result: str | int | None = None
    description: str = ""


class BareButton(msgspec.Struct, rename="camel"):
    custom_id: str
    emoji: str = ""
    label: str = ""


class BareTask(msgspec.Struct, rename="camel"):
    """Only what a caller reads: status and progress, then the image and buttons."""

    id: str
    status: str = ""
    progress: str | None = None
    prompt: str | None = None
    image_url: str | None = None
    fail_reason: str | None = None
    buttons: list[BareButton] = []


class Ids(msgspec.Struct):
    ids: list[str]


TERMINAL = frozenset({"SUCCESS", "FAILURE", "CANCEL"})


class HandWritten:
    """Submit with one POST each; poll every pending id with list-by-condition once per tick."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.root = base_url + "/mj"
        self.headers = {"mj-api-secret": api_key, "Content-Type": "application/json"}
        self.http: aiohttp.ClientSession | None = None
        self.encode = msgspec.json.Encoder().encode
        self.reply = msgspec.json.Decoder(Reply).decode
        self.tasks = msgspec.json.Decoder(list[BareTask]).decode
        self.limit = asyncio.Semaphore(CONCURRENCY)
        #: The last snapshot of every id polled, as a caller showing progress keeps it.
        self.latest: dict[str, BareTask] = {}

    async def __aenter__(self) -> HandWritten:
        self.http = aiohttp.ClientSession(headers=self.headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def submit(self, prompt: str) -> str:
        assert self.http is not None
        body = self.encode({"prompt": prompt})
        async with self.http.post(self.root + "/submit/imagine", data=body) as resp:
            reply = self.reply(await resp.read())
        if reply.code not in (1, 22) or reply.result is None:
            raise RuntimeError(f"submit refused: {reply}")
        return str(reply.result)

    async def poll(self, ids: list[str]) -> list[BareTask]:
        """One list-by-condition request; every snapshot it brings is kept in ``latest``."""
        assert self.http is not None
        async with self.limit, self.http.post(
            self.root + "/task/list-by-condition", data=self.encode(Ids(ids))
        ) as resp:
            tasks = self.tasks(await resp.read())
        latest = self.latest
        for task in tasks:
            latest[task.id] = task
        return tasks

    async def sweep(self, ids: list[str]) -> None:
        """Poll ``ids`` once, in chunks."""
        size = min(CHUNK_MAX, max(CHUNK, -(-len(ids) // 100)))
        await asyncio.gather(
            *(self.poll(ids[i : i + size]) for i in range(0, len(ids), size))
        )

    async def run(self, prompts: list[str], interval: float) -> list[BareTask]:
        """Submit every prompt at once, then poll what is pending every ``interval`` until done."""
        ids = await asyncio.gather(*(self.submit(p) for p in prompts))
        return await self.wait(list(ids), interval)

    async def wait(self, ids: list[str], interval: float) -> list[BareTask]:
        """Poll ``ids`` every ``interval`` until every one has ended."""
        pending = list(ids)
        while pending:
            await asyncio.sleep(interval)
            await self.sweep(pending)
            latest = self.latest
            pending = [
                i for i in pending if i not in latest or latest[i].status not in TERMINAL
            ]
        done = [self.latest.pop(i) for i in ids]
        return done

    async def steady(self, ids: list[str], interval: float, ticks: int) -> list[float]:
        """Poll ``ids`` ``ticks`` times on a fixed schedule; return when each sweep began."""
        loop = asyncio.get_running_loop()
        starts: list[float] = []
        next_at = loop.time()
        for _ in range(ticks):
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            starts.append(time.monotonic())
            next_at += interval
            await self.sweep(ids)
        return starts

