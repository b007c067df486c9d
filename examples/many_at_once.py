"""Submit 100 prompts at once and handle each result as soon as it is ready.

``max_in_flight`` keeps at most 10 tasks on the account at a time, so the
burst becomes a steady stream instead of a wall of queue-full errors. One
shared poller watches every pending task with a few batched requests a tick.

    python examples/many_at_once.py
"""

import asyncio

from _common import open_session

from midjourney_async import MidjourneyError


async def main() -> None:
    prompts = [f"a tiny robot number {i}, watercolor" for i in range(100)]
    async with open_session(max_in_flight=10, emulator={"concurrency": 10}) as mj:
        handles = await asyncio.gather(*(mj.imagine(p) for p in prompts))
        done = failed = 0
        async for handle in mj.as_completed(handles, timeout=1800):
            try:
                task = await handle
                done += 1
                if done % 20 == 0:
                    print(f"{done} finished, latest {task.id}: {task.image_url}")
            except MidjourneyError as exc:
                failed += 1
                print(f"{handle.id} failed: {exc}")
        stats = mj.tracker_stats
        print(f"{done} succeeded, {failed} failed")
        print(
            f"status requests: {stats.list_requests} list-by-condition, "
            f"{stats.fetch_requests} single fetches, over {stats.ticks} poll ticks"
        )


if __name__ == "__main__":
    asyncio.run(main())
