"""Many workers, one account: a Redis backend for :class:`MidjourneySession`.

Needs the ``redis`` extra (``pip install 'midjourney_async[redis]'``)::

    from midjourney_async import MidjourneySession
    from midjourney_async.redis import RedisBackend

    backend = RedisBackend("redis://127.0.0.1:6379/0", namespace="acct-main")
    async with MidjourneySession(..., backend=backend, max_in_flight=3) as mj:
        handle = await mj.imagine("a red fox")      # on any worker
        task = await mj.handle(some_id).wait()      # any worker waits on any id

Every worker of a namespace (processes, machines) shares through Redis:

* the journal: each accepted id is in Redis before the submit returns, and
  ``resume()`` on any worker lists the unfinished tasks of every worker;
* the in-flight cap: ``max_in_flight`` counts across the namespace, with
  slots held as leases that a heartbeat renews, so a dead worker's slots
  come back after ``lease_ttl``; a closed session holds none, and counts its
  tasks that still run again when it reopens;
* snapshots: every snapshot a worker applies (from its poller or a webhook
  callback) is published, and every other worker offers it to its own
  forward-only state machine, so a callback landing on worker B wakes the
  wait on worker A; the webhook receivers accept callbacks about any id of
  the namespace and share one secret token, so a load balancer may send a
  callback to any of them;
* the polling: one worker, elected by a lease that lapses when it dies,
  polls the pending ids of every worker (each worker registers the ids it
  watches) and shares what it reads, at the smallest poll interval a live
  worker asked for; the others do not poll while it lives, and one of them
  takes over within about ``poller_ttl`` after it died.

Finished entries stay in Redis for ``retention`` (a day by default).

When Redis cannot be reached, submits are refused with
:class:`~midjourney_async.JournalError` before anything is sent, and waits go
on by each worker's own polling; workers pick the shared snapshots up again
once Redis is back. One backend serves one session at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "midjourney_async.redis needs redis-py: pip install 'midjourney_async[redis]'"
    ) from exc

from ._config import MIN_POLL_INTERVAL
from ._errors import ConfigurationError, TaskNotFound
from ._models import Task
from ._redis_journal import RedisJournal
from ._redis_poller import PollerLease
from ._redis_slots import RedisSlots

if TYPE_CHECKING:
    from ._state import StateTable, TaskState
    from ._tracker import Tracker

__all__ = ["RedisBackend"]

logger = logging.getLogger("midjourney_async")


class _Message(msgspec.Struct, omit_defaults=True):
    worker: str
    kind: str
    task: Task | None = None
    task_id: str | None = None
    interval: float | None = None
    soon: bool = True


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Message).decode

# Background writes waiting to be sent; past this, new ones are dropped (polling covers).
_MAX_OUTBOX = 10_000
# How long detaching waits for the background loops to end after cancelling them.
_STOP_GRACE = 3.0


class RedisBackend:
    """What workers sharing one account keep in Redis, under ``namespace``.

    ``url`` is a redis-py URL (``redis://host:6379/0``, ``rediss://``,
    ``unix:///path/redis.sock``). ``lease_ttl`` is how long an in-flight slot
    of a worker that stopped renewing it (it died) keeps counting;
    ``poller_ttl`` is how long the namespace's poller holds its lease
    without renewing it (the takeover time after it died); ``timeout``
    bounds each Redis call, so a submit is refused within it when Redis is
    gone. ``retention`` is how long, in seconds, a finished task's entry (and
    a settled submit's intent) stays in Redis after it ended (``None``: for
    ever); past it, later finishes sweep it out, and a late callback about
    that id is refused. Unfinished entries and open intents are never swept,
    nor are entries a worker with ``retention=None`` marked finished (give
    every worker of a namespace the same ``retention``).
    """

    def __init__(
        self,
        url: str,
        namespace: str = "default",
        *,
        lease_ttl: float = 10.0,
        poller_ttl: float = 3.0,
        timeout: float = 2.0,
        retention: float | None = 86400.0,
    ) -> None:
        if not namespace or not isinstance(namespace, str):
            raise ConfigurationError(f"namespace must be a non-empty string, got {namespace!r}")
        for name, value in (("lease_ttl", lease_ttl), ("poller_ttl", poller_ttl)):
            if not (isinstance(value, (int, float)) and value > 0):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        if retention is not None and not (
            isinstance(retention, (int, float)) and 0 < retention < float("inf")
        ):
            raise ConfigurationError(
                f"retention must be a positive number of seconds or None, got {retention!r}"
            )
        self.poller_ttl = float(poller_ttl)
        self.url = url
        self.namespace = namespace
        self.lease_ttl = float(lease_ttl)
        self.worker = uuid.uuid4().hex[:12]
        # Braces: every key of a namespace hashes to one slot of a Redis Cluster.
        self.key = f"mj:{{{namespace}}}"
        self.channel = f"{self.key}:events"
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.retention = None if retention is None else float(retention)
        self._journal = RedisJournal(self._client, self.key, retention=self.retention)
        self._slots: RedisSlots | None = None
        self._table: StateTable | None = None
        self._tracker: Tracker | None = None
        self.poller: PollerLease | None = None
        self._outbox: asyncio.Queue[Callable[[], Awaitable[object]]] | None = None
        self._jobs: list[asyncio.Task[None]] = []
        # This attach's token: the background loops run while it is current, so each
        # ends at its next turn once detaching began (or another attach started) even
        # when redis-py swallowed the cancellation inside a command (a known race).
        self._run: object | None = None
        self._remote = False  # set while a snapshot from another worker is applied
        self.connected = asyncio.Event()
        self.shared_applied = 0

    def __repr__(self) -> str:
        return f"<RedisBackend {self.namespace!r} worker {self.worker}>"

    # -- what the session takes from the backend ----------------------------

    def journal(self) -> RedisJournal:
        """The namespace's journal."""
        return self._journal

    def slot_limiter(
        self, limit: int, *, keep: Callable[[str], None], drop: Callable[[str], None]
    ) -> RedisSlots:
        """The namespace's in-flight cap of ``limit`` tasks."""
        self._slots = RedisSlots(
            self._client,
            f"{self.key}:slots",
            limit,
            lease_ms=int(self.lease_ttl * 1000),
            worker=self.worker,
            keep=keep,
            drop=drop,
            announce=self._announce_freed,
            send=self._send,
        )
        return self._slots

    async def webhook_token(self) -> str:
        """The callback token of the namespace, the same on every worker."""
        key = f"{self.key}:webhook-token"
        try:
            await self._client.set(key, secrets.token_urlsafe(24), nx=True)
            token = await self._client.get(key)
        except Exception as exc:
            # Callbacks then reach only this worker, which named its own URL.
            logger.warning("Redis unreachable (%r): this worker's callbacks use a token "
                           "of its own", exc)
            return secrets.token_urlsafe(24)
        assert token is not None
        return token.decode() if isinstance(token, bytes) else str(token)

    async def knows(self, task_id: str) -> bool:
        """Whether a worker of the namespace submitted ``task_id`` (for callbacks)."""
        try:
            return await self._journal.knows(task_id)
        except Exception as exc:
            logger.warning("Redis cannot tell whether task %s is ours: %r", task_id, exc)
            return False

    # -- lifecycle ----------------------------------------------------------

    async def attach(
        self, table: StateTable, tracker: Tracker, *, poll_floor: float = MIN_POLL_INTERVAL
    ) -> None:
        """Start sharing ``table``'s snapshots and ``tracker``'s polling (the session opens).

        The elected poller never polls faster than ``poll_floor`` seconds,
        whatever interval other workers (or anything writing to Redis) name.
        """
        if self._table is not None and self._table is not table:
            raise ConfigurationError("a RedisBackend serves one session at a time")
        self._table = table
        self._tracker = tracker
        table.on_applied = self._share
        self._outbox = asyncio.Queue(_MAX_OUTBOX)
        poller = self.poller = PollerLease(
            self._client,
            self.key,
            worker=self.worker,
            ttl=self.poller_ttl,
            tracker=tracker,
            send=self._send,
            announce=self._announce_watch,
            share=self._share_always,
            gone=self.gone,
            floor=poll_floor,
        )
        table.observers.append(self._settled)
        tracker.on_enlist = poller.enlisted
        tracker.gate = poller.gate
        # Settle who polls before the first tick.
        await poller.round()
        if self._slots is not None:
            try:
                await self._slots.take_back()
            except Exception as exc:
                logger.warning("could not count this worker's running tasks in the "
                               "in-flight cap again: %r", exc)
        loop = asyncio.get_running_loop()
        self._run = run = object()
        self._jobs = [
            loop.create_task(self._listen(run), name="midjourney_async-redis-listen"),
            loop.create_task(self._drain(run), name="midjourney_async-redis-send"),
            loop.create_task(self._heartbeat(run), name="midjourney_async-redis-heartbeat"),
            loop.create_task(self._elect(poller, run), name="midjourney_async-redis-poller"),
        ]
        # Snapshots published before this worker listens would be missed: wait
        # (briefly) for the subscription, and go on by polling if Redis is away.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 2.0)

    async def detach(self) -> None:
        """Stop sharing, give this worker's slots back, close the connection."""
        if self._table is not None:
            self._table.on_applied = None
            with contextlib.suppress(ValueError):
                self._table.observers.remove(self._settled)
        if self._tracker is not None:
            self._tracker.on_enlist = None
            self._tracker.gate = None
        if self.poller is not None:
            await self.poller.resign()
        outbox = self._outbox
        if outbox is not None:
            # Let queued slot releases and snapshots go out, briefly.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(outbox.join(), 2.0)
        self._run = None
        for job in self._jobs:
            job.cancel()
        if self._jobs:
            # Bounded: a cancellation lost inside redis-py leaves a loop running until
            # its next turn, where the flag ends it; closing must not hang on that.
            _, stuck = await asyncio.wait(self._jobs, timeout=_STOP_GRACE)
            for job in stuck:
                job.cancel()
        self._jobs = []
        self._outbox = None
        if self._slots is not None:
            try:
                await self._slots.give_back_all()
            except Exception as exc:
                logger.warning("could not give the in-flight slots back (they expire): %r", exc)
        self.connected.clear()
        self._table = None
        self._tracker = None
        await self._client.aclose()

    # -- sharing ------------------------------------------------------------

    def share(self, task: Task) -> None:
        """Publish ``task`` to the other workers of the namespace."""
        if self._remote:
            return
        payload = _encode(_Message(self.worker, "snapshot", task))
        self._send(lambda: self._client.publish(self.channel, payload))

    def _share(self, task: Task) -> None:
        self.share(task)

    def _settled(self, st: TaskState) -> None:
        # The server does not know the id: the other workers' waits on it end too
        # (only the poller asks, so only it can tell).
        if isinstance(st.error, TaskNotFound) and not self._remote:
            self.gone(st.id)

    def gone(self, task_id: str) -> None:
        """Tell the other workers that the server does not know ``task_id``."""
        payload = _encode(_Message(self.worker, "gone", task_id=task_id))
        self._send(lambda: self._client.publish(self.channel, payload))

    def _share_always(self, task: Task) -> None:
        # A snapshot the leader already had: published even while applying one.
        payload = _encode(_Message(self.worker, "snapshot", task))
        self._send(lambda: self._client.publish(self.channel, payload))

    def _announce_freed(self) -> None:
        payload = _encode(_Message(self.worker, "freed"))
        self._send(lambda: self._client.publish(self.channel, payload))

    def _announce_watch(self, task_id: str, soon: bool) -> None:
        # The interval rides along: the leader must poll this id that often from its
        # very next tick, not from its next round.
        interval = self.poller.own_interval if self.poller is not None else None
        payload = _encode(
            _Message(self.worker, "watch", task_id=task_id, interval=interval, soon=soon)
        )
        self._send(lambda: self._client.publish(self.channel, payload))

    def _send(self, job: Callable[[], Awaitable[object]]) -> None:
        outbox = self._outbox
        if outbox is None:
            return
        try:
            outbox.put_nowait(job)
        except asyncio.QueueFull:
            logger.warning("Redis writes are backing up; a shared update was dropped")

    async def _drain(self, run: object) -> None:
        assert self._outbox is not None
        outbox = self._outbox
        warned = 0.0
        while self._run is run:
            job = await outbox.get()
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                now = time.monotonic()
                if now - warned > 10:
                    warned = now
                    logger.warning("Redis write failed; polling carries on: %r", exc)
            finally:
                outbox.task_done()

    def _receive(self, data: bytes) -> None:
        try:
            message = _decode(data)
        except msgspec.DecodeError:
            logger.warning("ignored a message on %s that is not ours", self.channel)
            return
        if message.worker == self.worker:
            return
        if message.kind == "freed":
            if self._slots is not None:
                self._slots.freed.set()
        elif message.kind == "watch" and message.task_id and self.poller is not None:
            self.poller.watch_remote(
                message.task_id, newcomer=True, interval=message.interval, soon=message.soon
            )
        elif message.kind == "gone" and message.task_id and self._table is not None:
            st = self._table.get(message.task_id)
            if st is not None and not st.done:
                self._remote = True
                try:
                    self._table.fail(st, TaskNotFound(st.id))
                finally:
                    self._remote = False
        elif message.kind == "snapshot" and message.task is not None:
            table = self._table
            if table is None:
                return
            self._remote = True
            try:
                if table.apply(message.task):
                    self.shared_applied += 1
            finally:
                self._remote = False

    async def _listen(self, run: object) -> None:
        pause = 0.1
        while self._run is run:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                if not self.connected.is_set():
                    self.connected.set()
                    if pause > 0.1:
                        logger.warning("Redis is back: sharing snapshots again")
                pause = 0.1
                while self._run is run:
                    msg: Any = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1.0
                    )
                    if msg is not None and msg.get("type") == "message":
                        self._receive(msg["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set() or pause == 0.1:
                    logger.warning(
                        "Redis unreachable (%r): waits go on by this worker's own polling, "
                        "submits are refused until it is back",
                        exc,
                    )
                self.connected.clear()
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _elect(self, poller: PollerLease, run: object) -> None:
        while self._run is run:
            await asyncio.sleep(poller.every)
            await poller.round()

    async def _heartbeat(self, run: object) -> None:
        every = self.lease_ttl / 3
        while self._run is run:
            await asyncio.sleep(every)
            if self._slots is None:
                continue
            try:
                await self._slots.renew()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("could not renew the in-flight slot leases: %r", exc)
