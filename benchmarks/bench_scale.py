"""100,000 pending tasks on a 1 s tick: the client's CPU, and whether every tick came on time.

The server is benchmarks/_fake_server.py in its own process (the emulator
cannot serve 100,000 statuses a second): every id is a real-sized task
IN_PROGRESS, so each tick is 1,000 list-by-condition requests of 100 ids.
Our side is what a user writes, ``await mj.wait_all(handles)`` over 100,000
handles; the hand-written batched loop of _yardstick.py (aiohttp + msgspec
only, same chunking and concurrency) is measured side by side for scale, and
so is the same loop reading the answers without decoding them: the cost of
1,000 aiohttp requests a second alone, the floor under any client at this
chunking. The longest garbage-collection pause is shown beside each, since a
full collection over every object of 100,000 pending tasks can make a tick late.

Each round: a fresh client, one warm-up sweep (two for ours: its second sweep
packs every snapshot, once in a task's life, and is timed on its own), then
CPU (``time.process_time`` in this process) over the next ticks divided by
their wall time. A tick is late when it starts more than LATE seconds after
one interval from the previous one (our poller schedules each task one
interval after it was last asked, so a sweep longer than the interval makes
the next one late). Medians
of three rounds. ``--profile DIR`` also writes cProfile stats of our side (the
figures of that run are skewed by the profiler).

    python benchmarks/bench_scale.py [--json] [--quick] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FakeServerProcess, Row, report
from _yardstick import HandWritten

from midjourney_async import MidjourneySession

N = 100_000
INTERVAL = 1.0
LATE = 0.1  # seconds past its time that make a tick late
ROUNDS = 3
CPU_GOAL = 20.0  # % of one core


class GcPauses:
    """The longest garbage-collection pause while on: a full collection over
    every tracked object of 100,000 pending tasks can stall the loop past a tick."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


class Window:
    """When each sweep began and ended, and the process CPU at each start."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.cpu: list[float] = []
        self.gc = GcPauses()

    async def timed(self, sweep: Callable[[], Awaitable[None]]) -> None:
        self.starts.append(time.monotonic())
        self.cpu.append(time.process_time())
        await sweep()
        self.ends.append(time.monotonic())

    def figures(self, first: int, ticks: int) -> dict[str, float]:
        """CPU % of one core over ``ticks`` intervals from sweep ``first``; lateness."""
        last = first + ticks
        cpu = (self.cpu[last] - self.cpu[first]) / (self.starts[last] - self.starts[first])
        lags = [
            self.starts[i + 1] - self.starts[i] - INTERVAL for i in range(first, last)
        ]
        sweeps = [self.ends[i] - self.starts[i] for i in range(first, last)]
        return {
            "cpu": cpu * 100,
            "late": sum(lag > LATE for lag in lags),
            "max_lag": max(lags),
            "sweep": statistics.median(sweeps),
            "gc_pause": self.gc.longest,
        }


async def until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not met")
        await asyncio.sleep(0.01)


async def ours(
    server: FakeServerProcess, ids: list[str], ticks: int, profiler: cProfile.Profile | None
) -> dict[str, float]:
    window = Window()
    async with MidjourneySession(server.base_url, server.api_key, poll_interval=INTERVAL) as mj:
        tracker = mj._tracker
        tracker.queued_factor = 1.0  # the hand-written loop knows no queued pace
        plain_tick = tracker.tick

        stats = mj.tracker_stats

        async def tick() -> None:
            before = stats.ticks
            await window.timed(plain_tick)
            if stats.ticks == before:  # nothing was due: no sweep
                del window.starts[-1], window.ends[-1], window.cpu[-1]

        tracker.tick = tick  # type: ignore[method-assign]
        handles = [mj.handle(i) for i in ids]
        # As if submitted in one burst: one sweep a tick covers them all.
        due = time.monotonic() + INTERVAL
        for handle in handles:
            handle._state.due = due
        waiter = asyncio.ensure_future(mj.wait_all(handles, timeout=3600))

        def seen() -> int:
            return stats.snapshots_applied + stats.snapshots_dropped

        # Two warm-up sweeps: the first keeps each row as it came in, the second finds
        # every task where it stood and packs its snapshot (once in a task's life:
        # timed apart below); the steady state begins there.
        await until(lambda: seen() >= len(ids), 60)
        if profiler is not None:
            profiler.enable()
        with window.gc:
            await until(lambda: seen() >= len(ids) * (ticks + 3), 60 + ticks * 10 * INTERVAL)
        if profiler is not None:
            profiler.disable()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
    figures = window.figures(2, ticks)
    figures["packing_sweep"] = window.ends[1] - window.starts[1]
    return figures


async def hand_written(
    server: FakeServerProcess, ids: list[str], ticks: int, *, decode: bool = True
) -> dict[str, float]:
    """The batched loop; without ``decode`` it only reads the answers: the HTTP floor."""
    window = Window()
    async with HandWritten(server.base_url, server.api_key) as hand:
        if not decode:
            hand.tasks = lambda body: []
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        with window.gc:
            for _ in range(ticks + 2):  # the warm-up sweep, ``ticks`` measured, one to end on
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at += INTERVAL
                await window.timed(lambda: hand.sweep(ids))
    return window.figures(1, ticks)


async def run(ticks: int, rounds: int, profiler: cProfile.Profile | None) -> list[Row]:
    ids = [str(1730621826053000 + i) for i in range(N)]
    runs: dict[str, list[dict[str, float]]] = {
        "ours": [], "hand-written": [], "HTTP only (no decoding)": []
    }
    with FakeServerProcess() as server:
        for _ in range(rounds):
            runs["ours"].append(await ours(server, ids, ticks, profiler))
            runs["hand-written"].append(await hand_written(server, ids, ticks))
            runs["HTTP only (no decoding)"].append(
                await hand_written(server, ids, ticks, decode=False)
            )
    label = f"N={N:,}, {INTERVAL:g} s tick"
    rows: list[Row] = []
    for name, got in runs.items():
        cpu = statistics.median(r["cpu"] for r in got)
        late = sum(r["late"] for r in got)
        lag = max(r["max_lag"] for r in got)
        sweep = statistics.median(r["sweep"] for r in got)
        gc_pause = max(r["gc_pause"] for r in got)
        goal = name == "ours"
        rows += [
            Row("scale", f"{label}: {name}, client CPU", cpu, "% of a core",
                f"<= {CPU_GOAL:g}" if goal else "", cpu <= CPU_GOAL if goal else None),
            Row("scale", f"{label}: {name}, late ticks of {ticks * rounds}", late, "ticks",
                "= 0" if goal else "", late == 0 if goal else None),
            Row("scale", f"{label}: {name}, worst tick start lag", lag * 1000, "ms"),
            Row("scale", f"{label}: {name}, sweep time (median)", sweep, "s"),
            Row("scale", f"{label}: {name}, longest GC pause", gc_pause * 1000, "ms"),
        ]
    packing = max(r["packing_sweep"] for r in runs["ours"])
    rows.append(Row("scale", f"{label}: ours, the sweep that packs every snapshot (once)",
                    packing, "s", f"< {INTERVAL:g}", packing < INTERVAL))
    return rows


def main(quick: bool = False, profile: Path | None = None) -> list[Row]:
    profiler = cProfile.Profile() if profile else None
    rows = asyncio.run(run(3 if quick else 5, ROUNDS, profiler))
    if profiler is not None and profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / "scale.prof")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="3 ticks a round instead of 5")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="cProfile our side into DIR")
    args = parser.parse_args()
    report(main(args.quick, args.profile), args.json)
