"""What a user gets from ``pip install``: type information, an sdist that tests itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

USER_SCRIPT = """\
import asyncio
from midjourney_async import Midjourney, MidjourneySession, Task


async def main() -> Task:
    async with MidjourneySession(provider="trueai", poll_interval=1.0) as mj:
        return await (await mj.imagine("a fox")).wait(timeout=60)


def blocking() -> list[str]:
    with Midjourney(provider="trueai") as mj:
        task: Task = mj.imagine("a fox").upscale(1).wait(timeout=60)
        return task.prompts


print(asyncio.run(main()).id, blocking())
"""

WRONG_SCRIPT = """\
from midjourney_async import Midjourney

Midjourney(poll_interval="often")
"""


def test_an_installed_package_is_visible_to_mypy(tmp_path: Path) -> None:
    """A user's script, outside the checkout, type-checks against the installed package."""
    (tmp_path / "user.py").write_text(USER_SCRIPT, encoding="utf-8")
    (tmp_path / "wrong.py").write_text(WRONG_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py", "wrong.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith("user.py")], done.stdout
    assert any(
        line.startswith("wrong.py:3") and '"poll_interval"' in line and "float" in line
        for line in lines
    ), done.stdout


ROOT = Path(__file__).resolve().parent.parent


def test_the_sdist_carries_its_tests_and_license(tmp_path: Path) -> None:
    """Built as a packager builds it (PEP 517, no network), then its own suite is collected
    and a part of it runs from the unpacked tree."""
    import tarfile

    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if tracked.returncode != 0:  # an unpacked sdist: its files are the tree itself
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    else:
        files = [f for f in tracked.stdout.splitlines() if (ROOT / f).is_file()]
    source = tmp_path / "source"
    for name in files:
        if "__pycache__" in name or name.startswith((".venv", "build/", "dist/")):
            continue
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    build = subprocess.run(
        [
            sys.executable, "-c",
            "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
            str(tmp_path / "dist"),
        ],
        cwd=source, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    archive = tmp_path / "dist" / build.stdout.strip().splitlines()[-1]
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    [tree] = list((tmp_path / "unpacked").iterdir())
    for needed in (
        "LICENSE",
        "tests/conftest.py",
        "tests/mj_support.py",
        "tests/emu_thread.py",
        "tests/samples/proxy-fetch-imagine-success.json",
        "tests/emu_support.py",
        "tests/emulator/test_emu_main.py",
        "tests/chaos/test_chaos.py",
        "examples/_common.py",
    ):
        assert (tree / needed).is_file(), needed
    info = (tree / "PKG-INFO").read_text(encoding="utf-8")
    assert "License-Expression: MIT" in info and "License-File: LICENSE" in info
    assert "Classifier: Typing :: Typed" in info and "Keywords:" in info

    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    env["PYTHONPATH"] = str(tree)
    collect = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert collect.returncode == 0, collect.stdout[-3000:] + collect.stderr[-2000:]
    some = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_models.py", "tests/emulator/test_emu_profiles.py"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert some.returncode == 0, some.stdout[-3000:]


def _lower_bounds() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return dict(re.findall(r'"([A-Za-z0-9_-]+)>=([0-9.]+)"', deps))


def test_the_declared_minimums_are_the_ones_make_test_min_runs() -> None:
    pins = dict(
        re.findall(
            r"^([A-Za-z0-9_-]+)==([0-9.]+)$",
            (ROOT / "constraints-min.txt").read_text(encoding="utf-8"),
            flags=re.MULTILINE,
        )
    )
    bounds = _lower_bounds()
    assert set(bounds) == {"aiohttp", "msgspec", "anyio"}
    assert pins == bounds
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-c constraints-min.txt" in makefile
    assert "make test-min" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_installed_dependencies_meet_the_declared_bounds() -> None:
    from importlib.metadata import version

    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v)[:3])

    for name, low in _lower_bounds().items():
        assert parts(version(name)) >= parts(low), (name, version(name), low)
