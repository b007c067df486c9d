"""The command line: ``midjourney-async`` (also ``python -m midjourney_async``).

Exit codes: 0 success, 1 a task failed, 2 usage error, 3 a wait timed out,
4 any other error (auth, network, rejected submit, a file not written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_args import parser as _parser
from ._errors import (
    ConfigurationError,
    MidjourneyError,
    ModalRequired,
    TaskFailed,
    TaskTimeout,
)
from ._handle import TaskHandle
from ._media import as_data_url
from ._models import Task, TaskStatus
from ._progress import Progress, follow
from ._providers import PROVIDERS, check_mode
from ._session import MidjourneySession

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130

SUBMITTING = {"imagine", "blend", "describe", "shorten", "press", "modal", "video", "edits"}


class UsageError(Exception):
    """A wrong flag or argument: exit 2, in the words of the command line."""


class _Colour:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def status(self, status: str) -> str:
        if not self.enabled:
            return status
        code = {"SUCCESS": "32", "FAILURE": "31", "CANCEL": "31"}.get(status, "33")
        return f"\x1b[{code}m{status}\x1b[0m"


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _check(args: argparse.Namespace) -> None:
    """Refuse what the session would refuse, naming the flag instead of the argument."""
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.poll_interval is not None and args.poll_interval <= 0:
        raise UsageError("--poll-interval must be a positive number of seconds")
    name = args.provider or _env("MJ_PROVIDER") or "midjourney-proxy"
    preset = PROVIDERS.get(name.lower())
    if preset is None:
        raise UsageError(
            f"unknown provider {name!r} (from MJ_PROVIDER); choose one of: "
            + ", ".join(sorted(PROVIDERS))
        )
    mode = args.mode or _env("MJ_MODE")
    try:
        check_mode(preset, mode)
    except ConfigurationError as exc:
        raise UsageError(f"--mode: {exc}") from None
    url = args.base_url or _env("MJ_BASE_URL") or preset.base_url
    if not url:
        raise UsageError(
            f"no provider URL: pass --base-url or set MJ_BASE_URL "
            f"(provider {preset.name!r} has no default)"
        )
    if not url.startswith(("http://", "https://")):
        raise UsageError("--base-url must be an http(s) URL such as https://api.example.com")
    for prompt in _prompts(args):
        if not prompt.strip():
            raise UsageError("the prompt is empty")


def _prompts(args: argparse.Namespace) -> list[str]:
    if args.command == "imagine":
        return list(args.prompts)
    if args.command in ("shorten", "edits"):
        return [args.prompt]
    return []


def _read_prompt_file(name: str) -> list[str]:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"-f: cannot read {name}: {exc.strerror}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _image(value: str, flag: str = "") -> str | bytes:
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{flag}: no such file: {value}" if flag else f"no such file: {value}")
    return path.read_bytes()


def _mask(path: str | None) -> str | None:
    return None if path is None else as_data_url(_image(path, "--mask"))


def _session(args: argparse.Namespace) -> MidjourneySession:
    return MidjourneySession(
        base_url=args.base_url,
        api_key=args.api_key,
        provider=args.provider,
        mode=args.mode,
        wait_timeout=args.timeout,
        poll_interval=args.poll_interval,
        journal=args.journal,
    )


async def _submit(mj: MidjourneySession, args: argparse.Namespace) -> TaskHandle:
    cmd = args.command
    if cmd == "blend":
        return await mj.blend([_image(i) for i in args.images], dimensions=args.dimensions)
    if cmd == "describe":
        return await mj.describe(_image(args.image))
    if cmd == "shorten":
        return await mj.shorten(args.prompt)
    if cmd == "modal":
        return await mj.modal(args.task_id, prompt=args.prompt, mask_base64=_mask(args.mask))
    if cmd == "video":
        return await mj.video(args.prompt, image=_image(args.image, "--image"), motion=args.motion)
    if cmd == "edits":
        return await mj.edits(args.prompt, _image(args.image, "--image"))
    raise AssertionError(cmd)


def _task_lines(task: Task, colour: _Colour) -> list[str]:
    head = f"{task.id}  {colour.status(str(task.status))}"
    if task.progress and not task.is_terminal:
        head += f"  {task.progress}"
    lines = [head]
    if task.image_url:
        lines.append(f"  image: {task.image_url}")
    lines += [f"  image: {url}" for url in task.image_urls]
    lines += [f"  video: {url}" for url in task.video_urls]
    prompts = task.prompts
    if prompts:
        lines += [f"  {i}. {p}" for i, p in enumerate(prompts, 1)]
    elif task.final_prompt and task.final_prompt != task.prompt:
        lines.append(f"  prompt: {task.final_prompt}")
    if task.buttons:
        lines.append("  buttons: " + ", ".join(b.name for b in task.buttons))
    if task.fail_reason:
        lines.append(f"  failed: {task.fail_reason}")
    return lines


def _print_results(
    handles: Sequence[TaskHandle],
    results: Sequence[Task | MidjourneyError],
    args: argparse.Namespace,
    colour: _Colour,
) -> None:
    """Every task whatever its outcome: the exit code tells the outcome."""
    rows: list[dict[str, Any]] = []
    for handle, result in zip(handles, results, strict=True):
        snapshot = result if isinstance(result, Task) else handle.task
        row = snapshot.to_dict() if snapshot is not None else {"id": handle.id, "status": None}
        if isinstance(result, MidjourneyError):
            row["error"] = str(result)
            row["error_type"] = type(result).__name__
        rows.append(row)
        if not args.json and snapshot is not None:
            print("\n".join(_task_lines(snapshot, colour)))
        elif not args.json:
            print(f"{handle.id}  (no status yet)")
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))


def _exit_code(results: Sequence[Task | MidjourneyError]) -> int:
    code = EXIT_OK
    for r in results:
        if isinstance(r, TaskTimeout):
            code = max(code, EXIT_TIMEOUT)
        elif isinstance(r, (TaskFailed, ModalRequired)):
            code = max(code, EXIT_FAILED)
        elif isinstance(r, MidjourneyError):
            code = max(code, EXIT_ERROR)
    return code


def _progress(args: argparse.Namespace) -> Progress:
    # None: bars on a terminal, plain lines in logs and pipes.
    return Progress(plain=True if args.plain else None)


async def _follow(
    handles: list[TaskHandle], labels: list[str], args: argparse.Namespace
) -> list[Task | MidjourneyError]:
    try:
        with _progress(args) as progress:
            return await follow(handles, progress, timeout=args.timeout, labels=labels)
    except (asyncio.CancelledError, KeyboardInterrupt):
        _resume_hint(handles, args)
        raise


async def _wait_and_report(
    mj: MidjourneySession,
    handles: list[TaskHandle],
    labels: list[str],
    args: argparse.Namespace,
    colour: _Colour,
) -> int:
    results = await _follow(handles, labels, args)
    for r in results:
        if isinstance(r, MidjourneyError):
            print(f"error: {r}", file=sys.stderr)
    _print_results(handles, results, args, colour)
    if args.out:
        for result in results:
            if isinstance(result, Task):
                for path in await mj.download(result, args.out):
                    print(f"saved {path}", file=sys.stderr)
    return _exit_code(results)


def _resume_hint(handles: Sequence[TaskHandle], args: argparse.Namespace) -> None:
    running = [h.id for h in handles if h.task is None or not h.task.is_terminal]
    if not running:
        return
    # The flags that chose the server; the key is never echoed.
    flags: list[str] = []
    for flag, value in (
        ("--base-url", args.base_url),
        ("--provider", args.provider),
        ("--mode", args.mode),
    ):
        if value:
            flags += [flag, value]
    if args.api_key:
        flags += ["--api-key", "KEY"]
    out = getattr(args, "out", None)
    if out:
        flags += ["--out", out]
    command = " ".join(["midjourney-async", "wait", *running, *map(shlex.quote, flags)])
    text = (
        "\ninterrupted; these tasks are still running on the server:\n  "
        + " ".join(running)
        + f"\nresume with:\n  {command}"
    )
    if args.journal:
        text += f"\nor:\n  midjourney-async wait --journal {shlex.quote(args.journal)}"
    print(text, file=sys.stderr)


async def _press(mj: MidjourneySession, args: argparse.Namespace) -> TaskHandle | int:
    parent = mj.handle(args.task_id)
    task = await parent.refresh()
    if not task.is_terminal:
        print(
            f"task {task.id} is {task.status} {task.progress or ''}".rstrip()
            + f"; waiting for it to finish before pressing {args.button}",
            file=sys.stderr,
        )
        [result] = await _follow([parent], [f"{task.id} (parent)"], args)
        if isinstance(result, MidjourneyError):
            print(f"error: {result}", file=sys.stderr)
            return _exit_code([result])
    return await parent.press(args.button, prompt=args.prompt, mask_base64=_mask(args.mask))


async def _submit_all(
    mj: MidjourneySession, args: argparse.Namespace
) -> tuple[list[TaskHandle], list[str], int]:
    """Submit what the command asks; handles, their labels and an exit code for failed submits."""
    cmd = args.command
    if cmd == "press":
        pressed = await _press(mj, args)
        if isinstance(pressed, int):
            return [], [], pressed
        return [pressed], [f"{args.button} {pressed.id}"], EXIT_OK
    if cmd != "imagine":
        handle = await _submit(mj, args)
        return [handle], [f"{cmd} {handle.id}"], EXIT_OK
    images = [_image(i, "--image") for i in args.image]
    handles: list[TaskHandle] = []
    code = EXIT_OK
    for prompt in args.prompts:
        try:
            handles.append(await mj.imagine(prompt, images=images))
        except MidjourneyError as exc:
            if len(args.prompts) == 1:
                raise
            # The prompts already accepted still run: wait for them too.
            print(f"error: {prompt!r}: {exc}", file=sys.stderr)
            code = EXIT_ERROR
    return handles, [h.id for h in handles], code


async def _wait_command(
    mj: MidjourneySession, args: argparse.Namespace, colour: _Colour
) -> int:
    handles = [mj.handle(i) for i in dict.fromkeys(args.task_ids)]
    code = EXIT_OK
    if handles:
        # One look first: an id the server does not know is said at once.
        known = {t.id: t for t in await mj.fetch_many([h.id for h in handles])}
        for h in handles:
            if h.id in known:
                mj.notify(known[h.id])
            else:
                print(f"error: task {h.id} is not known to the server", file=sys.stderr)
                code = EXIT_ERROR
        handles = [h for h in handles if h.id in known]
    if args.journal:
        ids = {h.id for h in handles}
        handles += [h for h in await mj.resume() if h.id not in ids]
    if not handles:
        if code == EXIT_OK:
            print("nothing to wait for", file=sys.stderr)
            return EXIT_OK if args.journal else EXIT_USAGE
        return code
    return max(code, await _wait_and_report(mj, handles, [h.id for h in handles], args, colour))


async def _download(mj: MidjourneySession, args: argparse.Namespace) -> int:
    handles = [mj.handle(i) for i in dict.fromkeys(args.task_ids)]
    if args.no_wait:
        results: list[Task | MidjourneyError] = []
        for h in handles:
            task = await mj.fetch(h.id)
            if task.status != TaskStatus.SUCCESS:
                raise UsageError(
                    f"task {task.id} is {task.status}, not finished; "
                    "leave out --no-wait to wait for it"
                )
            results.append(task)
    else:
        results = await _follow(handles, [f"download {h.id}" for h in handles], args)
    for result in results:
        if isinstance(result, MidjourneyError):
            print(f"error: {result}", file=sys.stderr)
            continue
        for path in await mj.download(result, args.out):
            print(path)
    return _exit_code(results)


async def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from ._demo import run_demo

        plain = getattr(args, "plain", False)
        return await run_demo(Path(args.out), prompt=args.prompt, plain=True if plain else None)
    colour = _Colour(
        sys.stdout.isatty() and not args.no_color and not args.json and not _env("NO_COLOR")
    )
    async with _session(args) as mj:
        if cmd == "fetch":
            tasks = await mj.fetch_many(args.task_ids)
            missing = set(args.task_ids) - {t.id for t in tasks}
            for task_id in sorted(missing):
                print(f"error: task {task_id} is not known to the server", file=sys.stderr)
            fetched = [mj.handle(t.id) for t in tasks]
            _print_results(fetched, tasks, args, colour)
            return EXIT_ERROR if missing else EXIT_OK
        if cmd == "seed":
            print(await mj.image_seed(args.task_id))
            return EXIT_OK
        if cmd == "cancel":
            for task_id in args.task_ids:
                await mj.cancel(task_id)
                print(f"cancel requested: {task_id}", file=sys.stderr)
            return EXIT_OK
        if cmd == "download":
            return await _download(mj, args)
        if cmd == "wait":
            return await _wait_command(mj, args, colour)
        handles, labels, code = await _submit_all(mj, args)
        if not handles:
            return code
        if args.no_wait:
            if args.json:
                rows = [{"id": h.id, "task_ids": h.task_ids} for h in handles]
                print(json.dumps(rows[0] if len(rows) == 1 else rows))
            else:
                print("\n".join(h.id for h in handles))
            return code
        for handle in handles:
            print(f"submitted {cmd}: {handle.id}", file=sys.stderr)
        return max(code, await _wait_and_report(mj, handles, labels, args, colour))


def _verbose(level: int) -> None:
    if level <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("midjourney_async")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if level == 1 else logging.DEBUG)


def _os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"cannot write {exc.filename}: {exc.strerror}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        from .testing._main import main as emulator_main

        code: int = emulator_main(argv[1:])
        return code
    args = _parser().parse_args(argv)
    try:
        if args.command != "demo":
            if args.command == "imagine":
                if args.file:
                    args.prompts = [*args.prompts, *_read_prompt_file(args.file)]
                if not args.prompts:
                    raise UsageError("imagine needs a prompt (or -f FILE)")
            _check(args)
            _verbose(args.verbose)
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (UsageError, ConfigurationError) as exc:
        print(
            f"midjourney-async: error: {exc}\n(see midjourney-async {args.command} --help)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except MidjourneyError as exc:
        print(f"midjourney-async: {exc}", file=sys.stderr)
        if isinstance(exc, TaskTimeout):
            return EXIT_TIMEOUT
        if isinstance(exc, TaskFailed):
            return EXIT_FAILED
        return EXIT_ERROR
    except OSError as exc:
        print(f"midjourney-async: {_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
