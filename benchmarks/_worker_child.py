"""One worker process of benchmarks/bench_workers.py, driven line by line over its pipes.

    python _worker_child.py '{"base": ..., "key": ..., "redis": url or null, ...}'

Options (JSON): ``redis`` (a RedisBackend URL, or null for an independent
session), ``namespace``, ``poll`` (poll_interval), ``cap`` (max_in_flight),
``hook_port`` (run the webhook receiver there), ``journal`` (a SQLite file).

Prints ``ready <worker id> <webhook url or ->`` once open, then obeys commands
read from stdin, one a line:

  submit N     submit N imagines at once (through the cap), print ``submitted <ids>``,
               then wait on each in the background: ``returned <id> <monotonic>`` as each
               wait returns (a failed task counts), ``done <list requests sent>`` at the end
  resume       print ``resumed <ids>`` (the unfinished tasks resume() hands back), then
               wait on those this worker did not submit, printing as ``submit`` does
  exit         close the session and end

``time.monotonic`` is CLOCK_MONOTONIC on Linux, one clock for every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from midjourney_async import MidjourneyError, MidjourneySession, TaskHandle, WebhookConfig


def say(*words: object) -> None:
    print(*words, flush=True)


async def watch(handles: list[TaskHandle], mj: MidjourneySession) -> None:
    async def one(handle: TaskHandle) -> None:
        # A failed task ended all the same; a timeout is the bench's to notice.
        with contextlib.suppress(MidjourneyError):
            await handle.wait(timeout=300)
        say("returned", handle.id, repr(time.monotonic()))

    await asyncio.gather(*(one(h) for h in handles))
    say("done", mj.tracker_stats.list_requests)


async def main(opts: dict[str, Any]) -> None:
    options: dict[str, Any] = {"poll_interval": float(opts.get("poll", 0.5))}
    backend = None
    if opts.get("redis"):
        from midjourney_async.redis import RedisBackend

        backend = RedisBackend(opts["redis"], namespace=opts.get("namespace", "bench"))
        options["backend"] = backend
    if opts.get("cap"):
        options["max_in_flight"] = int(opts["cap"])
    if opts.get("hook_port"):
        options["webhook"] = WebhookConfig(
            port=int(opts["hook_port"]), poll_interval=options["poll_interval"]
        )
    if opts.get("journal"):
        options["journal"] = opts["journal"]
    jobs: list[asyncio.Task[None]] = []
    mine: set[str] = set()
    async with MidjourneySession(opts["base"], opts["key"], **options) as mj:
        say("ready", backend.worker if backend else "-", mj.webhook_url or "-")
        while True:
            line: str = await asyncio.to_thread(sys.stdin.readline)
            words = line.split()
            if not words or words[0] == "exit":
                break
            if words[0] == "submit":
                n = int(words[1])
                handles = list(
                    await asyncio.gather(*(mj.imagine(f"bench task {i}") for i in range(n)))
                )
                mine.update(h.id for h in handles)
                say("submitted", *(h.id for h in handles))
                jobs.append(asyncio.ensure_future(watch(handles, mj)))
            elif words[0] == "resume":
                resumed = await mj.resume()
                say("resumed", *(h.id for h in resumed))
                others = [h for h in resumed if h.id not in mine]
                jobs.append(asyncio.ensure_future(watch(others, mj)))
        for job in jobs:
            job.cancel()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
