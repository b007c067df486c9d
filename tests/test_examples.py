"""Every file in examples/ runs green: on the emulator it starts itself, and on a server
in another process named by MJ_BASE_URL / MJ_PROVIDER / MJ_API_KEY, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_covered() -> None:
    assert {p.name for p in SCRIPTS} == {
        "buttons.py",
        "imagine_and_wait.py",
        "many_at_once.py",
        "many_workers.py",
        "resume.py",
        "sync_client.py",
        "webhook_service.py",
    }


def run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=EXAMPLES,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs_on_the_built_in_emulator(script: Path) -> None:
    done = run(script, {"MJ_EXAMPLE_SPEED": "instant"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "built-in emulator" in done.stdout


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, str]]:
    """An emulator in its own process, with another profile than the examples pick."""
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "midjourney_async", "emulator",
            "--profile", "midjourney-proxy-plus",
            "--port", "0", "--speed", "instant", "--concurrency", "10", "--queue-size", "100",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url, key = proc.stdout.readline().split()
        # The emulator answers at once: polling it at the 3 s default only makes the run slow.
        yield {
            "MJ_BASE_URL": base_url,
            "MJ_API_KEY": key,
            "MJ_PROVIDER": "midjourney-proxy",
            "MJ_POLL_INTERVAL": "0.05",
        }
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs_against_the_server_named_in_the_environment(
    script: Path, served: dict[str, str]
) -> None:
    done = run(script, served)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "built-in emulator" not in done.stdout
