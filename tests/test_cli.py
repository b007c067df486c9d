"""The command line, run as a user runs it: a subprocess against the emulator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from mj_support import default_sigint

from midjourney_async.testing import Emulator

PNG = b"\x89PNG\r\n\x1a\n"


async def cli(
    emu: Emulator | None, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run ``python -m midjourney_async ARGS`` without blocking the emulator's loop.

    ``env`` adds variables after the emulator's (the machine's MJ_* never leak in).
    """
    env_all = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    if emu is not None:
        env_all.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=emu.api_key, MJ_PROVIDER=emu.provider)
    env_all.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "midjourney_async",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env_all,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_imagine_press_wait_download_and_failure_codes(tmp_path: Path) -> None:
    fast = ("--poll-interval", "0.05", "--plain")
    async with Emulator("midjourney-proxy-plus", speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "a red fox", "--json", *fast)
        assert code == 0, err
        [grid] = json.loads(out)
        assert grid["status"] == "SUCCESS"
        assert [b["label"] for b in grid["buttons"]][:2] == ["U1", "U2"]

        code, out, err = await cli(emu, "press", grid["id"], "U1", "--json", *fast)
        assert code == 0, err
        [upscale] = json.loads(out)
        assert upscale["action"] == "UPSCALE" and upscale["status"] == "SUCCESS"

        code, out, err = await cli(emu, "wait", grid["id"], upscale["id"], "--json", *fast)
        assert code == 0, err
        assert {t["id"] for t in json.loads(out)} == {grid["id"], upscale["id"]}

        code, out, err = await cli(emu, "download", upscale["id"], "--out", str(tmp_path))
        assert code == 0, err
        [saved] = [Path(line) for line in out.split()]
        assert saved.parent == tmp_path and saved.read_bytes().startswith(PNG)

        code, out, err = await cli(emu, "imagine", "doomed --emu-fail", *fast)
        assert code == 1
        assert "failed" in err

        code, out, err = await cli(
            emu, "imagine", "stuck --emu-hang", "--timeout", "0.5", *fast
        )
        assert code == 3
        assert "did not finish" in err

        code, out, err = await cli(emu, "fetch", "4444333322221111")
        assert code == 4
        assert "not known" in err

        assert all(n == 1 for n in emu.stats.submits_by_prompt.values())


async def test_no_wait_prints_the_id_and_wrong_key_is_exit_4() -> None:
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "just the id", "--no-wait")
        assert code == 0, err
        assert out.strip() in emu.tasks

        env_key = ("--api-key", "wrong-key")
        code, out, err = await cli(emu, "imagine", "x", *env_key)
        assert code == 4
        assert "401" in err and "wrong-key" not in err


async def test_usage_errors_exit_2() -> None:
    code, _, err = await cli(None, "imagine")
    assert code == 2 and "prompt" in err
    code, _, err = await cli(None, "no-such-command")
    assert code == 2


async def test_demo_leaves_real_png_files(tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    code, out, err = await cli(None, "demo", "--out", str(out_dir), "--plain", timeout=120)
    assert code == 0, err
    files = sorted(out_dir.glob("*.png"))
    assert len(files) == 3, out
    for path in files:
        data = path.read_bytes()
        assert data.startswith(PNG)
        width = int.from_bytes(data[16:20], "big")
        height = int.from_bytes(data[20:24], "big")
        assert width >= 256 and height >= 256
        assert str(path) in out
    assert "SUCCESS 100%" in err or "SUCCESS 100%" in out


async def test_emulator_command_serves_until_terminated() -> None:
    import aiohttp

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "midjourney_async",
        "emulator",
        "--profile",
        "trueai",
        "--port",
        "0",
        "--speed",
        "instant",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        base_url, key = line
        assert base_url.startswith("http://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(
            f"{base_url}/mj/task/1/fetch", headers={"Authorization": key}
        ) as resp:
            assert resp.status == 204  # trueai's answer for an unknown task
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_ctrl_c_prints_the_running_ids_and_how_to_resume() -> None:
    import signal

    async with Emulator(speed="instant") as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
        env.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=emu.api_key)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "midjourney_async", "imagine", "hold --emu-hang",
            "--plain", "--poll-interval", "0.05",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            preexec_fn=default_sigint,
        )
        assert proc.stderr is not None
        try:
            seen = b""
            while b"IN_PROGRESS" not in seen:  # the wait is under way
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                assert line, seen.decode()
                seen += line
            proc.send_signal(signal.SIGINT)
            rest = await asyncio.wait_for(proc.stderr.read(), 30)
            code = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:  # never leave the child running
                proc.kill()
                await proc.wait()
        [task_id] = list(emu.tasks)
    text = (seen + rest).decode()
    assert code == 130
    assert f"midjourney-async wait {task_id}" in text
    assert "Traceback" not in text
