"""Drive the follow-up buttons: upscale, vary, zoom out, pan, vary region.

Each helper reads the custom id from the finished task's own buttons and
returns the new task's handle. Vary (Region) needs a mask; the helper answers
the modal window the server opens for it.

    python examples/buttons.py
"""

import asyncio
import base64
import struct
import zlib

from _common import open_session


def white_square_mask(size: int = 64) -> str:
    """A PNG data URL: black, with a white square in the middle (white = repaint)."""
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            inside = size // 4 <= x < 3 * size // 4 and size // 4 <= y < 3 * size // 4
            row.append(255 if inside else 0)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF
        )

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"".join(rows)))
    png += chunk(b"IEND", b"")
    return "data:image/png;base64," + base64.b64encode(png).decode()


async def main() -> None:
    async with open_session(provider="trueai") as mj:
        grid = await mj.imagine("a castle on a hill, isometric")
        print("grid:", (await grid).image_url)

        upscaled = await grid.upscale(2)
        print("U2:", (await upscaled).image_url)

        variation = await grid.variation(3)
        print("V3:", (await variation).image_url)

        zoomed = await upscaled.zoom_out(2)
        print("Zoom Out 2x:", (await zoomed).image_url)

        panned = await upscaled.pan("left")
        print("pan left:", (await panned).image_url)

        region = await upscaled.vary_region(white_square_mask(), prompt="a dragon on the tower")
        print("Vary (Region):", (await region).image_url)


if __name__ == "__main__":
    asyncio.run(main())
