"""Shared by the benchmarks: interleaved timing, a result row, and printing."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure: ``value`` in ``unit``; ``target`` and ``passed`` when there is a target."""

    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None


def interleaved(
    candidates: dict[str, Callable[[], Any]], *, rounds: int = 15, number: int = 20
) -> dict[str, float]:
    """Median seconds per call of each candidate, timed round by round side by side.

    Interleaving makes every candidate see the same machine noise, so their
    ratios hold even where single absolute times do not.
    """
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for fn in candidates.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(rows: list[Row], as_json: bool) -> None:
    if as_json:
        json.dump([asdict(r) for r in rows], sys.stdout, indent=2)
        print()
        return
    width = max(len(r.name) for r in rows)
    for r in rows:
        verdict = "" if r.passed is None else ("PASS" if r.passed else "MISS")
        target = f"(target {r.target})" if r.target else ""
        print(
            f"{r.bench:<12} {r.name:<{width}}  {r.value:>12.3f} {r.unit:<14} {target:<22} "
            f"{verdict}"
        )


class EmulatorProcess:
    """The emulator in its own process, so the client's CPU is measured apart from the server's.

    ``with EmulatorProcess(speed="10") as emu:`` gives ``emu.base_url`` and ``emu.api_key``;
    ``emu.stats()`` reads ``GET /_emulator/stats`` (request counters, server side).
    Concurrency and queue are unlimited unless told otherwise.
    """

    def __init__(self, *, speed: str = "10", notify_hook: str = "default", **flags: str) -> None:
        self.args: list[str] = [
            sys.executable, "-m", "midjourney_async.testing", "--port", "0",
            "--speed", speed, "--concurrency", "none", "--queue-size", "none",
            "--notify-hook", notify_hook,
        ]
        for name, value in flags.items():
            self.args += [f"--{name.replace('_', '-')}", value]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.__exit__()
            raise RuntimeError(f"the emulator did not start ({self.args})")
        self.base_url, self.api_key = line
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.base_url + "/_emulator/stats", timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def requests(self) -> dict[str, int]:
        """Requests served so far, per route name."""
        return dict(self.stats()["requests"])


class FakeServerProcess(EmulatorProcess):
    """benchmarks/_fake_server.py in its own process: every id is a task IN_PROGRESS.

    For loads the emulator cannot serve in time (100,000 statuses a second);
    ``stats()`` answers in the emulator's form (``requests``, ``list_ids``, ``fetch_ids``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.args = [sys.executable, str(Path(__file__).resolve().parent / "_fake_server.py")]


SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "samples"


def in_progress_body(task_id: str) -> bytes:
    """A proxy task as served while it runs: the imagine sample at 62%, no buttons yet."""
    task = json.loads((SAMPLE / "proxy-fetch-imagine-success.json").read_text(encoding="utf-8"))
    task.update(id=task_id, status="IN_PROGRESS", progress="62%", finishTime=None, buttons=[])
    return json.dumps(task, separators=(",", ":")).encode()


def delta(after: dict[str, int], before: dict[str, int], route: str) -> int:
    """How many more ``route`` requests ``after`` counts than ``before``."""
    return after.get(route, 0) - before.get(route, 0)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
