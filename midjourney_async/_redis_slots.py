"""In-flight slots counted in Redis: one cap for every worker of a namespace.

Each slot is a lease, a member of one sorted set scored by the time it
expires. A worker takes one only while the set holds fewer live leases than
the cap (one script: drop the expired, count, add), refreshes the leases it
holds on a heartbeat (putting back those of running tasks, should Redis have
lost them), and removes a lease when its task settles. A worker
that dies stops refreshing, so its leases expire and the slots come back.
A session that closes removes its leases; its slots stay bound to their
tasks here, and when it reopens it holds them again for the tasks that
still run (whatever the count: they are in flight on the account).
Workers waiting for a slot wake on a "slot freed" message, and look again a
few times a second anyway, since an expiry sends no message.

:meth:`RedisSlots.acquire` refuses with :class:`JournalError` (nothing was
sent) when Redis cannot be reached: a cap nobody can count is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._errors import JournalError, SessionClosed, SlotTimeout
from ._slots import BoundSlots, Slot

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisSlots"]

logger = logging.getLogger("midjourney_async")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_TAKE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  return 1
end
return 0
"""

# ARGV[2] leases from ARGV[3] on are bound to running tasks: put back should they be
# missing (Redis lost its data, or holding them failed); the others only renewed.
_RENEW = _NOW + """
local bound = tonumber(ARGV[2])
for i = 3, #ARGV do
  if i - 2 <= bound then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
  else
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
  end
end
return 0
"""

_HOLD = _NOW + """
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
return 0
"""

# How often a waiting acquire looks again without a message (an expired lease sends none).
_LOOK_AGAIN = 0.25


class _Lease(Slot):
    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token


class RedisSlots(BoundSlots[_Lease]):
    """A :class:`~midjourney_async._slots.SlotLimiter` whose slots are leases in Redis.

    ``freed`` is set by the backend when any worker announces a freed slot;
    ``send(coro_factory)`` runs a Redis write in the background, in order.
    """

    def __init__(
        self,
        client: Redis,
        key: str,
        limit: int,
        *,
        lease_ms: int,
        worker: str,
        keep: Callable[[str], None],
        drop: Callable[[str], None],
        announce: Callable[[], None],
        send: Callable[[Callable[[], Awaitable[object]]], None],
    ) -> None:
        super().__init__(keep=keep, drop=drop)
        self.limit = limit
        self._client = client
        self.key = key
        self._lease_ms = lease_ms
        self._worker = worker
        self._announce = announce
        self._send = send
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)
        self._hold = client.register_script(_HOLD)
        # Every lease this worker holds, bound or not: the heartbeat renews them.
        self.leases: set[str] = set()
        self.freed = asyncio.Event()
        self._closing = False

    def __repr__(self) -> str:
        return f"<RedisSlots {len(self.leases)} held here, cap {self.limit} on {self.key}>"

    async def acquire(self, timeout: float) -> Slot:
        end = time.monotonic() + timeout
        token = f"{self._worker}:{secrets.token_hex(6)}"
        while True:
            if self._closing:
                raise SessionClosed(None)
            self.freed.clear()
            self.leases.add(token)
            try:
                took = await self._take(
                    keys=[self.key], args=[self.limit, self._lease_ms, token]
                )
            except asyncio.CancelledError:
                # The script may have run: give the lease back rather than wait for expiry.
                self._give_back_token(token)
                raise
            except Exception as exc:
                self.leases.discard(token)
                raise JournalError(
                    [], f"Redis cannot count the in-flight cap: {exc!r}; nothing was sent"
                ) from exc
            if took:
                return _Lease(token)
            self.leases.discard(token)
            left = end - time.monotonic()
            if left <= 0:
                raise SlotTimeout(self.limit, timeout)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.freed.wait(), min(left, _LOOK_AGAIN))

    def _own(self, slot: Slot) -> _Lease:
        assert isinstance(slot, _Lease)
        return slot

    def close(self) -> None:
        self._closing = True
        self.freed.set()

    def reopen(self) -> None:
        self._closing = False

    def _give_back(self, slot: _Lease) -> None:
        self._give_back_token(slot.token)

    def _give_back_token(self, token: str) -> None:
        # Not renewed from now on: should the removal fail, the lease expires anyway.
        self.leases.discard(token)

        async def remove() -> None:
            await self._client.zrem(self.key, token)
            self._announce()

        self._send(remove)

    async def renew(self) -> None:
        """Push the expiry of every lease held here forward (the heartbeat).

        The leases of running tasks are put back when missing, whatever the
        count (their tasks are in flight on the account); a lease not yet
        bound to a task that is gone stays gone (its acquire may have failed).
        """
        if not self.leases:
            return
        bound = [s.token for s in self._bound.values() if s.token in self.leases]
        rest = self.leases.difference(bound)
        await self._renew(keys=[self.key], args=[self._lease_ms, len(bound), *bound, *rest])
        # A task that settled meanwhile gave its lease back, maybe before the
        # script put it back: remove it again, or it would count until it expires.
        late = [t for t in bound if t not in self.leases]
        if late:
            await self._client.zrem(self.key, *late)

    async def give_back_all(self) -> None:
        """Remove every lease held here (the session is closing).

        The slots stay bound to their tasks here: should the session reopen
        while they run, :meth:`take_back` counts them again.
        """
        held = list(self.leases)
        self.leases.clear()
        if held:
            await self._client.zrem(self.key, *held)

    async def take_back(self) -> None:
        """Hold again the slots of tasks that still run (the session reopened).

        Taken whatever the count: the tasks run on the account, so they are
        in flight; new submits wait until they end.
        """
        tokens = [slot.token for slot in self._bound.values()]
        if tokens:
            self.leases.update(tokens)
            await self._hold(keys=[self.key], args=[self._lease_ms, *tokens])
