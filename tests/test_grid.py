"""split_grid cuts a grid into the four images U1-U4 would give, with no job paid."""

from __future__ import annotations

from pathlib import Path

import pytest

from midjourney_async import DecodeError, MidjourneySession
from midjourney_async._grid import split_grid_bytes
from midjourney_async.testing import Emulator

Image = pytest.importorskip("PIL.Image")


async def test_split_grid_matches_the_upscaled_tiles(tmp_path: Path) -> None:
    async with Emulator() as emu, MidjourneySession(
        emu.base_url, emu.api_key, poll_interval=0.01
    ) as mj:
        grid = await mj.imagine("four different tiles")
        task = await grid
        actions_before = emu.stats.requests["submit/action"]
        tiles = await mj.split_grid(task, tmp_path)
        assert emu.stats.requests["submit/action"] == actions_before, "no job was paid for"
        upscaled = await (await grid.upscale(3)).wait()
        [u3] = await mj.download(upscaled, tmp_path / "u3")

    assert [p.name for p in tiles] == [f"{task.id}_grid_{i}.png" for i in range(1, 5)]
    images = [Image.open(p).convert("RGB") for p in tiles]
    assert len({img.tobytes() for img in images}) == 4, "the four tiles differ"
    # The emulator's upscale is tile 3 drawn larger: the same palette, unlike the others.
    def colours(img: Image.Image) -> set[tuple[int, int, int]]:
        return {c for _, c in img.convert("RGB").getcolors(1 << 20)}

    with Image.open(u3) as big:
        palette = colours(big)
    palettes = [colours(img) for img in images]
    assert palettes[2] == palette
    assert all(p != palette for i, p in enumerate(palettes) if i != 2)


def test_split_grid_refuses_what_is_not_an_image() -> None:
    with pytest.raises(DecodeError):
        split_grid_bytes(b"not an image at all")
