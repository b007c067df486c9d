"""Run every benchmark and print one table with PASS or MISS beside each target.

Each ``benchmarks/bench_*.py`` runs in its own subprocess with ``--json`` (one
after another, never side by side: they measure CPU); their rows are merged.
The exit code is 0 even when a target is missed: the table tells.

    python benchmarks/run_all.py [--json PATH] [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, report

HERE = Path(__file__).resolve().parent


def accepts_quick(script: Path) -> bool:
    return "--quick" in script.read_text(encoding="utf-8")


def run_one(script: Path, quick: bool) -> tuple[list[Row], float]:
    args = [sys.executable, str(script), "--json"]
    if quick and accepts_quick(script):
        args.append("--quick")
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=HERE.parent, timeout=600)
    took = time.perf_counter() - started
    bench = script.stem.removeprefix("bench_")
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{script.name} failed: {tail}", file=sys.stderr)
        return [Row(bench, f"{script.name} did not finish", proc.returncode, "exit", "= 0",
                    False)], took
    try:
        rows = [Row(**r) for r in json.loads(proc.stdout)]
    except (ValueError, TypeError) as exc:
        print(f"{script.name}: unreadable output ({exc})", file=sys.stderr)
        return [Row(bench, f"{script.name} gave no rows", 0, "rows", "> 0", False)], took
    return rows, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="PATH", help="also write the merged rows here")
    parser.add_argument("--quick", action="store_true", help="smaller runs where offered")
    parser.add_argument("--only", nargs="*", default=None, help="e.g. decode polling")
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    rows: list[Row] = []
    timings: dict[str, float] = {}
    for script in scripts:
        print(f"running {script.name} ...", file=sys.stderr, flush=True)
        got, took = run_one(script, args.quick)
        rows += got
        timings[script.stem] = took
    report(rows, as_json=False)
    missed = [r for r in rows if r.passed is False]
    targets = [r for r in rows if r.passed is not None]
    print(
        f"\n{len(targets) - len(missed)} of {len(targets)} targets met; "
        + ", ".join(f"{name} {sec:.0f} s" for name, sec in timings.items())
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "python": sys.version.split()[0],
            "seconds": timings,
            "rows": [asdict(r) for r in rows],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
