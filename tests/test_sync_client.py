"""The blocking client, driven from plain threads against the emulator."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from emu_thread import serve_emulator

from midjourney_async import (
    ConfigurationError,
    Midjourney,
    SyncTaskHandle,
    Task,
    TaskFailed,
    TaskStatus,
    TaskTimeout,
)
from midjourney_async.testing import Emulator


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator served from a loop on its own thread, as a separate server would be."""
    with serve_emulator(speed="instant") as emulator:
        yield emulator


def client(emu: Emulator) -> Midjourney:
    return Midjourney(emu.base_url, emu.api_key, poll_interval=0.05)


def test_imagine_wait_press_and_download_without_await(emu: Emulator, tmp_path: Path) -> None:
    with client(emu) as mj:
        handle = mj.imagine("a red fox in snow")
        assert isinstance(handle, SyncTaskHandle)
        grid = handle.wait(timeout=30)
        assert grid.status == TaskStatus.SUCCESS and grid.image_url
        snapshots = list(handle.updates())
        assert snapshots[-1].status == TaskStatus.SUCCESS
        upscale = handle.upscale(1)
        big = upscale.wait(timeout=30)
        assert big.status == TaskStatus.SUCCESS
        [saved] = mj.download(big, tmp_path)
        assert saved.read_bytes().startswith(b"\x89PNG")
        assert mj.fetch(grid.id).id == grid.id
        assert mj.handle(grid.id).wait(timeout=30).id == grid.id
    assert mj.closed
    with pytest.raises(RuntimeError, match="closed"):
        mj.fetch(grid.id)


def test_errors_come_out_typed(emu: Emulator) -> None:
    with client(emu) as mj:
        with pytest.raises(TaskFailed):
            mj.imagine("doomed --emu-fail").wait(timeout=30)
        with pytest.raises(TaskTimeout):
            mj.imagine("stuck --emu-hang").wait(timeout=0.3)
        settled = mj.wait_all(
            [mj.imagine("fine"), mj.imagine("bad --emu-fail")], return_exceptions=True
        )
        assert isinstance(settled[0], Task) and isinstance(settled[1], TaskFailed)
    with pytest.raises(ConfigurationError):
        Midjourney("not a url", "k")


def test_one_client_serves_a_thread_pool(emu: Emulator) -> None:
    with client(emu) as mj:

        def job(n: int) -> str:
            return mj.imagine(f"pool job {n}").wait(timeout=60).id

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(job, range(16)))
        assert len(set(ids)) == 16
        handles = [mj.imagine(f"ordered {n}") for n in range(4)]
        done = [h.id for h in mj.as_completed(handles, timeout=30)]
        assert sorted(done) == sorted(h.id for h in handles)
    assert all(n == 1 for n in emu.stats.submits_by_prompt.values())


def test_a_client_left_open_is_closed_at_exit(emu: Emulator) -> None:
    script = (
        "from midjourney_async import Midjourney\n"
        f"mj = Midjourney({emu.base_url!r}, {emu.api_key!r}, poll_interval=0.05)\n"
        "print(mj.imagine('left open').wait(timeout=30).status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SUCCESS"
    # An unclosed aiohttp session complains on stderr; a clean exit says nothing.
    assert done.stderr == ""
