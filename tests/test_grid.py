"""split_grid cuts a grid into the four images U1-U4 would give, with no job paid."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from mj_support import Emulated

from midjourney_async import DecodeError
from midjourney_async._grid import split_grid_bytes

Image = pytest.importorskip("PIL.Image")


async def test_split_grid_matches_the_upscaled_tiles(tmp_path: Path, emulated: Emulated) -> None:
    async with emulated() as (emu, mj):
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
    def colours(img: Any) -> set[tuple[int, int, int]]:  # PIL is optional, so untyped here
        return {c for _, c in img.convert("RGB").getcolors(1 << 20)}

    with Image.open(u3) as big:
        palette = colours(big)
    palettes = [colours(img) for img in images]
    assert palettes[2] == palette
    assert all(p != palette for i, p in enumerate(palettes) if i != 2)


def test_split_grid_refuses_what_is_not_an_image() -> None:
    with pytest.raises(DecodeError):
        split_grid_bytes(b"not an image at all")


def _png(width: int, height: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(
        b"IEND", b""
    )


@pytest.mark.parametrize(
    "size", [(60_000, 60_000), (9_000, 9_000), (2**31 - 1, 2)], ids=["bomb", "big", "absurd"]
)
def test_split_grid_refuses_a_decompression_bomb_before_decoding_it(
    size: tuple[int, int],
) -> None:
    # A few hundred bytes that claim billions of pixels: decoding them would take
    # gigabytes of memory. Refused from the header, as a DecodeError.
    width, height = size
    compressor = zlib.compressobj(9)
    idat = compressor.compress(b"\x00" * 1_000_000) + compressor.flush()
    with pytest.raises(DecodeError, match=r"larger than a grid|not an image"):
        split_grid_bytes(_png(width, height, idat))


def test_split_grid_still_cuts_a_small_grid() -> None:
    image = Image.new("RGB", (8, 8), (10, 20, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    tiles = split_grid_bytes(out.getvalue())
    assert len(tiles) == 4
    assert all(Image.open(io.BytesIO(t)).size == (4, 4) for t in tiles)
