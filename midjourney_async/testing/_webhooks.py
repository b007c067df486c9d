"""notifyHook delivery: fire-and-forget POSTs with seeded drop, duplicate and reorder knobs.

Real proxies post the task JSON on every save, unsigned, never retried, from thread pools
(so order is not guaranteed). The emulator reproduces that, but delivers callbacks of one
task in order unless ``reorder`` asks otherwise, so tests stay deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from ._stats import EmulatorStats

log = logging.getLogger("midjourney_async.testing")

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_local_url(url: str) -> bool:
    """True for http(s) URLs on 127.0.0.1, localhost or ::1: the only hosts we call back."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and host in LOCAL_HOSTS


@dataclass
class _Delivery:
    url: str
    task_id: str
    body: bytes


class WebhookDispatcher:
    """Sends callbacks (``emu.webhooks``). Knobs may be changed at any time.

    Attributes:
        drop_rate: Probability (0..1) that a callback is silently not sent.
        duplicate_rate: Probability that a callback is sent twice.
        reorder: Probability that a non-final callback is held back and sent after the
            task's next one (so a stale state can arrive after a newer or final one).
        timeout: Seconds allowed per POST.
        max_backlog: Callbacks waiting beyond this are dropped (counted) to bound memory.
    """

    def __init__(self, stats: EmulatorStats, rng: random.Random, parallelism: int = 16) -> None:
        self.drop_rate = 0.0
        self.duplicate_rate = 0.0
        self.reorder = 0.0
        self.timeout = 5.0
        self.max_backlog = 100_000
        self._stats = stats
        self._rng = rng
        self._parallelism = parallelism
        self._queues: list[asyncio.Queue[_Delivery]] = []
        self._workers: list[asyncio.Task[None]] = []
        self._held: dict[str, _Delivery] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._refused_logged: set[str] = set()

    def send(self, url: str, task_id: str, body: bytes, *, final: bool) -> None:
        """Queue one callback for ``task_id`` (never blocks, never raises)."""
        if self._closed:
            return
        if not is_local_url(url):
            self._stats.webhooks_dropped += 1
            self._stats.webhooks_refused += 1
            if url not in self._refused_logged:
                self._refused_logged.add(url)
                log.warning("emulator refuses to call back non-local notifyHook %s", url)
            return
        if self.drop_rate and self._rng.random() < self.drop_rate:
            self._stats.webhooks_dropped += 1
            return
        delivery = _Delivery(url, task_id, body)
        held = self._held.pop(task_id, None)
        if held is None and not final and self.reorder and self._rng.random() < self.reorder:
            self._held[task_id] = delivery
            return
        self._enqueue(delivery)
        if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
            self._stats.webhooks_duplicated += 1
            self._enqueue(delivery)
        if held is not None:
            self._stats.webhooks_reordered += 1
            self._enqueue(held)

    def _enqueue(self, delivery: _Delivery) -> None:
        if self._pending >= self.max_backlog:
            self._stats.webhooks_dropped += 1
            return
        if not self._queues:
            self._start_workers()
        # Sharding by task id keeps one task's callbacks in order while tasks run in parallel.
        shard = zlib.crc32(delivery.task_id.encode()) % len(self._queues)
        self._pending += 1
        self._idle.clear()
        self._queues[shard].put_nowait(delivery)

    def _start_workers(self) -> None:
        for i in range(self._parallelism):
            queue: asyncio.Queue[_Delivery] = asyncio.Queue()
            self._queues.append(queue)
            self._workers.append(
                asyncio.create_task(self._worker(queue), name=f"mj-emulator-webhook-{i}")
            )

    async def _worker(self, queue: asyncio.Queue[_Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._post(delivery)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _post(self, delivery: _Delivery) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        try:
            async with self._session.post(
                delivery.url,
                data=delivery.body,
                headers={"Content-Type": "application/json"},
            ) as resp:
                await resp.read()
                self._stats.webhooks_sent += 1
                if resp.status >= 300:
                    self._stats.webhooks_failed += 1
                    log.info("notifyHook %s answered %s (not retried)", delivery.url, resp.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self._stats.webhooks_sent += 1
            self._stats.webhooks_failed += 1
            log.info("notifyHook %s failed: %r (not retried)", delivery.url, exc)

    def flush_held(self) -> None:
        """Send every held-back (reordered) callback now."""
        for task_id in list(self._held):
            self._stats.webhooks_reordered += 1
            self._enqueue(self._held.pop(task_id))

    @property
    def pending(self) -> int:
        """Callbacks queued or in flight (held-back ones not included)."""
        return self._pending

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued callback was attempted (``asyncio.TimeoutError`` if not)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        """Stop the workers and close the HTTP session (queued callbacks are abandoned)."""
        self._closed = True
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
