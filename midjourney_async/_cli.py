"""The command line: ``midjourney-async`` (also ``python -m midjourney_async``).

Exit codes: 0 success, 1 a task failed, 2 usage error, 3 a wait timed out,
4 any other error (auth, network, rejected submit), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ._errors import (
    MidjourneyError,
    ModalRequired,
    TaskFailed,
    TaskTimeout,
)
from ._handle import TaskHandle
from ._media import as_data_url
from ._models import Task
from ._progress import Progress, follow
from ._providers import PROVIDERS
from ._session import MidjourneySession

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", help="provider URL (env MJ_BASE_URL)")
    common.add_argument("--api-key", help="API key (env MJ_API_KEY)")
    common.add_argument(
        "--provider", choices=sorted(PROVIDERS), help="provider preset (env MJ_PROVIDER)"
    )
    common.add_argument("--mode", help="fast, relax or turbo where offered (env MJ_MODE)")
    common.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for each task (900)"
    )
    common.add_argument(
        "--poll-interval", type=float, default=3.0, help="seconds between status polls (3)"
    )
    common.add_argument("--json", action="store_true", help="print the final tasks as JSON")
    common.add_argument("--plain", action="store_true", help="plain progress lines, no bars")

    parser = argparse.ArgumentParser(
        prog="midjourney-async",
        description="Midjourney from the shell, through midjourney-proxy style APIs.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-wait", action="store_true", help="print the id and return")
        p.add_argument("--download", metavar="DIR", help="save the results into DIR")

    p = add("imagine", "generate a grid from a prompt")
    p.add_argument("prompt")
    p.add_argument("--image", action="append", default=[], help="image prompt file (repeat)")
    waiting(p)

    p = add("blend", "blend 2-5 images")
    p.add_argument("images", nargs="+")
    p.add_argument("--dimensions", choices=["PORTRAIT", "SQUARE", "LANDSCAPE"])
    waiting(p)

    p = add("describe", "four prompts for an image (file or URL)")
    p.add_argument("image")
    waiting(p)

    p = add("shorten", "shorter versions of a prompt")
    p.add_argument("prompt")
    waiting(p)

    p = add("press", "press a button (U1, V2, 🔄, 'Zoom Out 2x', or a customId)")
    p.add_argument("task_id")
    p.add_argument("button")
    p.add_argument("--prompt", help="prompt for a modal step (Custom Zoom, Vary Region)")
    p.add_argument("--mask", help="mask PNG file for Vary (Region)")
    waiting(p)

    p = add("modal", "answer a task waiting in MODAL")
    p.add_argument("task_id")
    p.add_argument("--prompt")
    p.add_argument("--mask", help="mask PNG file for Vary (Region)")
    waiting(p)

    p = add("video", "a video from a first frame")
    p.add_argument("--prompt")
    p.add_argument("--image", required=True, help="first frame: file or URL")
    p.add_argument("--motion", choices=["low", "high"])
    waiting(p)

    p = add("edits", "edit an image with a prompt")
    p.add_argument("prompt")
    p.add_argument("--image", required=True, help="file or URL")
    waiting(p)

    p = add("fetch", "print the current state of tasks")
    p.add_argument("task_ids", nargs="+")

    p = add("wait", "wait for tasks submitted earlier (by id, or all unfinished in a journal)")
    p.add_argument("task_ids", nargs="*")
    p.add_argument("--journal", metavar="FILE", help="resume every unfinished task of FILE")
    p.add_argument("--download", metavar="DIR")

    p = add("seed", "print the seed of a finished task")
    p.add_argument("task_id")

    p = add("download", "save the images and videos of finished tasks")
    p.add_argument("task_ids", nargs="+")
    p.add_argument("--out", default="out", help="directory (default ./out)")

    p = sub.add_parser("emulator", help="run the local provider emulator")
    p.add_argument("args", nargs=argparse.REMAINDER, help="emulator options (see --help)")

    p = sub.add_parser("demo", help="generate, upscale and save images against the emulator")
    p.add_argument("--out", default="out", help="directory for the images (default ./out)")
    p.add_argument("--prompt", default="a lighthouse on a cliff at dusk --ar 1:1")
    p.add_argument("--plain", action="store_true")
    return parser


def _image(value: str) -> str | bytes:
    if value.startswith(("http://", "https://", "data:")):
        return value
    path = Path(value)
    if not path.is_file():
        raise SystemExit(f"midjourney-async: no such file: {value}")
    return path.read_bytes()


def _session(args: argparse.Namespace) -> MidjourneySession:
    return MidjourneySession(
        base_url=args.base_url,
        api_key=args.api_key,
        provider=args.provider,
        mode=args.mode,
        wait_timeout=args.timeout,
        poll_interval=args.poll_interval,
        journal=getattr(args, "journal", None),
    )


def _mask(path: str | None) -> str | None:
    if path is None:
        return None
    return as_data_url(_image(path))


async def _submit(mj: MidjourneySession, args: argparse.Namespace) -> TaskHandle:
    cmd = args.command
    if cmd == "imagine":
        return await mj.imagine(args.prompt, images=[_image(i) for i in args.image])
    if cmd == "blend":
        return await mj.blend([_image(i) for i in args.images], dimensions=args.dimensions)
    if cmd == "describe":
        return await mj.describe(_image(args.image))
    if cmd == "shorten":
        return await mj.shorten(args.prompt)
    if cmd == "press":
        parent = mj.handle(args.task_id)
        await parent.refresh()
        return await parent.press(args.button, prompt=args.prompt, mask_base64=_mask(args.mask))
    if cmd == "modal":
        return await mj.modal(args.task_id, prompt=args.prompt, mask_base64=_mask(args.mask))
    if cmd == "video":
        return await mj.video(args.prompt, image=_image(args.image), motion=args.motion)
    if cmd == "edits":
        return await mj.edits(args.prompt, _image(args.image))
    raise AssertionError(cmd)


def _print_tasks(tasks: Sequence[Task], as_json: bool) -> None:
    if as_json:
        print(json.dumps([t.to_dict() for t in tasks], ensure_ascii=False, indent=2))
        return
    for task in tasks:
        print(f"{task.id}  {task.status}  {task.progress or ''}".rstrip())
        if task.image_url:
            print(f"  image: {task.image_url}")
        for url in task.image_urls:
            print(f"  image: {url}")
        for url in task.video_urls:
            print(f"  video: {url}")
        if task.final_prompt and task.final_prompt != task.prompt:
            print(f"  prompt: {task.final_prompt}")
        if task.buttons:
            print("  buttons: " + ", ".join(b.name for b in task.buttons))
        if task.fail_reason:
            print(f"  failed: {task.fail_reason}")


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


async def _wait_and_report(
    mj: MidjourneySession,
    handles: list[TaskHandle],
    args: argparse.Namespace,
    labels: list[str] | None = None,
) -> int:
    try:
        with Progress(plain=args.plain) as progress:
            results = await follow(handles, progress, timeout=args.timeout, labels=labels)
    except (asyncio.CancelledError, KeyboardInterrupt):
        _resume_hint(handles)
        raise
    tasks = [r for r in results if isinstance(r, Task)]
    for r in results:
        if isinstance(r, MidjourneyError):
            print(f"error: {r}", file=sys.stderr)
    _print_tasks(tasks, args.json)
    target = getattr(args, "download", None)
    if target:
        for task in tasks:
            for path in await mj.download(task, target):
                print(f"saved {path}", file=sys.stderr)
    return _exit_code(results)


def _resume_hint(handles: Sequence[TaskHandle]) -> None:
    running = [h.id for h in handles if h.task is None or not h.task.is_terminal]
    if running:
        print(
            "\ninterrupted; these tasks are still running on the server:\n  "
            + " ".join(running)
            + "\nresume with:\n  midjourney-async wait "
            + " ".join(running),
            file=sys.stderr,
        )


async def _run(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "demo":
        from ._demo import run_demo

        return await run_demo(Path(args.out), prompt=args.prompt, plain=args.plain)
    async with _session(args) as mj:
        if cmd == "fetch":
            tasks = await mj.fetch_many(args.task_ids)
            missing = set(args.task_ids) - {t.id for t in tasks}
            for task_id in sorted(missing):
                print(f"error: task {task_id} is not known to the server", file=sys.stderr)
            _print_tasks(tasks, args.json)
            return EXIT_ERROR if missing else EXIT_OK
        if cmd == "seed":
            print(await mj.image_seed(args.task_id))
            return EXIT_OK
        if cmd == "download":
            for task_id in args.task_ids:
                task = await mj.fetch(task_id)
                for path in await mj.download(task, args.out):
                    print(path)
            return EXIT_OK
        if cmd == "wait":
            handles = [mj.handle(i) for i in args.task_ids]
            if args.journal:
                known = {h.id for h in handles}
                handles += [h for h in await mj.resume() if h.id not in known]
            if not handles:
                print("nothing to wait for", file=sys.stderr)
                return EXIT_OK if args.journal else EXIT_USAGE
            return await _wait_and_report(mj, handles, args, labels=[h.id for h in handles])
        handle = await _submit(mj, args)
        if args.no_wait:
            if args.json:
                print(json.dumps({"id": handle.id, "task_ids": handle.task_ids}))
            else:
                print(handle.id)
            return EXIT_OK
        print(f"submitted {cmd}: {handle.id}", file=sys.stderr)
        return await _wait_and_report(mj, [handle], args, labels=[cmd])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulator":
        from .testing._main import main as emulator_main

        code: int = emulator_main(argv[1:])
        return code
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except MidjourneyError as exc:
        print(f"midjourney-async: {exc}", file=sys.stderr)
        if isinstance(exc, TaskTimeout):
            return EXIT_TIMEOUT
        if isinstance(exc, TaskFailed):
            return EXIT_FAILED
        return EXIT_ERROR

