"""Every Python block of the README runs as printed, against the emulator."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from emu_thread import serve_emulator

README = Path(__file__).resolve().parent.parent / "README.md"
TESTING = "Testing your own code with the emulator"

# Snippets say "`mj` is an open MidjourneySession": this opens one on the MJ_*
# variables and runs the snippet with top-level await, as a notebook cell does.
SNIPPET_RUNNER = """\
import ast, asyncio, base64, sys
from midjourney_async import MidjourneySession

async def main() -> None:
    source = open(sys.argv[1], encoding="utf-8").read()
    async with MidjourneySession(poll_interval=0.05) as mj:
        grid = await (await mj.imagine("a mask for the snippets")).wait()
        [png] = await mj.download(grid, "masks")
        mask = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        scope = {"mj": mj, "mask_data_url": mask, "__name__": "__readme__"}
        code = compile(source, "README", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, scope)
        if result is not None:
            await result

asyncio.run(main())
"""


def sections() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return [(p.split("\n", 1)[0].strip(), p) for p in parts]


def section(title: str) -> str:
    return next(body for name, body in sections() if name == title)


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def blocks_outside_testing() -> list[tuple[str, str]]:
    return [
        (f"{title} #{i + 1}", block)
        for title, body in sections()
        if title != TESTING
        for i, block in enumerate(code_blocks(body))
    ]


def run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    return subprocess.run(
        args,
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_python_block_is_run() -> None:
    names = [name for name, _ in blocks_outside_testing()]
    assert len(names) + len(code_blocks(section(TESTING))) == len(
        code_blocks(README.read_text(encoding="utf-8"))
    )
    for needed in ("Quickstart #1", "Synchronous client #1", "Buttons #1"):
        assert needed in names


@pytest.mark.parametrize(
    ("name", "block"), blocks_outside_testing(), ids=[n for n, _ in blocks_outside_testing()]
)
def test_readme_block_runs(name: str, block: str, tmp_path: Path) -> None:
    provider = re.search(r'provider="([^"]+)"', block)
    key = re.search(r'api_key="([^"]+)"', block)
    # Blocks that name no provider run on the plus edition: the open one has no
    # buttons, which the Buttons section needs (the README says so).
    profile = provider.group(1) if provider else "midjourney-proxy-plus"
    options = {"api_key": key.group(1)} if key else {}
    (tmp_path / "block.py").write_text(block, encoding="utf-8")
    (tmp_path / "runner.py").write_text(SNIPPET_RUNNER, encoding="utf-8")
    snippet = re.search(r"^(\S.*)?\bawait\b|^async with", block, flags=re.MULTILINE) and (
        "asyncio.run(" not in block
    )
    with serve_emulator(profile=profile, speed="instant", **options) as emu:
        env = {
            "MJ_BASE_URL": emu.base_url,
            "MJ_API_KEY": emu.api_key,
            "MJ_PROVIDER": emu.provider,
            "MJ_POLL_INTERVAL": "0.05",  # an instant emulator: the 3 s default only slows the run
            "PORT": "0",
        }
        args = ["runner.py", "block.py"] if snippet else ["block.py"]
        done = run([sys.executable, *args], tmp_path, env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr


def test_emulator_examples_in_the_readme_run(tmp_path: Path) -> None:
    with_pytest, script = code_blocks(section(TESTING))

    (tmp_path / "test_mine.py").write_text(with_pytest, encoding="utf-8")
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout

    (tmp_path / "script.py").write_text(script, encoding="utf-8")
    done = run([sys.executable, "script.py"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = [Path(p) for p in re.findall(r"'([^']+\.png)'", done.stdout)]
    assert saved and all((tmp_path / p).read_bytes().startswith(b"\x89PNG") for p in saved)
