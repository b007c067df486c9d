"""How fast the emulator answers polling traffic with many tasks alive.

Starts ``python -m midjourney_async.testing`` in its own process (client and server never
share an event loop or a core's time slices), submits ``--tasks`` imagines at real-time
speed (so they all stay pending), then, for at most ``--seconds`` and ``--max-calls`` each,
measures side by side:

* per-id ``GET /mj/task/{id}/fetch`` requests per second, and
* ``POST /mj/task/list-by-condition`` with 100 ids per second,

and reports how many more task states per second the batched call delivers.

    python benchmarks/bench_emulator.py [--tasks 1000] [--seconds 3] [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp
from _common import EmulatorProcess, Row, report

BATCH = 100


async def _timed(
    worker: Callable[[], Awaitable[None]], *, workers: int, seconds: float, max_calls: int
) -> float:
    """Calls per second of ``worker`` run by ``workers`` coroutines within both budgets."""
    calls = 0
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal calls
        while calls < max_calls and time.perf_counter() < deadline:
            calls += 1
            await worker()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(workers)))
    return calls / (time.perf_counter() - start)


async def _measure(
    base: str, key: str, *, tasks: int, seconds: float, max_calls: int, workers: int
) -> dict[str, float]:
    rng = random.Random(0)
    connector = aiohttp.TCPConnector(limit=workers)
    headers = {"mj-api-secret": key}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        ids: list[str] = []

        async def submit() -> None:
            async with http.post(
                f"{base}/mj/submit/imagine", json={"prompt": f"bench {len(ids)}"}
            ) as r:
                ids.append(str((await r.json())["result"]))

        async def fetch() -> None:
            async with http.get(f"{base}/mj/task/{rng.choice(ids)}/fetch") as r:
                await r.read()

        async def list_batch() -> None:
            batch = rng.sample(ids, min(BATCH, len(ids)))
            async with http.post(f"{base}/mj/task/list-by-condition", json={"ids": batch}) as r:
                assert len(await r.json()) == len(batch)

        submit_rate = await _timed(submit, workers=workers, seconds=30, max_calls=tasks)
        fetch_rate = await _timed(fetch, workers=workers, seconds=seconds, max_calls=max_calls)
        list_rate = await _timed(
            list_batch, workers=workers, seconds=seconds, max_calls=max_calls
        )
    return {
        "tasks": len(ids),
        "submit": submit_rate,
        "fetch": fetch_rate,
        "list": list_rate,
        "batch": min(BATCH, len(ids)),
    }


def main(
    quick: bool = False,
    tasks: int = 1000,
    seconds: float = 3.0,
    max_calls: int = 20_000,
    workers: int = 16,
) -> list[Row]:
    """Run the benchmark and return its rows (``quick`` shrinks every budget)."""
    if quick:
        tasks, seconds, max_calls = min(tasks, 300), min(seconds, 0.5), min(max_calls, 2_000)
    with EmulatorProcess(speed="1") as emu:
        m = asyncio.run(
            _measure(
                emu.base_url, emu.api_key,
                tasks=tasks, seconds=seconds, max_calls=max_calls, workers=workers,
            )
        )
    label = f"N={int(m['tasks']):,} live tasks"
    ratio = m["list"] * m["batch"] / m["fetch"]
    return [
        Row("emulator", f"{label}: submit/imagine", m["submit"], "req/s"),
        Row("emulator", f"{label}: task fetch", m["fetch"], "req/s"),
        Row("emulator", f"{label}: list-by-condition x{int(m['batch'])}", m["list"], "req/s"),
        Row("emulator", f"{label}: task states/s, list x{int(m['batch'])} / fetch", ratio, "x",
            ">= 5", ratio >= 5),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks alive during the run")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per phase")
    parser.add_argument("--max-calls", type=int, default=20_000, help="call budget per phase")
    parser.add_argument("--workers", type=int, default=16, help="concurrent client requests")
    parser.add_argument("--quick", action="store_true", help="small budgets, for CI")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = main(args.quick, args.tasks, args.seconds, args.max_calls, args.workers)
    report(rows, args.json)
