"""The README's emulator examples run as printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_emulator_examples_in_the_readme_run(tmp_path: Path) -> None:
    with_pytest, script = code_blocks(section("Testing your own code with the emulator"))

    (tmp_path / "test_mine.py").write_text(with_pytest, encoding="utf-8")
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout

    (tmp_path / "script.py").write_text(script, encoding="utf-8")
    done = run([sys.executable, "script.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = [Path(p) for p in re.findall(r"'([^']+\.png)'", done.stdout)]
    assert saved and all((tmp_path / p).read_bytes().startswith(b"\x89PNG") for p in saved)
