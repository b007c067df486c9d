"""The command line's arguments and help texts (the behaviour lives in ``_cli.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from ._providers import PROVIDERS
from ._version import __version__

__all__ = ["EXIT_CODES", "parser"]

EXIT_CODES = """\
exit codes:
  0    every task succeeded
  1    a task failed (or waits for a modal step)
  2    usage error (a wrong flag, a missing file or setting)
  3    a wait timed out (the task goes on on the server)
  4    any other error (authentication, network, rejected submit, a file not written)
  130  interrupted (Ctrl-C); the running ids are printed with how to resume"""

ENVIRONMENT = """\
environment:
  MJ_BASE_URL   provider URL (--base-url)
  MJ_API_KEY    API key (--api-key); never printed
  MJ_PROVIDER   provider preset (--provider)
  MJ_MODE       fast, relax or turbo where offered (--mode)
  NO_COLOR      set to turn colours off"""

EXAMPLES = """\
examples:
  midjourney-async imagine "a red fox in snow --ar 3:2" --out images/
  midjourney-async imagine -f prompts.txt --journal tasks.db
  midjourney-async press 1730621826053455 U1 --out images/
  midjourney-async wait --journal tasks.db
  midjourney-async --provider trueai --mode fast describe photo.png"""

# Per command: (help line, examples).
HELP: dict[str, tuple[str, str]] = {
    "imagine": (
        "generate a grid from one or more prompts",
        'midjourney-async imagine "a lighthouse at dusk --ar 16:9"\n'
        "  midjourney-async imagine \"a fox\" \"a cat\" --out images/\n"
        "  midjourney-async imagine -f prompts.txt   # one prompt a line; - reads stdin",
    ),
    "blend": ("blend 2-5 images", "midjourney-async blend a.png b.png --dimensions SQUARE"),
    "describe": (
        "four prompts for an image (file or URL)",
        "midjourney-async describe photo.png",
    ),
    "shorten": ("shorter versions of a prompt", 'midjourney-async shorten "a long prompt ..."'),
    "press": (
        "press a button (U1, V2, 🔄, 'Zoom Out 2x', or a customId); waits for an unfinished parent",
        "midjourney-async press 1730621826053455 U1 --out images/\n"
        "  midjourney-async press 1730621826053455 'Custom Zoom' --prompt 'a fox --zoom 1.5'",
    ),
    "modal": (
        "answer a task waiting in MODAL",
        "midjourney-async modal 1730621826053455 --prompt 'a fox --zoom 1.5'",
    ),
    "video": (
        "a video from a first frame",
        "midjourney-async video --image frame.png --prompt 'waves' --motion low",
    ),
    "edits": ("edit an image with a prompt", "midjourney-async edits 'make it snow' --image a.png"),
    "fetch": ("print the current state of tasks", "midjourney-async fetch 1730621826053455"),
    "wait": (
        "wait for tasks submitted earlier (by id, or every unfinished task of a journal)",
        "midjourney-async wait 1730621826053455 --out images/\n"
        "  midjourney-async wait --journal tasks.db",
    ),
    "cancel": ("ask the server to cancel tasks", "midjourney-async cancel 1730621826053455"),
    "seed": ("print the seed of a finished task", "midjourney-async seed 1730621826053455"),
    "download": (
        "save the images and videos of tasks (waits for unfinished ones)",
        "midjourney-async download 1730621826053455 --out images/",
    ),
}


def _globals(p: argparse.ArgumentParser, *, after: bool) -> None:
    # After the command the defaults are suppressed, so that a flag given
    # before it is not reset by the sub-parser's default.
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if after else value

    g = p.add_argument_group("connection and output (before or after the command)")
    g.add_argument("--base-url", default=d(None), help="provider URL (env MJ_BASE_URL)")
    g.add_argument("--api-key", default=d(None), help="API key (env MJ_API_KEY)")
    g.add_argument(
        "--provider",
        default=d(None),
        choices=sorted(PROVIDERS),
        metavar="NAME",
        help=f"provider preset (env MJ_PROVIDER): {', '.join(sorted(PROVIDERS))}",
    )
    g.add_argument("--mode", default=d(None), help="fast, relax or turbo where offered (MJ_MODE)")
    g.add_argument(
        "--timeout",
        type=float,
        default=d(900.0),
        metavar="SECONDS",
        help="wait at most this long for each task (900)",
    )
    g.add_argument(
        "--poll-interval",
        type=float,
        default=d(None),
        metavar="SECONDS",
        help="seconds between status polls (env MJ_POLL_INTERVAL, 3)",
    )
    g.add_argument(
        "--journal",
        default=d(None),
        metavar="FILE",
        help="record every submitted task in FILE (SQLite) to resume with `wait --journal`",
    )
    g.add_argument(
        "--json", action="store_true", default=d(False), help="print the tasks as JSON"
    )
    g.add_argument(
        "--plain",
        action="store_true",
        default=d(False),
        help="plain progress lines, no bars (the default when stderr is not a terminal)",
    )
    g.add_argument(
        "--no-color", action="store_true", default=d(False), help="no colours (env NO_COLOR)"
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=d(0),
        help="log what the library does (-vv for every request)",
    )


def _out(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("-o", "--out", metavar="DIR", default=default, help=what)
    # The name of earlier versions, kept working.
    p.add_argument("--download", dest="out", metavar="DIR", help=argparse.SUPPRESS)


def parser() -> argparse.ArgumentParser:
    """The ``midjourney-async`` argument parser."""
    top = argparse.ArgumentParser(
        prog="midjourney-async",
        description="Midjourney from the shell, through midjourney-proxy style APIs.",
        epilog=f"{EXAMPLES}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _globals(top, after=False)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str) -> argparse.ArgumentParser:
        help_text, examples = HELP[name]
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"examples:\n  {examples}\n\n{ENVIRONMENT}\n\n{EXIT_CODES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _globals(p, after=True)
        return p

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-wait", action="store_true", help="print the id and return")
        _out(p, None, "save the results into DIR")

    p = add("imagine")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="one or more prompts")
    p.add_argument(
        "-f", "--file", metavar="FILE", help="read prompts from FILE, one a line (- for stdin)"
    )
    p.add_argument("--image", action="append", default=[], help="image prompt file (repeat)")
    waiting(p)

    p = add("blend")
    p.add_argument("images", nargs="+")
    p.add_argument("--dimensions", choices=["PORTRAIT", "SQUARE", "LANDSCAPE"])
    waiting(p)

    p = add("describe")
    p.add_argument("image")
    waiting(p)

    p = add("shorten")
    p.add_argument("prompt")
    waiting(p)

    p = add("press")
    p.add_argument("task_id")
    p.add_argument("button")
    p.add_argument("--prompt", help="prompt for a modal step (Custom Zoom, Vary Region)")
    p.add_argument("--mask", help="mask PNG file for Vary (Region)")
    waiting(p)

    p = add("modal")
    p.add_argument("task_id")
    p.add_argument("--prompt")
    p.add_argument("--mask", help="mask PNG file for Vary (Region)")
    waiting(p)

    p = add("video")
    p.add_argument("--prompt")
    p.add_argument("--image", required=True, help="first frame: file or URL")
    p.add_argument("--motion", choices=["low", "high"])
    waiting(p)

    p = add("edits")
    p.add_argument("prompt")
    p.add_argument("--image", required=True, help="file or URL")
    waiting(p)

    p = add("fetch")
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID")

    p = add("wait")
    p.add_argument("task_ids", nargs="*", metavar="TASK_ID")
    _out(p, None, "save the results into DIR")

    p = add("cancel")
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID")

    p = add("seed")
    p.add_argument("task_id")

    p = add("download")
    p.add_argument("task_ids", nargs="+", metavar="TASK_ID")
    _out(p, "out", "directory (default ./out)")
    p.add_argument(
        "--no-wait", action="store_true", help="do not wait: an unfinished task is an error"
    )

    p = sub.add_parser("emulator", help="run the local provider emulator")
    p.add_argument("args", nargs=argparse.REMAINDER, help="emulator options (see --help)")

    p = sub.add_parser("demo", help="generate, upscale and save images against the emulator")
    _out(p, "out", "directory for the images (default ./out)")
    p.add_argument("--prompt", default="a lighthouse on a cliff at dusk --ar 1:1")
    p.add_argument("--plain", action="store_true", default=argparse.SUPPRESS)
    return top
