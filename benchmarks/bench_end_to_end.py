"""Submit and wait for N tasks: our session against a minimal hand-written loop.

The hand-written loop is what a careful user writes with no library around it:
aiohttp and msgspec, every prompt submitted at once, then every pending id
asked for with list-by-condition in chunks of 100 once per tick until done.
Our side is what a user of this library writes::

    handles = await asyncio.gather(*(mj.imagine(p) for p in prompts))
    tasks = await mj.wait_all(handles)

Both poll at the same cadence (every 0.1 s, queued or running alike), in
chunks of 100 with at most 8 list requests at once, against the same emulator
(its own process, unlimited concurrency), in interleaved rounds; the figure is
the ratio of the median client CPU per task over five rounds, which is the
library's overhead. ``--profile DIR`` also writes cProfile stats of our side
(the figures of that run are skewed by the profiler).

    python benchmarks/bench_end_to_end.py [--json] [--quick] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, report
from _yardstick import HandWritten

from midjourney_async import MidjourneySession

N = 5_000
QUICK_N = 2_000
ROUNDS = 5  # single rounds vary by 10-15% on a small VM: a median of five holds
INTERVAL = 0.1  # seconds between polls, for both
SPEED = "100"  # an imagine takes ~0.4 s
GOAL = 1.1


class Phases:
    """Client CPU of the submit phase and of the waiting phase of one run."""

    def __init__(self) -> None:
        self.started = time.process_time()
        self.submitted = self.started

    def mark(self) -> None:
        self.submitted = time.process_time()


async def ours(mj: MidjourneySession, prompts: list[str], phases: Phases) -> list[Any]:
    handles = await asyncio.gather(*(mj.imagine(p) for p in prompts))
    phases.mark()
    return await mj.wait_all(handles, timeout=120)


async def hand_written(
    hand: HandWritten, prompts: list[str], phases: Phases
) -> list[Any]:
    ids = await asyncio.gather(*(hand.submit(p) for p in prompts))
    phases.mark()
    return await hand.wait(list(ids), INTERVAL)


def requests(emu: EmulatorProcess) -> int:
    return sum(emu.requests().values())


async def run(n: int, rounds: int, profiler: cProfile.Profile | None = None) -> list[Row]:
    cpu: dict[str, list[float]] = {"ours": [], "hand-written": []}
    submit_cpu: dict[str, list[float]] = {"ours": [], "hand-written": []}
    sent: dict[str, list[int]] = {"ours": [], "hand-written": []}
    with EmulatorProcess(speed=SPEED) as emu:
        async with MidjourneySession(
            emu.base_url, emu.api_key, poll_interval=INTERVAL
        ) as mj, HandWritten(emu.base_url, emu.api_key) as hand:
            # The same pace for queued and running tasks: the hand-written loop knows
            # no difference.
            mj._tracker.queued_factor = 1.0
            candidates: dict[str, Any] = {
                "ours": lambda p, ph: ours(mj, p, ph),
                "hand-written": lambda p, ph: hand_written(hand, p, ph),
            }
            for name, fn in candidates.items():  # warm up: connections, imports, caches
                await fn([f"warm up {name} {i}" for i in range(200)], Phases())
            for r in range(rounds):
                for name, fn in candidates.items():
                    prompts = [f"end to end {name} {r} {i}" for i in range(n)]
                    before = requests(emu)
                    if profiler is not None and name == "ours":
                        profiler.enable()
                    phases = Phases()
                    tasks = await fn(prompts, phases)
                    cpu[name].append((time.process_time() - phases.started) / n)
                    submit_cpu[name].append((phases.submitted - phases.started) / n)
                    if profiler is not None and name == "ours":
                        profiler.disable()
                    sent[name].append(requests(emu) - before)
                    assert len(tasks) == n
    us = {name: statistics.median(v) * 1e6 for name, v in cpu.items()}
    ratio = us["ours"] / us["hand-written"]
    spread = [o / h for o, h in zip(cpu["ours"], cpu["hand-written"], strict=True)]
    label = f"N={n:,}"
    rows = [
        Row("end_to_end", f"{label}: ours, CPU per task", us["ours"], "us/task"),
        Row("end_to_end", f"{label}: hand-written, CPU per task", us["hand-written"], "us/task"),
        Row("end_to_end", f"{label}: ours / hand-written CPU", ratio, "x", f"<= {GOAL}",
            ratio <= GOAL),
        Row("end_to_end", f"{label}: ours / hand-written, worst round", max(spread), "x"),
    ]
    # Where the difference lies: submitting (a POST each) and waiting (the polling).
    for name in cpu:
        submit_us = statistics.median(submit_cpu[name]) * 1e6
        rows += [
            Row("end_to_end", f"{label}: {name}, CPU per task submitting", submit_us, "us/task"),
            Row("end_to_end", f"{label}: {name}, CPU per task waiting", statistics.median(
                c - s for c, s in zip(cpu[name], submit_cpu[name], strict=True)) * 1e6,
                "us/task"),
        ]  # fmt: skip
    for name, values in sent.items():
        per_task = statistics.median(values) / n
        rows.append(Row("end_to_end", f"{label}: {name}, requests per task", per_task, "req/task"))
    return rows


def main(quick: bool = False, profile: Path | None = None) -> list[Row]:
    profiler = cProfile.Profile() if profile else None
    rows = asyncio.run(run(QUICK_N if quick else N, ROUNDS, profiler))
    if profiler is not None and profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / "end_to_end.prof")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help=f"N={QUICK_N:,} instead of {N:,}")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="cProfile our side into DIR")
    args = parser.parse_args()
    report(main(args.quick, args.profile), args.json)
