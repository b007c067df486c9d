"""Cut a 2x2 grid into its four images locally, instead of paying for four upscales.

Needs Pillow (the ``images`` extra); the rest of the library never imports it.
"""

from __future__ import annotations

import io
from pathlib import Path

from ._errors import ConfigurationError, DecodeError

__all__ = ["MAX_GRID_PIXELS", "split_grid_bytes", "write_tiles"]

#: A grid is about 4 megapixels; this is far above any real one and below
#: Pillow's own decompression-bomb warning, so a bomb is refused before it is
#: decompressed.
MAX_GRID_PIXELS = 80_000_000


def split_grid_bytes(data: bytes) -> list[bytes]:
    """The four tiles of a grid image as PNG bytes: top-left, top-right, bottom-left,
    bottom-right (the order of U1-U4).

    Example::

        tiles = split_grid_bytes(Path("grid.png").read_bytes())
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise ConfigurationError(
            "split_grid needs Pillow: pip install 'midjourney-async[images]'"
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size  # from the header: nothing is decompressed yet
            if width * height > MAX_GRID_PIXELS:
                raise DecodeError(
                    f"a {width}x{height} image is far larger than a grid "
                    "(a decompression bomb?); it was not decoded"
                )
            image.load()
            if width < 2 or height < 2:
                raise DecodeError(f"a {width}x{height} image is too small to be a grid")
            half_w, half_h = width // 2, height // 2
            tiles = []
            for top in (0, half_h):
                for left in (0, half_w):
                    tile = image.crop((left, top, left + half_w, top + half_h))
                    out = io.BytesIO()
                    tile.save(out, format="PNG")
                    tiles.append(out.getvalue())
    except (
        UnidentifiedImageError,
        OSError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,  # raised, not shown, where warnings are errors
    ) as exc:
        raise DecodeError(f"the grid is not an image Pillow can read: {exc}") from None
    return tiles


def write_tiles(data: bytes, directory: Path, stem: str) -> list[Path]:
    """Split ``data`` and write ``<stem>_grid_<1-4>.png`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, tile in enumerate(split_grid_bytes(data), 1):
        path = directory / f"{stem}_grid_{index}.png"
        path.write_bytes(tile)
        paths.append(path)
    return paths
