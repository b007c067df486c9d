"""The shell entry point and the pytest plugin."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from midjourney_async.testing import Emulator
from midjourney_async.testing._main import main


async def test_python_m_serves_until_sigterm(http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "midjourney_async.testing", "--port", "0", "--profile", "trueai",
        "--speed", "instant", "--api-key", "cli-key", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=30)).decode().split()
        base_url, key = line
        assert base_url.startswith("http://127.0.0.1:") and key == "cli-key"
        async with http.get(f"{base_url}/_emulator/health") as r:
            assert (await r.json())["profile"] == "trueai"
        async with http.post(
            f"{base_url}/mj/submit/imagine", json={"prompt": "x"}, headers={"Authorization": key}
        ) as r:
            assert (await r.json())["code"] == 1
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_main_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--profile", "nope"])
    assert exc.value.code == 2
    assert main(["--speed", "warp", "--port", "0"]) == 2
    assert "speed" in capsys.readouterr().err


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, midjourney_async.testing._plugin as p;"
        "assert 'midjourney_async.testing._emulator' not in sys.modules, 'heavy import';"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


async def test_mj_emulator_fixture_defaults(mj_emulator: Emulator) -> None:
    assert mj_emulator.profile == "midjourney-proxy"
    assert mj_emulator.speed == 1000.0
    assert mj_emulator.base_url.startswith("http://127.0.0.1:")


@pytest.mark.mj_profile("ohmygpt")
async def test_mj_profile_marker(mj_emulator: Emulator) -> None:
    assert mj_emulator.profile == "ohmygpt"


async def test_mj_session_drives_the_emulator(mj_session: Any, mj_emulator: Emulator) -> None:
    handle = await mj_session.imagine("a red fox in snow")
    task = await handle.wait(timeout=10)
    assert task.status == "SUCCESS"
    assert task.image_url.startswith(mj_emulator.base_url)
    assert mj_emulator.stats.submits_by_prompt["a red fox in snow"] == 1
