"""The command line follows the conventions of gh, httpie and the openai CLI.

Each test runs ``python -m midjourney_async`` as a user would, against the emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from mj_support import default_sigint
from test_cli import cli

from midjourney_async import InvalidArgument, MidjourneySession, Task
from midjourney_async.testing import Emulator

FAST = ("--poll-interval", "0.05")


async def test_describe_prints_the_four_prompts_numbered(tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "describe", str(photo), *FAST, "--plain")
        assert code == 0, err
        for n in (1, 2, 3, 4):
            assert f"  {n}. " in out
        code, out, err = await cli(emu, "describe", str(photo), *FAST, "--json")
        [task] = json.loads(out)
        assert len(task["prompts"]) == 4 and all(p and "️⃣" not in p for p in task["prompts"])


def test_task_prompts_are_parsed_from_the_numbered_text() -> None:
    text = "1️⃣ a fox, oil painting --ar 3:2\n\n2️⃣ a cat\n\n3️⃣ a dog\n\n4️⃣ a bird"
    assert Task(id="1", prompt=text).prompts == [
        "a fox, oil painting --ar 3:2",
        "a cat",
        "a dog",
        "a bird",
    ]
    assert Task(id="1", prompt="just a prompt").prompts == []


async def test_output_that_is_not_a_terminal_gets_plain_lines() -> None:
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "a quiet lake", *FAST)
        assert code == 0, err
        task_id = out.split()[0]
        assert f"{task_id}: submitted" in err
        assert f"{task_id}: SUCCESS 100%" in err
        assert "\x1b[" not in err + out  # no terminal control codes in a log


async def test_download_into_an_unwritable_place_is_one_line_exit_4(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "a fox", *FAST, "--json")
        [task] = json.loads(out)
        code, out, err = await cli(emu, "download", task["id"], "--out", str(blocker / "sub"))
    assert code == 4
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("midjourney-async")]
    assert line.startswith("midjourney-async: cannot write ") and str(blocker) in line


@pytest.mark.parametrize(
    ("args", "env", "flag"),
    [
        (("imagine", "x", "--image", "missing.png"), {}, "--image"),
        (("imagine", "x", "--timeout", "-1"), {}, "--timeout"),
        (("imagine", "x", "--provider", "trueai", "--mode", "warp"), {}, "--mode"),
        (("imagine", "x"), {"MJ_PROVIDER": "no-such"}, "MJ_PROVIDER"),
        (("imagine", "x", "--base-url", ""), {"MJ_BASE_URL": ""}, "--base-url"),
        (("imagine", "  "), {}, "prompt"),
        (("shorten", ""), {}, "prompt"),
    ],
)
async def test_usage_errors_exit_2_naming_the_flag(
    args: tuple[str, ...], env: dict[str, str], flag: str
) -> None:
    base = () if "--base-url" in args else ("--base-url", "http://127.0.0.1:9")
    code, _out, err = await cli(None, *args, *base, "--api-key", "k", *FAST, env=env)
    assert code == 2, err
    assert flag in err
    assert "Traceback" not in err and "base_url=" not in err


async def test_json_prints_failed_and_timed_out_tasks() -> None:
    async with Emulator(speed="instant") as emu:
        code, out, _err = await cli(emu, "imagine", "doomed --emu-fail", *FAST, "--json")
        assert code == 1
        [task] = json.loads(out)
        assert task["status"] == "FAILURE" and task["fail_reason"] and task["error"]
        code, out, _err = await cli(
            emu, "imagine", "stuck --emu-hang", "--timeout", "0.5", *FAST, "--json"
        )
        assert code == 3
        [task] = json.loads(out)
        assert task["id"] in emu.tasks and task["error_type"] == "TaskTimeout"


async def test_download_of_an_unfinished_task_waits_or_refuses(tmp_path: Path) -> None:
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "stuck --emu-hang", "--no-wait")
        task_id = out.strip()
        code, out, err = await cli(emu, "download", task_id, "--out", str(tmp_path), "--no-wait")
        assert code == 2 and "not finished" in err
        code, out, err = await cli(
            emu, "download", task_id, "--out", str(tmp_path), "--timeout", "0.5", *FAST
        )
        assert code == 3
        assert os.listdir(tmp_path) == []

        async with MidjourneySession(emu.base_url, emu.api_key) as mj:
            unfinished = await mj.fetch(task_id)
            with pytest.raises(InvalidArgument, match="not finished"):
                await mj.download(unfinished, tmp_path)
        assert os.listdir(tmp_path) == []


async def test_version_and_help_texts() -> None:
    from midjourney_async import __version__

    code, out, _ = await cli(None, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = await cli(None, "imagine", "--help")
    assert code == 0
    for needed in ("examples:", "MJ_API_KEY", "exit codes:", "130", "--journal", "-f FILE"):
        assert needed in out
    code, out, _ = await cli(None, "--help")
    assert "MJ_BASE_URL" in out and "cancel" in out


async def test_global_flags_go_before_or_after_the_command() -> None:
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(emu, "--json", "--poll-interval", "0.05", "imagine", "a fox")
        assert code == 0, err
        assert json.loads(out)[0]["status"] == "SUCCESS"
        # A flag before the command is not reset by the command's own default.
        code, out, err = await cli(
            emu, "--timeout", "0.5", "imagine", "stuck --emu-hang", "--poll-interval", "0.05"
        )
        assert code == 3, err


async def test_verbose_turns_on_the_library_log() -> None:
    async with Emulator(speed="instant") as emu:
        code, _, quiet = await cli(emu, "imagine", "a fox", *FAST)
        code, _, loud = await cli(emu, "imagine", "a fox", *FAST, "--verbose")
        assert code == 0
        assert "accepted as task" not in quiet
        assert "INFO midjourney_async: imagine accepted as task" in loud


async def test_cancel_command() -> None:
    async with Emulator(profile="trueai", speed="instant") as emu:
        code, out, err = await cli(emu, "imagine", "stuck --emu-hang", "--no-wait")
        task_id = out.strip()
        code, out, err = await cli(emu, "cancel", task_id)
        assert code == 0, err
        code, out, err = await cli(emu, "fetch", task_id, "--json")
        # trueai reports a cancelled task as a FAILURE with the cancel as reason.
        assert json.loads(out)[0]["status"] in ("CANCEL", "FAILURE")
        assert emu.tasks[task_id].status in ("CANCEL", "FAILURE")


async def test_several_prompts_and_a_prompt_file_each_with_a_bar(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# my list\na red fox\n\na blue whale\n", encoding="utf-8")
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(
            emu, "imagine", "a green frog", "-f", str(prompts), *FAST, "--plain", "--json"
        )
        assert code == 0, err
        tasks = json.loads(out)
        assert [t["prompt"] for t in tasks] == ["a green frog", "a red fox", "a blue whale"]
        for task in tasks:
            assert f"{task['id']}: SUCCESS 100%" in err
        assert sorted(emu.stats.submits_by_prompt.values()) == [1, 1, 1]


async def test_journal_on_submitting_commands_lets_wait_resume(tmp_path: Path) -> None:
    journal = str(tmp_path / "tasks.db")
    async with Emulator(speed="instant") as emu:
        code, out, err = await cli(
            emu, "imagine", "a fox", "stuck --emu-hang", "--journal", journal, "--no-wait"
        )
        assert code == 0, err
        ids = out.split()
        code, out, err = await cli(emu, "--journal", journal, "wait", *FAST, "--timeout", "0.5")
        assert code == 3
        assert all(task_id in out for task_id in ids)


async def test_press_bar_is_labelled_with_the_button_and_waits_for_its_parent() -> None:
    async with Emulator(speed=0.001) as emu:
        _code, out, _err = await cli(emu, "imagine", "a slow fox", "--no-wait")
        parent = out.strip()
        proc = await _start(emu, "press", parent, "U1", "--plain", *FAST)
        assert proc.stderr is not None
        seen = await _read_until(proc, b"waiting for it to finish before pressing U1")
        await emu.complete_all()
        seen += await _read_until(proc, b"submitted press")
        await emu.complete_all()
        rest = await asyncio.wait_for(proc.stderr.read(), 30)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    text = (seen + rest).decode()
    assert f"{parent} (parent): " in text
    upscale = text.split("submitted press: ")[1].split()[0]
    assert f"U1 {upscale}: SUCCESS 100%" in text


async def test_wait_on_an_unknown_id_says_so_after_one_fetch() -> None:
    async with Emulator(speed="instant") as emu:
        code, _out, err = await cli(emu, "wait", "4444333322221111", *FAST, timeout=15)
        assert code == 4
        assert "4444333322221111 is not known" in err


async def test_ctrl_c_hint_repeats_the_flags_needed_to_resume(tmp_path: Path) -> None:
    journal = str(tmp_path / "j.db")
    async with Emulator(profile="trueai", speed="instant") as emu:
        proc = await _start(
            None,
            "imagine", "hold --emu-hang", "--plain", *FAST,
            "--base-url", emu.base_url, "--provider", "trueai", "--api-key", emu.api_key,
            "--journal", journal,
        )  # fmt: skip
        try:
            seen = await _read_until(proc, b"IN_PROGRESS")
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            rest = await asyncio.wait_for(proc.stderr.read(), 30)
            assert await asyncio.wait_for(proc.wait(), 30) == 130
        finally:
            if proc.returncode is None:  # never leave the child running
                proc.kill()
                await proc.wait()
        [task_id] = list(emu.tasks)
    text = (seen + rest).decode()
    assert (
        f"midjourney-async wait {task_id} --base-url {emu.base_url} --provider trueai" in text
    )
    assert f"midjourney-async wait --journal {journal}" in text
    assert emu.api_key not in text


async def test_results_are_coloured_on_a_terminal() -> None:
    import pty

    async with Emulator(speed="instant") as emu:
        leader, follower = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MJ_", "NO_COLOR"))}
        env.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=emu.api_key)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "midjourney_async", "imagine", "a fox", *FAST,
            stdout=follower, stderr=follower, env=env,
        )  # fmt: skip
        os.close(follower)
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    data = os.read(leader, 4096)
                except OSError:  # the terminal closed with the process
                    return
                if not data:
                    return
                chunks.append(data)

        await asyncio.wait_for(asyncio.gather(asyncio.to_thread(drain), proc.wait()), 60)
        os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\x1b[32mSUCCESS\x1b[0m" in text


async def _start(emu: Emulator | None, *args: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MJ_")}
    if emu is not None:
        env.update(MJ_BASE_URL=emu.base_url, MJ_API_KEY=emu.api_key, MJ_PROVIDER=emu.profile)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "midjourney_async", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        preexec_fn=default_sigint,
    )  # fmt: skip


async def _read_until(proc: asyncio.subprocess.Process, marker: bytes) -> bytes:
    assert proc.stderr is not None
    seen = b""
    while marker not in seen:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert line, seen.decode()
        seen += line
    return seen
