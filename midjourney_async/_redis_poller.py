"""One poller per namespace: a lease in Redis elects which worker polls.

Every worker registers the ids its poller takes on (a sorted set scored by
when the registration lapses, renewed while the worker still watches them)
and announces each new one. The worker holding the lease (``SET NX PX``,
renewed while it lives) holds every registered id in its own poller and so
asks the server about all of them, once per tick; what it reads reaches the
others through the shared snapshots. The others skip their ticks while a live
leader exists, and poll for themselves again when Redis cannot be reached.
When the leader dies its lease lapses and another worker takes it over on its
next round, within about ``ttl`` plus a third of it.

Workers may ask for different poll intervals (one with a webhook polls
slowly, as a safety net; one without relies on polling). Each registers the
interval it asked for, renewed like its ids, and names it when it announces
an id; the leader polls at the smallest interval of the live workers, and
goes back to its own when those workers are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._errors import TaskNotFound

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ._models import Task
    from ._state import TaskState
    from ._tracker import Tracker

__all__ = ["PollerLease"]

logger = logging.getLogger("midjourney_async")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class PollerLease:
    """This worker's part in electing the namespace's poller, and in feeding it ids."""

    def __init__(
        self,
        client: Redis,
        key: str,
        *,
        worker: str,
        ttl: float,
        tracker: Tracker,
        send: Callable[[Callable[[], Awaitable[object]]], None],
        announce: Callable[[str, bool], None],
        share: Callable[[Task], None],
        gone: Callable[[str], None],
        floor: float,
    ) -> None:
        self._client = client
        self.key = f"{key}:poller"
        self.registry = f"{key}:watched"
        self.worker = worker
        self.ttl_ms = int(ttl * 1000)
        self.every = ttl / 3
        # A registration lapses when its worker stops renewing it (it died, or
        # stopped waiting); long enough to outlive a few missed rounds.
        self.keep_ms = max(3 * self.ttl_ms, 5000)
        self.tracker = tracker
        self._send = send
        self._announce = announce
        self._share = share
        self._gone = gone
        self._renew = client.register_script(_RENEW)
        self._resign = client.register_script(_RESIGN)
        self.leading = False
        self.leader: str | None = None
        self.takeovers = 0
        # The interval this worker asked for; the leader may poll faster for others,
        # never faster than the session's floor (what others name is not checked).
        self.floor = floor
        self.own_interval = tracker.interval
        self.intervals = f"{key}:intervals"
        # Ids held for other workers (leader only).
        self._remote: dict[str, TaskState] = {}

    def __repr__(self) -> str:
        role = "leading" if self.leading else f"leader {self.leader}"
        return f"<PollerLease {self.key} {role}>"

    def gate(self) -> bool:
        """Whether this worker's poller should read: it leads, or no live leader is known."""
        return self.leading or self.leader is None

    def enlisted(self, task_id: str) -> None:
        """The local poller took ``task_id`` on: register it and tell the leader."""
        if task_id in self._remote:
            return
        until = int(time.time() * 1000) + self.keep_ms
        registry = self.registry
        # Asked about at once here too (nothing known of it, as for handle(id)), or,
        # like a fresh submit, only after an interval: the leader does the same.
        st = self.tracker.table.get(task_id)
        soon = st is None or (st.status is None and st.due <= time.monotonic())

        async def register() -> None:
            await self._client.zadd(registry, {task_id: until})
            self._announce(task_id, soon)

        self._send(register)

    def watch_remote(
        self,
        task_id: str,
        *,
        newcomer: bool = False,
        interval: float | None = None,
        soon: bool = True,
    ) -> None:
        """Another worker watches ``task_id`` and polls every ``interval`` (if named):
        the leader polls it too, at least that often, first at once if ``soon`` (else
        after an interval, as a fresh submit). A ``newcomer`` (just announced) gets
        what the leader knows of it at once: the task may have moved on, or ended,
        before that worker asked."""
        if not self.leading:
            return
        tracker = self.tracker
        if interval is not None:
            pace = self._pace(interval)
            if pace is not None and pace < tracker.interval:
                tracker.interval = pace
        known = tracker.table.get(task_id)
        if newcomer and known is not None:
            if isinstance(known.error, TaskNotFound):
                self._gone(task_id)
            elif known.task is not None:
                self._share(known.task)
        if task_id in self._remote:
            return
        st = tracker.state(task_id)
        if st.done:
            return
        self._remote[task_id] = st
        if soon:
            tracker.ask_soon(st)
        tracker.hold(st)

    def _drop_remote(self, task_id: str) -> None:
        st = self._remote.pop(task_id, None)
        if st is not None:
            self.tracker.unhold(st)

    async def round(self) -> None:
        """One round: renew or seek the lease, renew this worker's registrations,
        and (leading) take on every registered id."""
        client = self._client
        took = False
        try:
            if self.leading and await self._renew(
                keys=[self.key], args=[self.worker, self.ttl_ms]
            ):
                pass
            elif await client.set(self.key, self.worker, nx=True, px=self.ttl_ms):
                if not self.leading:
                    took = True
                    self.takeovers += 1
                    logger.info("this worker now polls for namespace %s", self.key)
                self.leading = True
            else:
                self.leading = False
                holder = await client.get(self.key)
                self.leader = holder.decode() if isinstance(holder, bytes) else holder
            if self.leading:
                self.leader = self.worker
            await self._register_mine()
            if self.leading:
                self.tracker.interval = await self._fastest()
                await self._take_registered(soon=took)
            else:
                self.tracker.interval = self.own_interval
                for task_id in list(self._remote):
                    self._drop_remote(task_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.leader is not None or self.leading:
                logger.warning(
                    "Redis unreachable (%r): this worker polls its own tasks meanwhile", exc
                )
            self.leading = False
            self.leader = None
            self.tracker.interval = self.own_interval

    async def _register_mine(self) -> None:
        mine = [
            st.id
            for st in (self.tracker.table.get(i) for i in self.tracker.watched_ids)
            if st is not None and (st.id not in self._remote or st.waiters or st.holds > 1)
        ]
        now = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        # A dead worker's pace lapses as fast as a dead poller's lease.
        pipe.zadd(self.intervals, {f"{self.worker} {self.own_interval!r}": now + self.ttl_ms})
        if mine:
            pipe.zadd(self.registry, dict.fromkeys(mine, now + self.keep_ms))
        await pipe.execute()

    async def _fastest(self) -> float:
        """The smallest poll interval a live worker of the namespace asked for."""
        now = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(self.intervals, "-inf", now)
        pipe.zrangebyscore(self.intervals, now, "+inf")
        _, raw = await pipe.execute()
        asked = [self.own_interval]
        for member in raw:
            text = member.decode() if isinstance(member, bytes) else str(member)
            with contextlib.suppress(ValueError, IndexError):
                pace = self._pace(float(text.split()[1]))
                if pace is not None:
                    asked.append(pace)
        return min(asked)

    def _pace(self, interval: float) -> float | None:
        """The interval the leader may poll at for a worker that asked for ``interval``
        (None: not a number of seconds, ignored)."""
        if not (0 < interval < math.inf):
            logger.debug("ignored a poll interval of %r from Redis", interval)
            return None
        return max(self.floor, interval)

    async def _take_registered(self, *, soon: bool) -> None:
        """Hold every registered id. Asked about at once only by a new leader (those
        ids may be overdue); otherwise an id found here is one whose announcement
        is on its way: a fresh submit, first asked about after an interval."""
        now = int(time.time() * 1000)
        await self._client.zremrangebyscore(self.registry, "-inf", now)
        raw = await self._client.zrangebyscore(self.registry, now, "+inf")
        live = {r.decode() if isinstance(r, bytes) else str(r) for r in raw}
        for task_id in live:
            self.watch_remote(task_id, soon=soon)
        for task_id, st in list(self._remote.items()):
            if task_id not in live or st.done:
                self._drop_remote(task_id)

    async def resign(self) -> None:
        """Give the lease up (the session closes), so another worker takes over at once."""
        for task_id in list(self._remote):
            self._drop_remote(task_id)
        self.tracker.interval = self.own_interval
        try:
            await self._client.zrem(self.intervals, f"{self.worker} {self.own_interval!r}")
        except Exception as exc:
            logger.debug("could not withdraw the poll interval (it lapses): %r", exc)
        if self.leading:
            self.leading = False
            try:
                await self._resign(keys=[self.key], args=[self.worker])
            except Exception as exc:
                logger.warning("could not give the poller lease up (it lapses): %r", exc)
