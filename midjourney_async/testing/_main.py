"""Command line entry point: serve an emulator from a shell until interrupted.

Prints ``<base_url> <api_key>`` on one line as soon as the port is bound, so a parent
process (tests, benchmarks, ``midjourney-async emulator``) can read where to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from ._profiles import profile_names


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "unlimited") else int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (shared with the project CLI's ``emulator`` command)."""
    parser = argparse.ArgumentParser(
        prog="python -m midjourney_async.testing",
        description="Run a local Midjourney proxy emulator (127.0.0.1 only).",
    )
    parser.add_argument("--profile", default="midjourney-proxy", choices=profile_names())
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "::1", "localhost"])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--speed", default="demo", help="instant, demo, realtime or a multiplier (default demo)"
    )
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--concurrency", type=_optional_int, default=3, help="jobs at once (none = unlimited)"
    )
    parser.add_argument(
        "--queue-size", type=_optional_int, default=10, help="jobs waiting (none = unlimited)"
    )
    parser.add_argument("--notify-hook", choices=["on", "off", "default"], default="default")
    parser.add_argument(
        "--account-remix",
        action="store_true",
        help="the account has remix on without auto-submit (Pan/Vary/Reroll open a MODAL)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log emulator activity")
    return parser


async def serve(args: argparse.Namespace) -> None:
    """Start the emulator described by ``args`` and serve until SIGINT/SIGTERM."""
    from ._emulator import Emulator

    hook = {"on": True, "off": False}.get(args.notify_hook)
    emu = Emulator(
        args.profile,
        speed=args.speed,
        seed=args.seed,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        concurrency=args.concurrency,
        queue_size=args.queue_size,
        notify_hook_enabled=hook,
        account_remix=args.account_remix,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with emu:
        print(f"{emu.base_url} {emu.api_key}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, print ``<base_url> <api_key>`` once serving, run until a signal."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    return 0
