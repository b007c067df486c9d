"""The shared tracker against a per-task fetch loop (the way peers poll), in the same run.

The emulator runs in its own process (unlimited concurrency and queue), so
``time.process_time()`` here is the client's CPU alone; request counts come
from the emulator's ``GET /_emulator/stats``.

1. Steady state: N tasks that hang IN_PROGRESS on the server. Each poller
   polls all of them at the same cadence for the same number of ticks (our
   tracker through real waiters and its background loop; the hand-written
   batched loop of _yardstick.py: list-by-condition, 100 ids a request, 8 at
   once, aiohttp + msgspec only; the peer loop as one coroutine per task:
   sleep, GET fetch, decode), in interleaved rounds, medians of five (three
   at N=10,000).
   Figures: status requests per tick and client CPU per task status.
2. Completion: N tasks that finish over a few seconds, polled until done at
   the same cadence. Figures: requests sent and client CPU per completed task.
3. Memory: tracemalloc, after a garbage collection, per pending handle
   holding its decoded IN_PROGRESS snapshot: alone, with one ``wait()``
   coroutine each, and under one ``wait_all``.

    python benchmarks/bench_polling.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, delta, in_progress_body, report
from _yardstick import HandWritten

from midjourney_async import MidjourneySession, TaskHandle
from midjourney_async._dialects.proxy import decode_task
from midjourney_async._models import TERMINAL

FETCH = "task/fetch"
LIST = "task/list-by-condition"
TICK = 0.5  # seconds between polls of one task, for both pollers
COMPLETION_TICK = 1.0
BATCHED_GOAL = 1.1  # ours / the hand-written batched loop, CPU per status
WAIT_EACH_KB = 2.0  # memory per pending handle with one wait() coroutine each
WAIT_ALL_KB = 1.0  # memory per pending handle under one wait_all


async def submit(mj: MidjourneySession, n: int, tag: str) -> list[TaskHandle]:
    limit = asyncio.Semaphore(64)

    async def one(i: int) -> TaskHandle:
        async with limit:
            return await mj.imagine(f"polling bench {tag} {i}")

    return list(await asyncio.gather(*(one(i) for i in range(n))))


def session(emu: EmulatorProcess, interval: float) -> MidjourneySession:
    mj = MidjourneySession(emu.base_url, emu.api_key, poll_interval=interval)
    # Same cadence for queued and running tasks: the peer loop knows no difference.
    mj._tracker.queued_factor = 1.0
    return mj


class PeerPoller:
    """What peers do: one coroutine per task, sleep, GET fetch, decode, repeat."""

    def __init__(self, emu: EmulatorProcess) -> None:
        self.base = emu.base_url + "/mj/task/"
        self.headers = {"mj-api-secret": emu.api_key}
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PeerPoller:
        self.http = aiohttp.ClientSession(headers=self.headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def fetch(self, task_id: str) -> Any:
        assert self.http is not None
        async with self.http.get(f"{self.base}{task_id}/fetch") as resp:
            return decode_task(await resp.read())

    async def poll(self, task_id: str, interval: float, ticks: int | None) -> None:
        done = 0
        while ticks is None or done < ticks:
            await asyncio.sleep(interval)
            task = await self.fetch(task_id)
            done += 1
            if ticks is None and task is not None and task.status in TERMINAL:
                return


# -- 1. steady state ---------------------------------------------------------


async def until(condition: Any, timeout: float = 120.0) -> None:
    for _ in range(int(timeout / 0.001)):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise TimeoutError("benchmark condition not met")


def counters(emu: EmulatorProcess) -> dict[str, int]:
    """Status requests and task statuses served so far (server side)."""
    stat = emu.stats()
    req = stat["requests"]
    return {
        "requests": req.get(LIST, 0) + req.get(FETCH, 0),
        "statuses": stat["list_ids"] + stat["fetch_ids"],
    }


async def steady_tracker(emu: EmulatorProcess, ids: list[str], ticks: int) -> dict[str, float]:
    async with session(emu, TICK) as mj:
        handles = [mj.handle(i) for i in ids]
        waiters = [asyncio.ensure_future(h.wait(timeout=3600)) for h in handles]
        stats = mj.tracker_stats
        await until(lambda: stats.ticks >= 1)
        first = time.monotonic()  # the first warm-up sweep began (connections, snapshots)
        n = len(ids)

        def seen() -> int:
            return stats.snapshots_applied + stats.snapshots_dropped

        # Two warm-up sweeps: the first keeps each row as it came in, the second
        # finds it unchanged and packs the snapshot; the steady state begins there.
        await until(lambda: seen() >= 2 * n)
        before, ticks0 = counters(emu), stats.ticks
        c0 = time.process_time()
        # Sleep through the window; look closely only as its last sweep ends.
        await asyncio.sleep(max(0.0, first + (ticks + 1) * TICK - time.monotonic()))
        await until(lambda: seen() >= n * (ticks + 2))
        cpu = time.process_time() - c0
        after = counters(emu)
        swept = stats.ticks - ticks0
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return {
        "cpu": cpu,
        "requests": after["requests"] - before["requests"],
        "ticks": swept,
        "statuses": after["statuses"] - before["statuses"],
    }


async def steady_peer(emu: EmulatorProcess, ids: list[str], ticks: int) -> dict[str, float]:
    async with PeerPoller(emu) as peer:
        await asyncio.gather(*(peer.poll(i, 0.0, 1) for i in ids[:200]))  # warm connections
        before = counters(emu)
        c0 = time.process_time()
        await asyncio.gather(*(peer.poll(i, TICK, ticks) for i in ids))
        cpu = time.process_time() - c0
        after = counters(emu)
    return {
        "cpu": cpu,
        "requests": after["requests"] - before["requests"],
        "ticks": ticks,
        "statuses": after["statuses"] - before["statuses"],
    }


async def steady_batched(emu: EmulatorProcess, ids: list[str], ticks: int) -> dict[str, float]:
    """The hand-written batched loop: every id through list-by-condition once per tick."""
    async with HandWritten(emu.base_url, emu.api_key) as hand:
        await hand.sweep(ids)  # warm up, as our side's first sweep
        before = counters(emu)
        c0 = time.process_time()
        await asyncio.sleep(TICK)
        await hand.steady(ids, TICK, ticks)
        cpu = time.process_time() - c0
        after = counters(emu)
    return {
        "cpu": cpu,
        "requests": after["requests"] - before["requests"],
        "ticks": ticks,
        "statuses": after["statuses"] - before["statuses"],
    }


async def steady(emu: EmulatorProcess, n: int, ticks: int, rounds: int) -> list[Row]:
    async with session(emu, 3600) as mj:
        hung = [h.id for h in await submit_hung(mj, n)]
    await asyncio.sleep(2.5)  # at speed 20 every plan has reached its hang point
    ours: list[dict[str, float]] = []
    peer: list[dict[str, float]] = []
    batched: list[dict[str, float]] = []
    for _ in range(rounds):
        ours.append(await steady_tracker(emu, hung, ticks))
        batched.append(await steady_batched(emu, hung, ticks))
        peer.append(await steady_peer(emu, hung, ticks))

    def per_status(runs: list[dict[str, float]]) -> float:
        return statistics.median(r["cpu"] / r["statuses"] for r in runs) * 1e6

    def per_tick(runs: list[dict[str, float]]) -> float:
        return statistics.median(r["requests"] / r["ticks"] for r in runs)

    label = f"N={n:,}"
    ours_us, peer_us, batched_us = per_status(ours), per_status(peer), per_status(batched)
    ratio = peer_us / ours_us
    # Per round, side by side: the ratio of medians hides a round that went badly.
    to_batched = statistics.median(
        (o["cpu"] / o["statuses"]) / (b["cpu"] / b["statuses"])
        for o, b in zip(ours, batched, strict=True)
    )
    ours_rpt = per_tick(ours)
    want = math.ceil(n / 100)
    rows = [
        Row("polling", f"{label} steady: ours, CPU per task status", ours_us, "us/status"),
        Row("polling", f"{label} steady: hand-written batched, CPU per status", batched_us,
            "us/status"),
        Row("polling", f"{label} steady: ours / hand-written batched CPU", to_batched, "x",
            f"<= {BATCHED_GOAL}", to_batched <= BATCHED_GOAL),
        Row("polling", f"{label} steady: per-task fetch, CPU per status", peer_us, "us/status"),
        Row("polling", f"{label} steady: per-task / ours CPU", ratio, "x", ">= 10", ratio >= 10),
        Row(
            "polling",
            f"{label} steady: ours, status requests per tick",
            ours_rpt,
            "req/tick",
            f"= {want}",
            ours_rpt <= want,
        ),
        Row("polling", f"{label} steady: per-task, requests per tick", per_tick(peer), "req/tick"),
    ]
    return rows


async def submit_hung(mj: MidjourneySession, n: int) -> list[TaskHandle]:
    limit = asyncio.Semaphore(64)

    async def one(i: int) -> TaskHandle:
        async with limit:
            return await mj.imagine(f"polling bench hung {i} --emu-hang")

    return list(await asyncio.gather(*(one(i) for i in range(n))))


# -- 2. completion -----------------------------------------------------------


async def complete_ours(emu: EmulatorProcess, n: int) -> dict[str, float]:
    async with session(emu, COMPLETION_TICK) as mj:
        handles = await submit(mj, n, "ours")
        before = emu.requests()
        c0 = time.process_time()
        w0 = time.perf_counter()
        await mj.wait_all(handles, timeout=120)
        cpu = time.process_time() - c0
        wall = time.perf_counter() - w0
        after = emu.requests()
    return {
        "cpu": cpu,
        "wall": wall,
        "requests": delta(after, before, LIST) + delta(after, before, FETCH),
    }


async def complete_peer(emu: EmulatorProcess, n: int) -> dict[str, float]:
    async with session(emu, 3600) as mj:
        ids = [h.id for h in await submit(mj, n, "peer")]
    async with PeerPoller(emu) as peer:
        before = emu.requests()
        c0 = time.process_time()
        w0 = time.perf_counter()
        await asyncio.gather(*(peer.poll(i, COMPLETION_TICK, None) for i in ids))
        cpu = time.process_time() - c0
        wall = time.perf_counter() - w0
        after = emu.requests()
    return {"cpu": cpu, "wall": wall, "requests": delta(after, before, FETCH)}


async def completion(emu: EmulatorProcess, n: int) -> list[Row]:
    ours = await complete_ours(emu, n)
    peer = await complete_peer(emu, n)
    label = f"N={n:,}"
    ours_us, peer_us = ours["cpu"] / n * 1e6, peer["cpu"] / n * 1e6
    return [
        Row("polling", f"{label} to done: ours, requests sent", ours["requests"], "requests"),
        Row("polling", f"{label} to done: per-task, requests sent", peer["requests"], "requests"),
        Row("polling", f"{label} to done: ours, CPU per completed task", ours_us, "us/task"),
        Row("polling", f"{label} to done: per-task, CPU per completed task", peer_us, "us/task"),
        Row("polling", f"{label} to done: per-task / ours CPU", peer_us / ours_us, "x"),
    ]


# -- 3. memory ---------------------------------------------------------------


def snapshot_bodies(n: int) -> list[bytes]:
    return [in_progress_body(str(1730621826053000 + i)) for i in range(n)]


async def memory_per_handle(bodies: list[bytes], wait: str) -> float:
    """Bytes held per pending handle with its decoded snapshot, after a garbage collection.

    ``wait`` is "none", "wait" (one ``wait()`` coroutine in a task per handle) or
    "wait_all" (one ``wait_all`` over every handle).
    """
    n = len(bodies)
    # Never contacted: nothing is due before an hour has passed.
    async with MidjourneySession("http://127.0.0.1:9", "k", poll_interval=3600) as mj:
        tracker = mj._tracker
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        handles = []
        for body in bodies:
            task = decode_task(body)
            assert task is not None
            tracker.state(task.id)  # as a submit does: due one interval from now
            handle = mj.handle(task.id)
            mj.notify(task)  # the snapshot the first poll brings
            handle._state.due = time.monotonic() + 3600
            handles.append(handle)
        del task, handle
        if wait == "wait":
            waiters = [asyncio.ensure_future(h.wait(timeout=3600)) for h in handles]
        elif wait == "wait_all":
            waiters = [asyncio.ensure_future(mj.wait_all(handles, timeout=3600))]
        else:
            waiters = []
        await asyncio.sleep(0.01)
        assert mj.pending == (n if waiters else 0)
        gc.collect()
        held = (tracemalloc.get_traced_memory()[0] - base) / n
        tracemalloc.stop()
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return held


async def memory(n: int) -> list[Row]:
    bodies = snapshot_bodies(n)
    plain, each, shared = [
        await memory_per_handle(bodies, wait) / 1024 for wait in ("none", "wait", "wait_all")
    ]
    return [
        Row("polling", f"N={n:,} memory: pending handle + snapshot", plain, "KB/handle", "<= 4",
            plain <= 4),
        Row("polling", f"N={n:,} memory: same + one wait() each", each, "KB/handle",
            f"<= {WAIT_EACH_KB}", each <= WAIT_EACH_KB),
        Row("polling", f"N={n:,} memory: same + one wait_all", shared, "KB/handle",
            f"<= {WAIT_ALL_KB}", shared <= WAIT_ALL_KB),
    ]


async def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    # N=1,000 costs ~20 ms of CPU over 4 ticks, too little to compare steadily: 8
    # ticks, and five rounds (single rounds vary by 10-15% on a small VM).
    sizes = [(1_000, 4, 3)] if quick else [(1_000, 8, 5), (10_000, 3, 3)]
    with EmulatorProcess(speed="20") as emu:
        for n, ticks, rounds in sizes:
            rows += await steady(emu, n, ticks, rounds)
        for n, _, _ in sizes:
            rows += await completion(emu, n)
    rows += await memory(10_000)
    return rows


def main(quick: bool = False) -> list[Row]:
    return asyncio.run(run(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="N=1,000 only")
    args = parser.parse_args()
    report(main(args.quick), args.json)
