"""Every file in examples/ runs green against the emulator it starts itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_covered() -> None:
    assert {p.name for p in SCRIPTS} == {
        "buttons.py",
        "imagine_and_wait.py",
        "many_at_once.py",
        "resume.py",
        "webhook_service.py",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs(script: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env["MJ_EXAMPLE_SPEED"] = "instant"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=EXAMPLES,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "built-in emulator" in done.stdout
