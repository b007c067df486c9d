"""Submit and wait for N tasks: our session against a minimal hand-written loop.

The hand-written loop is what a careful user writes with no library around it:
aiohttp and msgspec, every prompt submitted at once, then every pending id
asked for with list-by-condition in chunks of 100 once per tick until done.
Our side is what a user of this library writes::

    handles = await asyncio.gather(*(mj.imagine(p) for p in prompts))
    tasks = await mj.wait_all(handles)

Both poll at the same cadence against the same emulator (its own process,
unlimited concurrency), in interleaved rounds; the figure is the ratio of
client CPU per task, which is the library's overhead.

    python benchmarks/bench_end_to_end.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EmulatorProcess, Row, report

from midjourney_async import MidjourneySession

N = 500
INTERVAL = 0.1  # seconds between polls, for both
SPEED = "100"  # an imagine takes ~0.4 s


class Reply(msgspec.Struct):
    code: int
    result: str | int | None = None
    description: str = ""


class BareButton(msgspec.Struct, rename="camel"):
    custom_id: str
    emoji: str = ""
    label: str = ""


class BareTask(msgspec.Struct, rename="camel"):
    id: str
    status: str = ""
    progress: str | None = None
    prompt: str | None = None
    image_url: str | None = None
    fail_reason: str | None = None
    buttons: list[BareButton] = []


class HandWritten:
    """aiohttp + msgspec, nothing else: submit everything, then batch-poll until done."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.root = base_url + "/mj"
        self.headers = {"mj-api-secret": api_key, "Content-Type": "application/json"}
        self.http: aiohttp.ClientSession | None = None
        self.encode = msgspec.json.Encoder().encode
        self.reply = msgspec.json.Decoder(Reply).decode
        self.tasks = msgspec.json.Decoder(list[BareTask]).decode

    async def __aenter__(self) -> HandWritten:
        self.http = aiohttp.ClientSession(headers=self.headers)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def submit(self, prompt: str) -> str:
        assert self.http is not None
        body = self.encode({"prompt": prompt})
        async with self.http.post(self.root + "/submit/imagine", data=body) as resp:
            reply = self.reply(await resp.read())
        if reply.code not in (1, 22) or reply.result is None:
            raise RuntimeError(f"submit refused: {reply}")
        return str(reply.result)

    async def poll(self, ids: list[str], done: dict[str, BareTask]) -> None:
        assert self.http is not None
        async with self.http.post(
            self.root + "/task/list-by-condition", data=self.encode({"ids": ids})
        ) as resp:
            tasks = self.tasks(await resp.read())
        for task in tasks:
            if task.status in ("SUCCESS", "FAILURE"):
                done[task.id] = task

    async def run(self, prompts: list[str]) -> list[BareTask]:
        ids = await asyncio.gather(*(self.submit(p) for p in prompts))
        done: dict[str, BareTask] = {}
        pending = list(ids)
        while pending:
            await asyncio.sleep(INTERVAL)
            chunks = [pending[i : i + 100] for i in range(0, len(pending), 100)]
            await asyncio.gather(*(self.poll(c, done) for c in chunks))
            pending = [i for i in pending if i not in done]
        return [done[i] for i in ids]


async def ours(mj: MidjourneySession, prompts: list[str]) -> list[Any]:
    handles = await asyncio.gather(*(mj.imagine(p) for p in prompts))
    return await mj.wait_all(handles, timeout=60)


def requests(emu: EmulatorProcess) -> int:
    return sum(emu.requests().values())


async def run(n: int, rounds: int) -> list[Row]:
    cpu: dict[str, list[float]] = {"ours": [], "hand-written": []}
    sent: dict[str, list[int]] = {"ours": [], "hand-written": []}
    with EmulatorProcess(speed=SPEED) as emu:
        async with MidjourneySession(
            emu.base_url, emu.api_key, poll_interval=INTERVAL
        ) as mj, HandWritten(emu.base_url, emu.api_key) as hand:
            candidates: dict[str, Any] = {
                "ours": lambda p: ours(mj, p),
                "hand-written": hand.run,
            }
            for name, fn in candidates.items():  # warm up: connections, imports, caches
                await fn([f"warm up {name} {i}" for i in range(50)])
            for r in range(rounds):
                for name, fn in candidates.items():
                    prompts = [f"end to end {name} {r} {i}" for i in range(n)]
                    before = requests(emu)
                    c0 = time.process_time()
                    tasks = await fn(prompts)
                    cpu[name].append((time.process_time() - c0) / n)
                    sent[name].append(requests(emu) - before)
                    assert len(tasks) == n
    us = {name: statistics.median(v) * 1e6 for name, v in cpu.items()}
    ratio = us["ours"] / us["hand-written"]
    rows = [
        Row("end_to_end", f"N={n}: ours, CPU per task", us["ours"], "us/task"),
        Row("end_to_end", f"N={n}: hand-written, CPU per task", us["hand-written"], "us/task"),
        Row("end_to_end", f"N={n}: ours / hand-written CPU", ratio, "x", "<= 1.5", ratio <= 1.5),
    ]
    for name, values in sent.items():
        per_task = statistics.median(values) / n
        rows.append(Row("end_to_end", f"N={n}: {name}, requests per task", per_task, "req/task"))
    return rows


def main(quick: bool = False) -> list[Row]:
    return asyncio.run(run(N, 3 if quick else 5))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    report(main(args.quick), args.json)
