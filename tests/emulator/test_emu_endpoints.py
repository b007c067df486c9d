"""Every proxy endpoint's realistic output and validation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from emu_support import PIXEL, PROXY_PROFILES, Wire, WireFactory, button

HASH = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


async def _upscale(w: Wire, prompt: str = "fox", label: str = "U1") -> dict[str, Any]:
    grid = await w.finished(await w.imagine(prompt))
    r = await w.press(str(grid["id"]), button(grid, label))
    return await w.finished(str(r.json()["result"]))


async def test_grid_buttons_follow_the_custom_id_grammar(wire: WireFactory) -> None:
    w = await wire("trueai")
    grid = await w.finished(await w.imagine("fox --ar 3:2"))
    found = re.search(HASH, grid["buttons"][0]["customId"])
    assert found is not None
    h = found.group(0)
    assert grid["properties"]["messageHash"] == h
    assert [(b["label"], b["emoji"], b["customId"]) for b in grid["buttons"]] == [
        *[(f"U{i}", "", f"MJ::JOB::upsample::{i}::{h}") for i in range(1, 5)],
        ("", "🔄", f"MJ::JOB::reroll::0::{h}::SOLO"),
        *[(f"V{i}", "", f"MJ::JOB::variation::{i}::{h}") for i in range(1, 5)],
    ]
    assert all((b["type"], b["style"]) == (2, 2) for b in grid["buttons"])
    assert grid["properties"]["finalPrompt"] == "fox --ar 3:2 --v 6.1"


async def test_upscale_buttons_and_click_actions(wire: WireFactory) -> None:
    w = await wire("trueai")
    up = await _upscale(w)
    assert up["action"] == "UPSCALE"
    h = up["properties"]["messageHash"]
    ids = {b["label"] or b["emoji"]: b["customId"] for b in up["buttons"]}
    assert ids == {
        "Upscale (Subtle)": f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO",
        "Upscale (Creative)": f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO",
        "Vary (Subtle)": f"MJ::JOB::low_variation::1::{h}::SOLO",
        "Vary (Strong)": f"MJ::JOB::high_variation::1::{h}::SOLO",
        "Vary (Region)": f"MJ::Inpaint::1::{h}::SOLO",
        "Zoom Out 2x": f"MJ::Outpaint::50::1::{h}::SOLO",
        "Zoom Out 1.5x": f"MJ::Outpaint::75::1::{h}::SOLO",
        "Custom Zoom": f"MJ::CustomZoom::{h}",
        "⬅️": f"MJ::JOB::pan_left::1::{h}::SOLO",
        "➡️": f"MJ::JOB::pan_right::1::{h}::SOLO",
        "⬆️": f"MJ::JOB::pan_up::1::{h}::SOLO",
        "⬇️": f"MJ::JOB::pan_down::1::{h}::SOLO",
    }
    expected = {
        "Upscale (Subtle)": "UPSCALE_HD",
        "Vary (Subtle)": "VARIATION",
        "Vary (Strong)": "VARIATION",
        "Zoom Out 2x": "ZOOM",
        "⬇️": "PAN",
    }
    for key, action in expected.items():
        r = await w.press(up["id"], ids[key])
        assert r.json()["code"] == 1, key
        child = await w.finished(str(r.json()["result"]))
        assert (child["action"], child["status"]) == (action, "SUCCESS"), key
        assert child["parentId"] == up["id"]
    zoom = w.emu.tasks[str((await w.press(up["id"], ids["Zoom Out 2x"])).json()["result"])]
    assert zoom.final_prompt.endswith("--zoom 2")


async def test_reroll_takes_the_parent_action(wire: WireFactory) -> None:
    w = await wire("trueai")
    blend = (await w.submit("blend", base64Array=[PIXEL, PIXEL])).json()["result"]
    grid = await w.finished(blend)
    reroll = await w.finished((await w.press(blend, button(grid, emoji="🔄"))).json()["result"])
    assert reroll["action"] == "BLEND"
    v = await w.finished((await w.press(blend, button(grid, "V3"))).json()["result"])
    assert v["action"] == "VARIATION"
    assert len(v["buttons"]) == 9


async def test_java_labels_hd_upscale_as_upscale(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    up = await _upscale(w, label="U4")
    r = await w.press(up["id"], button(up, "Upscale (Creative)"))
    assert (await w.finished(r.json()["result"]))["action"] == "UPSCALE"


@pytest.mark.parametrize("profile", ["midjourney-proxy-plus", "trueai"])
async def test_action_validation(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, speed="realtime")
    running = await w.imagine("fox")
    missing = (await w.press("1111111111111111", "MJ::JOB::upsample::1::x")).json()
    not_done = (await w.press(running, "MJ::JOB::upsample::1::x")).json()
    no_id = (await w.submit("action", customId="MJ::JOB::upsample::1::x")).json()
    assert (missing["code"], not_done["code"], no_id["code"]) == (3, 4, 4)
    await w.emu.complete_all()
    wrong = (await w.press(running, "MJ::JOB::upsample::1::not-this-hash")).json()
    assert wrong["code"] == 4


@pytest.mark.parametrize("profile", PROXY_PROFILES)
async def test_blank_prompt_and_bad_images_are_refused(wire: WireFactory, profile: str) -> None:
    w = await wire(profile)
    assert (await w.submit("imagine", prompt="")).json()["code"] == 4
    assert (await w.submit("imagine")).json()["code"] == 4
    assert (await w.submit("imagine", prompt="x", base64Array=["%%%"])).json()["code"] == 4
    ok = await w.submit("imagine", prompt="x", base64Array=[PIXEL])
    assert ok.json()["code"] == 1
    assert not any(t.prompt == "" for t in w.emu.tasks.values())


async def test_blend(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    assert (await w.submit("blend", base64Array=[PIXEL])).json()["code"] == 4
    assert (await w.submit("blend", base64Array=[PIXEL] * 6)).json()["code"] == 4
    wide = await w.submit("blend", base64Array=[PIXEL] * 2, dimensions="WIDE")
    assert wide.json()["code"] == 4
    r = await w.submit("blend", base64Array=[PIXEL] * 3, dimensions="LANDSCAPE")
    tid = r.json()["result"]
    task = await w.finished(tid)
    assert (task["action"], task["status"], len(task["buttons"])) == ("BLEND", "SUCCESS", 9)
    assert w.emu.tasks[tid].size == (512, 340)


async def test_describe(wire: WireFactory) -> None:
    w = await wire("trueai")
    assert (await w.submit("describe")).json()["code"] == 4
    tid = (await w.submit("describe", base64=PIXEL)).json()["result"]
    task = await w.finished(tid)
    assert task["action"] == "DESCRIBE"
    lines = task["properties"]["finalPrompt"].split("\n\n")
    assert [ln[:3] for ln in lines] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert task["prompt"] == task["properties"]["finalPrompt"]
    assert (await w.call("GET", task["imageUrl"], auth=False)).status == 200
    assert [b["customId"] for b in task["buttons"]][:4] == [
        f"MJ::Job::PicReader::{i}" for i in range(1, 5)
    ]
    link = (await w.submit("describe", link="https://example.com/a.png")).json()
    assert link["code"] == 1
    # trueai turns PicReader into a MODAL imagine of the chosen prompt.
    modal = (await w.press(tid, "MJ::Job::PicReader::2")).json()
    assert modal["code"] == 21
    assert (await w.submit("modal", taskId=modal["result"])).json()["code"] == 1
    imagined = await w.finished(modal["result"])
    assert imagined["action"] == "IMAGINE"
    assert imagined["prompt"] == lines[1].split(" ", 1)[1]


async def test_java_pic_reader_imagines_directly(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = (await w.submit("describe", base64=PIXEL)).json()["result"]
    await w.finished(tid)
    r = (await w.press(tid, "MJ::Job::PicReader::1")).json()
    assert r["code"] == 1
    assert (await w.finished(r["result"]))["action"] == "IMAGINE"


async def test_shorten(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    prompt = "a very detailed red fox sitting in fresh powder snow at dawn --ar 3:2"
    task = await w.finished((await w.submit("shorten", prompt=prompt)).json()["result"])
    lines = task["properties"]["finalPrompt"].split("\n")
    assert len(lines) == 5 and lines[0].startswith("1️⃣")
    assert all(ln.endswith("--ar 3:2") for ln in lines)
    assert len(lines[4]) < len(lines[0])
    assert task["action"] == "SHORTEN"


async def test_change_and_simple_change(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox")
    await w.finished(tid)
    up = (await w.submit("change", taskId=tid, action="UPSCALE", index=2)).json()
    task = await w.finished(up["result"])
    assert (task["action"], task["description"]) == ("UPSCALE", f"/up {tid} U2")
    assert w.emu.tasks[up["result"]].tile_index == 2
    assert (await w.submit("change", taskId=tid, action="UPSCALE", index=7)).json()["code"] == 4
    assert (await w.submit("change", taskId=tid, action="ZOOM", index=1)).json()["code"] == 4
    assert (await w.submit("change", taskId="9", action="REROLL")).json()["code"] == 3
    # An upscale is no grid: U/V/R by index make no sense on it.
    assert (await w.submit("change", taskId=up["result"], action="VARIATION",
                           index=1)).json()["code"] == 4
    v = (await w.submit("simple-change", content=f"{tid} V1")).json()
    assert (await w.finished(v["result"]))["action"] == "VARIATION"
    r = (await w.submit("simple-change", content=f"{tid} R")).json()
    assert (await w.finished(r["result"]))["action"] == "REROLL"
    assert (await w.submit("simple-change", content=f"{tid} U9")).json()["code"] == 4


async def test_upload_discord_images_returns_served_urls(wire: WireFactory) -> None:
    w = await wire("trueai")
    r = (await w.submit("upload-discord-images", base64Array=[PIXEL, PIXEL])).json()
    assert r["code"] == 1
    assert len(r["result"]) == 2 and r["result"][0] != r["result"][1]
    assert not w.emu.tasks
    got = await w.call("GET", r["result"][0], auth=False)
    assert got.headers["Content-Type"] == "image/png"
    assert got.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert (await w.submit("upload-discord-images", base64Array=[])).json()["code"] == 4


async def test_video_has_four_mp4s(wire: WireFactory) -> None:
    w = await wire("trueai")
    assert (await w.submit("video")).json()["code"] == 4
    tid = (await w.submit("video", prompt="waves", image=PIXEL)).json()["result"]
    task = await w.finished(tid)
    assert task["action"] == "VIDEO"
    assert len(task["videoUrls"]) == 4
    clip = await w.call("GET", task["videoUrls"][0]["url"], auth=False)
    assert clip.headers["Content-Type"] == "video/mp4"
    assert clip.body[4:8] == b"ftyp"
    assert task["imageUrl"]


async def test_edits_has_four_images(wire: WireFactory) -> None:
    w = await wire("openai-hk")
    assert (await w.submit("edits", prompt="white background")).status == 400
    tid = str((await w.submit("edits", prompt="white background", image=PIXEL)).json()["result"])
    task = await w.finished(tid)
    assert (task["action"], task["buttons"]) == ("EDITS", [])
    trueai = await wire("trueai")
    tid = (await trueai.submit("edits", prompt="white background", image=PIXEL)).json()["result"]
    task = await trueai.finished(tid)
    assert task["action"] == "EDIT"
    assert len(task["imageUrls"]) == 4


async def test_swap_face(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    assert (await w.call("POST", "/mj/insight-face/swap",
                         json_body={"sourceBase64": PIXEL})).json()["code"] == 4
    r = await w.call("POST", "/mj/insight-face/swap",
                     json_body={"sourceBase64": PIXEL, "targetBase64": PIXEL})
    task = await w.finished(r.json()["result"])
    assert (task["action"], task["status"]) == ("SWAP_FACE", "SUCCESS")
    assert (await w.call("GET", task["imageUrl"], auth=False)).body[:4] == b"\x89PNG"


@pytest.mark.parametrize("profile", ["midjourney-proxy-plus", "trueai", "new-api"])
async def test_list_by_condition_shuffles_and_drops(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, concurrency=None)
    ids = [await w.imagine(f"p{i}") for i in range(12)]
    await w.emu.complete_all()
    asked = [*ids, "0000000000000000", ids[0]]
    r = await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": asked})
    got = [t["id"] for t in r.json()]
    assert sorted(got) == sorted(ids)
    assert got != ids
    bodies: tuple[dict[str, Any], ...] = ({"ids": []}, {}, {"ids": None})
    for body in bodies:
        assert (await w.call("POST", "/mj/task/list-by-condition", json_body=body)).json() == []
    assert w.emu.stats.list_ids == len(asked)


async def test_trueai_list_by_ids_alias_and_task_list(wire: WireFactory) -> None:
    w = await wire("trueai")
    tid = await w.imagine("fox")
    r = await w.call("POST", "/mj/task/list-by-ids", json_body={"ids": [tid]})
    assert [t["id"] for t in r.json()] == [tid]
    assert [t["id"] for t in (await w.call("GET", "/mj/task/list")).json()] == [tid]


async def test_image_seed(wire: WireFactory) -> None:
    w = await wire("trueai", speed="realtime")
    tid = await w.imagine("fox")
    early = await w.call("GET", f"/mj/task/{tid}/image-seed")
    assert (early.status, early.json()["code"]) == (400, 4)
    await w.emu.complete_all()
    seed = (await w.call("GET", f"/mj/task/{tid}/image-seed")).json()
    assert seed["code"] == 1 and re.fullmatch(r"\d{10}", seed["result"])
    unknown = await w.call("GET", "/mj/task/404/image-seed")
    assert (unknown.status, unknown.json()["code"]) == (404, 3)


async def test_state_and_bookmark(wire: WireFactory) -> None:
    w = await wire("trueai")
    tid = await w.imagine("fox", state="order-17")
    assert (await w.finished(tid))["state"] == "order-17"
    w.emu.tasks[tid].buttons.append(type(w.emu.tasks[tid].buttons[0])("MJ::BOOKMARK::x", "", "❤️"))
    liked = (await w.press(tid, "MJ::BOOKMARK::x")).json()
    assert (liked["code"], liked["result"]) == (1, tid)


async def test_unknown_routes(wire: WireFactory) -> None:
    java = await wire("midjourney-proxy-plus")
    assert (await java.call("GET", "/mj/nope")).json()["status"] == 404
    relay = await wire("new-api")
    r = await relay.call("POST", "/v1/chat/completions")
    assert r.status == 404 and "Invalid URL" in r.json()["error"]["message"]
    assert (await java.call("POST", "/mj/task/1/cancel")).status == 404  # trueai only
