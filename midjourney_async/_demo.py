"""``make demo``: a whole session against the built-in emulator, with real files saved."""

from __future__ import annotations

import sys
from pathlib import Path

from ._errors import MidjourneyError
from ._models import Task
from ._progress import Progress, follow
from ._session import MidjourneySession

__all__ = ["run_demo"]


def _say(text: str) -> None:
    print(text, flush=True)


async def run_demo(out: Path, *, prompt: str, plain: bool | None = None) -> int:
    """Imagine, press U1 and V2, wait with progress, download everything into ``out``.

    ``plain`` None draws bars on a terminal and plain lines elsewhere.
    """
    from .testing import Emulator

    async with Emulator(profile="midjourney-proxy", speed="demo") as emu:
        _say(f"emulator (midjourney-proxy profile, demo speed) listening at {emu.base_url}")
        async with MidjourneySession(
            emu.base_url, emu.api_key, provider="midjourney-proxy", poll_interval=0.5
        ) as mj:
            handle = await mj.imagine(prompt)
            _say(f"imagine submitted as task {handle.id}: {prompt!r}")
            with Progress(plain=plain) as progress:
                [grid] = await follow([handle], progress, labels=[f"imagine {handle.id}"])
            if not isinstance(grid, Task):
                print(f"demo failed: {grid}", file=sys.stderr)
                return 1
            _say("grid ready; buttons: " + ", ".join(b.name for b in grid.buttons))
            upscale = await handle.upscale(1)
            variation = await handle.variation(2)
            _say(f"pressed U1 (task {upscale.id}) and V2 (task {variation.id})")
            with Progress(plain=plain) as progress:
                labels = [f"U1 {upscale.id}", f"V2 {variation.id}"]
                results = await follow([upscale, variation], progress, labels=labels)
            failed = [r for r in results if isinstance(r, MidjourneyError)]
            if failed:
                print(f"demo failed: {failed[0]}", file=sys.stderr)
                return 1
            saved: list[Path] = []
            for task in [grid, *(r for r in results if isinstance(r, Task))]:
                saved.extend(await mj.download(task, out))
    _say(f"saved {len(saved)} files into {out}/:")
    for path in saved:
        _say(f"  {path}  ({path.stat().st_size:,} bytes)")
    return 0
