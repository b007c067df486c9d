"""The journal in Redis: one journal for every worker of a namespace.

Entries live in one hash (task id -> entry), the unfinished ones are also in
a sorted set scored by submit time, so ``unfinished()`` on any worker lists
the tasks of every worker, dead or alive. Intents (submits on their way) are
kept the same way. Each write is one round trip that returns only once Redis
has it; a write that fails raises, and the session then refuses the submit
(before sending, for an intent) with :class:`JournalError`.
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

_FINISH = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
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

    def __init__(self, client: Redis, key: str) -> None:
        self._client = client
        self._tasks = f"{key}:tasks"
        self._open = f"{key}:open"
        self._intents = f"{key}:intents"
        self._intents_open = f"{key}:intents:open"
        self._record = client.register_script(_RECORD)
        self._finish = client.register_script(_FINISH)

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
        done = msgspec.structs.replace(entry, finished_at=_now(), status=status)
        await self._finish(keys=[self._tasks, self._open], args=[task_id, _encode(done)])

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
        await pipe.execute()

    async def settle_intent(self, tag: str, outcome: str) -> None:
        # The entry stays (with its outcome) for a look later; only the open mark goes.
        row = await self._client.hget(self._intents, tag)
        pipe = self._client.pipeline(transaction=True)
        if row is not None:
            pipe.hset(self._intents, tag, _encode(msgspec.structs.replace(
                _decode(row), status=outcome, finished_at=_now()
            )))
        pipe.zrem(self._intents_open, tag)
        await pipe.execute()

    async def unconfirmed(self) -> list[JournalEntry]:
        tags = await self._client.zrange(self._intents_open, 0, -1)
        return await self._entries(self._intents, tags)

    async def close(self) -> None:
        """Nothing to release: the backend owns the connection."""


def _now() -> int:
    return int(time.time() * 1000)
