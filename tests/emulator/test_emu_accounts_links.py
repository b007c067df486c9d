"""What the server received for bot and account, and image links that die or point elsewhere."""

from __future__ import annotations

import aiohttp
import pytest
from emu_support import WireFactory

from midjourney_async.testing import ServerQuirks

# -- botType and accountFilter ------------------------------------------------------------


async def test_trueai_records_niji_bot_and_account_filter(wire: WireFactory) -> None:
    w = await wire("trueai")
    account = {"instanceId": w.emu.instance_id, "modes": ["FAST"], "remix": True}
    tid = await w.imagine("fox", botType="NIJI_JOURNEY", accountFilter=account)
    task = w.emu.tasks[tid]
    assert (task.bot_type, task.account_filter) == ("NIJI_JOURNEY", account)
    assert (await w.task(tid))["botType"] == "NIJI_JOURNEY"
    assert w.emu.received[-1] == (
        "submit/imagine",
        {"prompt": "fox", "botType": "NIJI_JOURNEY", "accountFilter": account},
    )
    # trueai reads "niji" as the niji bot and anything else as Midjourney.
    assert w.emu.tasks[await w.imagine("cat", botType="niji")].bot_type == "NIJI_JOURNEY"
    assert w.emu.tasks[await w.imagine("cat", botType="other")].bot_type == "MID_JOURNEY"


@pytest.mark.parametrize("profile", ["trueai", "midjourney-proxy-plus"])
async def test_account_filter_naming_an_unknown_instance_is_code_3(
    wire: WireFactory, profile: str
) -> None:
    w = await wire(profile)
    r = await w.submit("imagine", prompt="fox", accountFilter={"instanceId": "404"})
    assert r.json() == {
        "code": 3, "description": "无可用的账号实例", "result": None, "properties": {}
    }
    assert not w.emu.tasks


async def test_plus_edition_takes_the_filter_fields_top_level(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox", instanceId=w.emu.instance_id, modes=["RELAX"])
    assert w.emu.tasks[tid].account_filter == {
        "instanceId": w.emu.instance_id, "modes": ["RELAX"]
    }


async def test_new_api_drops_account_filter_unless_enabled(wire: WireFactory) -> None:
    w = await wire("new-api")
    account = {"instanceId": "whatever"}
    tid = await w.imagine("fox", botType="NIJI_JOURNEY", accountFilter=account)
    assert w.emu.tasks[tid].account_filter is None  # the upstream never saw it
    assert w.emu.tasks[tid].bot_type == "NIJI_JOURNEY"
    assert w.emu.received[-1][1]["accountFilter"] == account  # but the relay received it
    w.emu.quirks.relay_account_filter = True
    refused = await w.submit("imagine", prompt="fox", accountFilter=account)
    assert refused.status == 400
    assert refused.json()["code"] == 3
    good = {"instanceId": w.emu.instance_id}
    kept = await w.imagine("fox", accountFilter=good)
    assert w.emu.tasks[kept].account_filter == good


# -- image links that expire ----------------------------------------------------------------


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with http.get(url) as r:
        return r.status, await r.read()


async def test_image_link_dies_after_first_use_and_a_fetch_renews_it(
    wire: WireFactory, http: aiohttp.ClientSession
) -> None:
    w = await wire("trueai", quirks=ServerQuirks(image_link_uses=1))
    grid = await w.finished(await w.imagine("fox"))
    first = grid["imageUrl"]
    assert "?ex=" in first
    status, data = await _get(http, first)
    assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert await _get(http, first) == (404, b"This content is no longer available.")
    renewed = await w.task(grid["id"])
    assert renewed["imageUrl"] != first
    assert (await _get(http, renewed["imageUrl"]))[0] == 200
    # Using up one of the four single images renews the links on the next fetch too.
    singles = [u["url"] for u in renewed["imageUrls"]]
    assert [(await _get(http, u))[0] for u in singles] == [200] * 4
    assert (await _get(http, singles[0]))[0] == 404
    again = [u["url"] for u in (await w.task(grid["id"]))["imageUrls"]]
    assert not set(again) & set(singles)
    assert (await _get(http, again[0]))[0] == 200


async def test_image_link_expires_after_its_time(
    wire: WireFactory, http: aiohttp.ClientSession
) -> None:
    w = await wire(
        "midjourney-proxy-open", speed="realtime",
        quirks=ServerQuirks(image_link_ttl=60.0, image_link_status=403),
    )
    grid = await w.finished(await w.imagine("fox"))
    assert (await _get(http, grid["imageUrl"]))[0] == 200
    assert (await w.task(grid["id"]))["imageUrl"] == grid["imageUrl"]  # still valid: kept
    w.emu.advance(60.0)
    assert (await _get(http, grid["imageUrl"]))[0] == 403
    fresh = (await w.task(grid["id"]))["imageUrl"]
    assert fresh != grid["imageUrl"]
    assert (await _get(http, fresh))[0] == 200


async def test_relay_keeps_handing_out_its_stored_link(
    wire: WireFactory, http: aiohttp.ClientSession
) -> None:
    w = await wire("zhongzhuan", relay_refresh_interval=0,
                   quirks=ServerQuirks(image_link_uses=1))
    grid = await w.finished(await w.imagine("fox"))
    assert (await _get(http, grid["imageUrl"]))[0] == 200
    again = await w.task(grid["id"])
    assert again["imageUrl"] == grid["imageUrl"]  # no new link from a relay
    assert (await _get(http, again["imageUrl"]))[0] == 404


async def test_relay_image_link_on_a_wrong_host_while_its_own_route_serves(
    wire: WireFactory, http: aiohttp.ClientSession
) -> None:
    w = await wire("new-api", relay_refresh_interval=0,
                   quirks=ServerQuirks(relay_image_host="http://localhost:3000"))
    tid = await w.imagine("fox")
    task = await w.finished(tid)
    assert task["imageUrl"] == f"http://localhost:3000/mj/image/{tid}"
    status, data = await _get(http, f"{w.emu.base_url}/mj/image/{tid}")
    assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"


async def test_relay_image_route_streams_its_stored_link_even_once_expired(
    wire: WireFactory, http: aiohttp.ClientSession
) -> None:
    w = await wire("new-api", relay_refresh_interval=0, quirks=ServerQuirks(image_link_uses=1))
    tid = await w.imagine("fox")
    task = await w.finished(tid)
    assert task["imageUrl"] == f"{w.emu.base_url}/mj/image/{tid}"
    assert (await _get(http, task["imageUrl"]))[0] == 200
    # The route re-serves the same stored upstream link: it cannot cure an expired one.
    assert (await _get(http, task["imageUrl"]))[0] == 404
    assert (await w.task(tid))["imageUrl"] == task["imageUrl"]
