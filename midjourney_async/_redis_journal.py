"""The journal in Redis: one journal for every worker of a namespace.

Entries live in one hash (task id -> entry), the unfinished ones are also in
a sorted set scored by submit time, so ``unfinished()`` on any worker lists
the tasks of every worker, dead or alive. Intents (submits on their way) are
kept the same way. Finished entries and settled intents are kept for
``retention`` (a day by default), in a sorted set scored by when they ended;
each later finish sweeps out a bounded batch of those past it, so the
namespace does not grow for ever. Unfinished entries and open intents are
never swept.

Each write is one round trip that returns only once Redis has it; a write
that fails raises, and the session then refuses the submit (before sending,
for an intent) with :class:`JournalError`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from ._journal import JournalEntry

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisJournal"]

_RECORD = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  return 1
end
return 0
"""

# Entries that ended before ARGV[1] leave the hash KEYS[1] and the set KEYS[2], a batch at a time.
# One open again (KEYS[3]: a state tag reused by a later submit, or an end time left by an
# older worker) only loses its stale end time: it gets a new one when it ends again.
_SWEEP = """
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 100)
if #old > 0 then
  local gone = {}
  for _, member in ipairs(old) do
    if not redis.call('ZSCORE', KEYS[3], member) then
      gone[#gone + 1] = member
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[1], unpack(gone))
  end
  redis.call('ZREM', KEYS[2], unpack(old))
end
return #old
"""

_FINISH = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if ARGV[3] ~= '' then
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
  end
  return 1
end
return 0
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(JournalEntry).decode


class RedisJournal:
    """A :class:`~midjourney_async.IntentJournal` shared by every worker of a namespace.

    Made by :class:`~midjourney_async.redis.RedisBackend`; the backend owns
    the connection, so :meth:`close` leaves it open.
    """

    def __init__(self, client: Redis, key: str, *, retention: float | None = None) -> None:
        self._client = client
        self.retention_ms = None if retention is None else int(retention * 1000)
        self._tasks = f"{key}:tasks"
        self._open = f"{key}:open"
        self._ended = f"{key}:ended"
        self._intents = f"{key}:intents"
        self._intents_open = f"{key}:intents:open"
        self._intents_ended = f"{key}:intents:ended"
        self._record = client.register_script(_RECORD)
        self._finish = client.register_script(_FINISH)
        self._sweep = client.register_script(_SWEEP)

    def __repr__(self) -> str:
        return f"<RedisJournal {self._tasks}>"

    async def record(self, entry: JournalEntry) -> None:
        if not entry.submitted_at:
            entry = msgspec.structs.replace(entry, submitted_at=_now())
        await self._record(
            keys=[self._tasks, self._open],
            args=[entry.task_id, _encode(entry), entry.submitted_at],
        )

    async def finish(self, task_id: str, status: str) -> None:
        entry = await self.get(task_id)
        if entry is None or entry.finished_at is not None:
            return
        now = _now()
        done = msgspec.structs.replace(entry, finished_at=now, status=status)
        kept = self.retention_ms is not None
        await self._finish(
            keys=[self._tasks, self._open, self._ended],
            args=[task_id, _encode(done), now if kept else ""],
        )
        await self._swept(self._tasks, self._open, self._ended, now)

    async def _swept(self, hash_key: str, still_open: str, ended: str, now: int) -> None:
        if self.retention_ms is not None:
            await self._sweep(
                keys=[hash_key, ended, still_open], args=[now - self.retention_ms]
            )

    async def _entries(self, hash_key: str, ids: Any) -> list[JournalEntry]:
        if not ids:
            return []
        rows = await self._client.hmget(hash_key, ids)
        return [_decode(row) for row in rows if row is not None]

    async def unfinished(self) -> list[JournalEntry]:
        ids = await self._client.zrange(self._open, 0, -1)
        return await self._entries(self._tasks, ids)

    async def get(self, task_id: str) -> JournalEntry | None:
        row = await self._client.hget(self._tasks, task_id)
        return _decode(row) if row is not None else None

    async def knows(self, task_id: str) -> bool:
        """Whether any worker of the namespace submitted ``task_id``."""
        return bool(await self._client.hexists(self._tasks, task_id))

    async def intend(self, entry: JournalEntry) -> None:
        tag = entry.state or ""
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(self._intents, tag, _encode(entry))
        pipe.zadd(self._intents_open, {tag: entry.submitted_at or _now()})
        # The tag may be a state reused from a settled submit: its end time is not this one's.
        pipe.zrem(self._intents_ended, tag)
        await pipe.execute()

    async def settle_intent(self, tag: str, outcome: str) -> None:
        # The entry stays (with its outcome) for a look later; only the open mark goes.
        row = await self._client.hget(self._intents, tag)
        now = _now()
        pipe = self._client.pipeline(transaction=True)
        if row is not None:
            pipe.hset(self._intents, tag, _encode(msgspec.structs.replace(
                _decode(row), status=outcome, finished_at=now
            )))
        pipe.zrem(self._intents_open, tag)
        if self.retention_ms is not None:
            pipe.zadd(self._intents_ended, {tag: now})
        await pipe.execute()
        await self._swept(self._intents, self._intents_open, self._intents_ended, now)

    async def unconfirmed(self) -> list[JournalEntry]:
        tags = await self._client.zrange(self._intents_open, 0, -1)
        return await self._entries(self._intents, tags)

    async def close(self) -> None:
        """Nothing to release: the backend owns the connection."""


def _now() -> int:
    return int(time.time() * 1000)
