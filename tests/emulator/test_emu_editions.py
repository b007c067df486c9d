"""The open novicezk edition (v2.6.3) beside the closed plus edition, on the raw wire."""

from __future__ import annotations

import pytest
from emu_support import PIXEL, EmuFactory, WireFactory

from midjourney_async.testing import PROFILES, ServerQuirks

OPEN = "midjourney-proxy-open"
PLUS = "midjourney-proxy-plus"


async def test_open_edition_task_json_has_no_buttons(wire: WireFactory) -> None:
    w = await wire(OPEN)
    tid = await w.imagine("fox")
    task = await w.finished(tid)
    assert task["status"] == "SUCCESS"
    assert "buttons" not in task
    listed = (await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": [tid]})).json()
    assert [t["id"] for t in listed] == [tid]
    assert "buttons" not in listed[0]
    plus = await wire(PLUS)
    assert (await plus.finished(await plus.imagine("fox")))["buttons"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/mj/submit/action"),
        ("POST", "/mj/submit/modal"),
        ("POST", "/mj/submit/shorten"),
        ("POST", "/mj/submit/upload-discord-images"),
        ("POST", "/mj/submit/video"),
        ("POST", "/mj/submit/edits"),
        ("POST", "/mj/insight-face/swap"),
        ("GET", "/mj/task/1234567890123456/image-seed"),
    ],
)
async def test_open_edition_answers_spring_404_for_plus_routes(
    wire: WireFactory, method: str, path: str
) -> None:
    w = await wire(OPEN)
    r = await w.call(method, path, json_body={"prompt": "fox"} if method == "POST" else None)
    assert r.status == 404
    body = r.json()
    assert set(body) == {"timestamp", "status", "error", "path"}
    assert (body["status"], body["error"], body["path"]) == (404, "Not Found", path)
    assert not w.emu.tasks


async def test_open_edition_serves_its_own_routes(wire: WireFactory) -> None:
    w = await wire(OPEN)
    grid = await w.finished(await w.imagine("fox"))
    assert (await w.submit("describe", base64=PIXEL)).json()["code"] == 1
    assert (await w.submit("blend", base64Array=[PIXEL, PIXEL])).json()["code"] == 1
    for path in ("/mj/task/list", "/mj/task/queue"):
        r = await w.call("GET", path)
        assert r.status == 200 and isinstance(r.json(), list), path
    # describe takes base64 only: a link is not an image here.
    refused = (await w.submit("describe", link="http://127.0.0.1:9/x.png")).json()
    assert (refused["code"], refused["description"]) == (4, "base64不能为空")
    assert (await w.submit("simple-change", content=f"{grid['id']} V1")).json()["code"] == 1


async def test_open_edition_changes_are_described_as_up_commands(wire: WireFactory) -> None:
    w = await wire(OPEN)
    grid = await w.finished(await w.imagine("fox"))
    gid = grid["id"]
    answers = [
        (await w.submit("change", taskId=gid, action="UPSCALE", index=2)).json(),
        (await w.submit("change", taskId=gid, action="VARIATION", index=3)).json(),
        (await w.submit("change", taskId=gid, action="REROLL")).json(),  # no index needed
    ]
    assert [a["code"] for a in answers] == [1, 1, 1]
    await w.emu.complete_all()
    tasks = [await w.task(a["result"]) for a in answers]
    assert [t["description"] for t in tasks] == [
        f"/up {gid} U2", f"/up {gid} V3", f"/up {gid} R"
    ]
    assert [t["action"] for t in tasks] == ["UPSCALE", "VARIATION", "REROLL"]
    assert all(t["status"] == "SUCCESS" and t["imageUrl"] for t in tasks)


async def test_open_edition_refuses_any_change_on_an_upscale(wire: WireFactory) -> None:
    w = await wire(OPEN)
    grid = await w.finished(await w.imagine("fox"))
    up = (await w.submit("change", taskId=grid["id"], action="UPSCALE", index=1)).json()
    await w.emu.complete_all()
    before = len(w.emu.tasks)
    for body in (
        {"taskId": up["result"], "action": "VARIATION", "index": 1},
        {"taskId": up["result"], "action": "UPSCALE", "index": 2},
        {"taskId": up["result"], "action": "REROLL"},
    ):
        r = await w.submit("change", **body)
        assert r.status == 200
        assert r.json() == {
            "code": 4, "description": "关联任务不允许执行变化", "result": None, "properties": {}
        }
    simple = (await w.submit("simple-change", content=f"{up['result']} U1")).json()
    assert (simple["code"], simple["description"]) == (4, "关联任务不允许执行变化")
    assert len(w.emu.tasks) == before


async def test_profile_names_alias_and_client_preset(emulators: EmuFactory) -> None:
    legacy = await emulators("midjourney-proxy")
    assert legacy.profile == "midjourney-proxy"  # an alias stays as given
    assert legacy.profile_info.name == OPEN  # the edition most servers run
    open_ = await emulators(OPEN)
    assert (open_.profile, open_.profile_info.edition) == (OPEN, "open")
    # Both editions speak to the client's midjourney-proxy preset.
    assert {legacy.provider, open_.provider} == {"midjourney-proxy"}
    assert PROFILES["trueai"].client_provider == "trueai"
    with pytest.raises(ValueError, match="midjourney-proxy-open"):
        await emulators("novicezk")


async def test_save_race_refuses_a_change_right_after_success(wire: WireFactory) -> None:
    # Real-time speed so the window (nominal seconds) is not crossed by the test's own pace.
    w = await wire(OPEN, speed="realtime", quirks=ServerQuirks(save_race_window=2.0))
    grid = await w.finished(await w.imagine("fox"))
    assert grid["status"] == "SUCCESS"
    before = len(w.emu.tasks)
    raced = (await w.submit("change", taskId=grid["id"], action="UPSCALE", index=1)).json()
    assert raced == {"code": 4, "description": "关联任务状态错误", "result": None, "properties": {}}
    w.emu.quirks.save_race_code = 3
    raced = (await w.submit("simple-change", content=f"{grid['id']} V1")).json()
    assert (raced["code"], raced["description"]) == (3, "关联任务不存在或已失效")
    assert len(w.emu.tasks) == before
    w.emu.advance(2.0)
    later = (await w.submit("change", taskId=grid["id"], action="UPSCALE", index=1)).json()
    assert later["code"] == 1


async def test_save_race_also_hits_plus_edition_buttons(wire: WireFactory) -> None:
    w = await wire(PLUS, speed="realtime", quirks=ServerQuirks(save_race_window=2.0))
    grid = await w.finished(await w.imagine("fox"))
    u1 = next(b["customId"] for b in grid["buttons"] if b["label"] == "U1")
    raced = (await w.press(grid["id"], u1)).json()
    assert (raced["code"], raced["description"]) == (4, "关联任务状态错误")
    w.emu.advance(2.0)
    assert (await w.press(grid["id"], u1)).json()["code"] == 1
