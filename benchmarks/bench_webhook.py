"""Webhook path against polling: how soon ``wait()`` returns once a task finished.

The emulator (its own process, notifyHook on) posts every state change to the
session's receiver. For each finished task two latencies are taken:

* callback -> wait(): from the moment the receiver decoded the terminal
  callback (a timestamp taken inside the client, so no clocks are compared)
  to the moment ``wait()`` returned to its caller;
* finish -> wait(): from the task's ``finishTime`` as the emulator stamped it
  (epoch ms, same machine clock) to the moment ``wait()`` returned.

Variants, side by side in one run: callbacks trusted; callbacks confirmed by
one fetch (the default); plain polling at a 1 s interval. With webhooks on,
the safety-net poll is set to an hour, so only callbacks wake waiters.

    python benchmarks/bench_webhook.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, percentile, report

from midjourney_async import MidjourneySession, TaskHandle, WebhookConfig
from midjourney_async._models import TERMINAL, Task

N = 100
POLL_INTERVAL = 1.0
SPREAD = 2.0  # seconds over which the submits are spread


async def measure(emu: EmulatorProcess, name: str, n: int) -> dict[str, list[float]]:
    webhook: WebhookConfig | None = None
    if name == "webhook, trusted":
        webhook = WebhookConfig(poll_interval=3600, trust_callbacks=True)
    elif name == "webhook, confirmed by fetch":
        webhook = WebhookConfig(poll_interval=3600)
    arrived: dict[str, float] = {}
    callback: list[float] = []
    finish: list[float] = []
    async with MidjourneySession(
        emu.base_url, emu.api_key, poll_interval=POLL_INTERVAL, webhook=webhook
    ) as mj:
        parse = mj.dialect.parse_notification

        def stamped(body: bytes) -> Task:
            task = parse(body)
            if task.status in TERMINAL and task.id not in arrived:
                arrived[task.id] = time.perf_counter()
            return task

        mj.dialect.parse_notification = stamped  # type: ignore[method-assign]

        async def wait(handle: TaskHandle) -> None:
            task = await handle.wait(timeout=60)
            now, wall_ms = time.perf_counter(), time.time() * 1000
            if task.id in arrived:
                callback.append((now - arrived[task.id]) * 1000)
            if task.finish_time:
                finish.append(wall_ms - task.finish_time)

        async def one(i: int) -> None:
            # Submits spread over 2 s: finishes fall at every phase of the poll tick.
            await asyncio.sleep(i * SPREAD / n)
            await wait(await mj.imagine(f"webhook bench {name} {i}"))

        await asyncio.gather(*(one(i) for i in range(n)))
    return {"callback": callback, "finish": finish}


async def run(n: int) -> list[Row]:
    names = ["webhook, trusted", "webhook, confirmed by fetch", "polling every 1 s"]
    results: dict[str, dict[str, list[float]]] = {}
    with EmulatorProcess(speed="20", notify_hook="on") as emu:
        for name in names:
            results[name] = await measure(emu, name, n)
    rows: list[Row] = []
    for name in names[:2]:
        p50 = statistics.median(results[name]["callback"])
        rows.append(
            Row("webhook", f"{name}: callback -> wait(), p50", p50, "ms", "<= 10", p50 <= 10)
        )
        p90 = percentile(results[name]["callback"], 0.9)
        rows.append(Row("webhook", f"{name}: callback -> wait(), p90", p90, "ms"))
    for name in names:
        finish = results[name]["finish"]
        rows.append(
            Row("webhook", f"{name}: finish -> wait(), p50", statistics.median(finish), "ms")
        )
    polling = statistics.median(results[names[2]]["finish"])
    hooked = statistics.median(results[names[0]]["finish"])
    rows.append(
        Row("webhook", "polling / webhook (finish -> wait(), p50)", polling / max(hooked, 1e-3),
            "x")
    )
    return rows


def main(quick: bool = False) -> list[Row]:
    return asyncio.run(run(50 if quick else N))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer tasks")
    args = parser.parse_args()
    report(main(args.quick), args.json)
