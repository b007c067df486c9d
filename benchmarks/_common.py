"""Shared by the benchmarks: interleaved timing, a result row, and printing."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
