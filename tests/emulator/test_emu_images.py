"""Generated PNGs: valid files, distinct tiles, upscales that enlarge their tile."""

from __future__ import annotations

from emu_support import Wire, WireFactory, button, decode_png


async def _png(w: Wire, url: str) -> bytes:
    r = await w.call("GET", url, auth=False)
    assert r.status == 200
    assert r.headers["Content-Type"] == "image/png"
    return r.body


async def test_grid_is_a_512_rgb_png_with_four_different_tiles(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    grid = await w.finished(await w.imagine("a red fox in snow"))
    png = decode_png(await _png(w, grid["imageUrl"]))
    assert (png.width, png.height) == (512, 512)
    tiles = [png.region(x, y, 256, 256) for y in (0, 256) for x in (0, 256)]
    assert len(set(tiles)) == 4
    for tile in tiles:  # a pattern, not a flat colour: stripes plus a band colour
        assert len({tile[i : i + 3] for i in range(0, len(tile), 3)}) >= 3


async def test_aspect_ratio_shapes_the_grid(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    wide = await w.finished(await w.imagine("fox --ar 16:9"))
    tall = await w.finished(await w.imagine("fox --ar 2:3"))
    assert (decode_png(await _png(w, wide["imageUrl"])).width, decode_png(
        await _png(w, wide["imageUrl"])).height) == (512, 288)
    assert decode_png(await _png(w, tall["imageUrl"])).height == 512
    assert decode_png(await _png(w, tall["imageUrl"])).width == 340


async def test_upscale_is_its_tile_enlarged(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    grid = await w.finished(await w.imagine("koi pond"))
    png = decode_png(await _png(w, grid["imageUrl"]))
    up = await w.finished((await w.press(grid["id"], button(grid, "U2"))).json()["result"])
    big = decode_png(await _png(w, up["imageUrl"]))
    assert (big.width, big.height) == (512, 512)
    for x, y in [(0, 0), (10, 40), (100, 200), (255, 255), (37, 129)]:
        assert big.pixel(2 * x, 2 * y) == png.pixel(256 + x, y)  # tile 2 = top right


async def test_prompt_and_seed_drive_the_image(wire: WireFactory) -> None:
    async def image(seed: int, prompt: str) -> bytes:
        w = await wire("midjourney-proxy-plus", seed=seed)
        grid = await w.finished(await w.imagine(prompt))
        return await _png(w, grid["imageUrl"])

    same = await image(1, "fox"), await image(1, "fox")
    assert same[0] == same[1]
    assert await image(1, "wolf") != same[0]
    assert await image(2, "fox") != same[0]


async def test_trueai_tile_urls_are_the_four_images(wire: WireFactory) -> None:
    w = await wire("trueai")
    grid = await w.finished(await w.imagine("fox"))
    tiles = [await _png(w, u["url"]) for u in grid["imageUrls"]]
    assert len(set(tiles)) == 4
    assert all(decode_png(t).width == 512 for t in tiles)


async def test_unknown_file_is_404(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    assert (await w.call("GET", "/files/nope.png", auth=False)).status == 404
