"""Deterministic fake media: PNG grids and upscales, tiny MP4 files, data-URL decoding.

PNGs are written with ``zlib`` and ``struct`` only, so the emulator needs no imaging library.
Pictures are striped patterns whose colours and geometry come from a hash, so the same
prompt and seed always give the same bytes and the four tiles of a grid visibly differ.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
"""The eight bytes every PNG file starts with."""


@dataclass(frozen=True)
class TileStyle:
    """Geometry and colours of one tile's pattern, at scale 1."""

    colour_a: bytes
    colour_b: bytes
    colour_c: bytes
    stripe: int
    slope: int
    band: int

    @classmethod
    def from_key(cls, key: str) -> TileStyle:
        """Derive a style from any string (typically seed, job hash, prompt and tile index)."""
        d = hashlib.sha256(key.encode()).digest()
        return cls(
            colour_a=d[0:3],
            colour_b=bytes(255 - x for x in d[3:6]),
            colour_c=d[6:9],
            stripe=6 + d[9] % 26,
            slope=d[10] % 7 - 3,
            band=24 + d[11] % 48,
        )

    def rows(self, width: int, height: int, scale: int = 1) -> list[bytes]:
        """Return ``height`` raw RGB rows of ``width`` pixels, the pattern enlarged ``scale``x."""
        period = 2 * self.stripe * scale
        # One long row that every scanline is a slice of: diagonal stripes come from sliding
        # the slice window, which keeps generation at C speed instead of per-pixel Python.
        reps = width // period + 2
        long_row = (self.colour_a * (period // 2) + self.colour_b * (period // 2)) * reps
        bar = self.colour_c * width
        bar_height = max(1, self.band // 6)
        out: list[bytes] = []
        for y in range(height):
            y0 = y // scale
            if y0 % self.band < bar_height:
                out.append(bar)
                continue
            start = ((y0 * self.slope) % (2 * self.stripe)) * scale * 3
            out.append(long_row[start : start + width * 3])
        return out


def grid_styles(key: str) -> list[TileStyle]:
    """The four tile styles of the grid identified by ``key``."""
    return [TileStyle.from_key(f"{key}#{i}") for i in range(4)]


def encode_png(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode raw 8-bit RGB rows as a PNG file (filter type 0 on every row)."""
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 6)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def grid_png(key: str, width: int = 512, height: int = 512) -> bytes:
    """A 2x2 grid image: four different tiles derived from ``key``."""
    tw, th = width // 2, height // 2
    styles = grid_styles(key)
    tiles = [s.rows(tw, th) for s in styles]
    rows = [tiles[0][y] + tiles[1][y] for y in range(th)]
    rows += [tiles[2][y] + tiles[3][y] for y in range(th)]
    return encode_png(tw * 2, th * 2, rows)


def tile_png(key: str, index: int, width: int = 512, height: int = 512, scale: int = 2) -> bytes:
    """Tile ``index`` (1-4) of the grid ``key``, rendered larger: what an upscale returns."""
    style = grid_styles(key)[index - 1]
    return encode_png(width, height, style.rows(width, height, scale))


def single_png(key: str, width: int = 512, height: int = 512) -> bytes:
    """One full-size picture (face swap, describe input stand-in...)."""
    return encode_png(width, height, TileStyle.from_key(key).rows(width, height, 2))


def fake_mp4(key: str, size: int = 2048) -> bytes:
    """A small file that starts like an MP4 (ftyp box) followed by deterministic filler."""
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
    filler = bytearray()
    block = hashlib.sha256(key.encode()).digest()
    while len(filler) < size:
        filler += block
        block = hashlib.sha256(block).digest()
    mdat = struct.pack(">I", 8 + size) + b"mdat" + bytes(filler[:size])
    return ftyp + mdat


def aspect_size(ar: tuple[int, int] | None, long_side: int = 512) -> tuple[int, int]:
    """Image size for an aspect ratio, long side ``long_side``, both sides even."""
    if ar is None or ar[0] <= 0 or ar[1] <= 0:
        return long_side, long_side
    w, h = ar
    if w >= h:
        return long_side, max(2, (long_side * h // w) // 2 * 2)
    return max(2, (long_side * w // h) // 2 * 2), long_side


def decode_data_url(value: str) -> tuple[str, bytes] | None:
    """Decode a ``data:<type>;base64,...`` URL or bare base64 (taken as PNG).

    Returns ``(content_type, bytes)`` or ``None`` when the text is not valid base64.
    """
    content_type = "image/png"
    payload = value.strip()
    if payload.startswith("data:"):
        head, sep, payload = payload.partition(",")
        if not sep or ";base64" not in head:
            return None
        content_type = head[5:].split(";", 1)[0] or "application/octet-stream"
    if not payload:
        return None
    try:
        return content_type, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
