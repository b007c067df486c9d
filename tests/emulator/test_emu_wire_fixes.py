"""Wire details per family found by the emulator audit, checked with raw aiohttp requests.

One block per finding: image links for edits/video, remix windows, new-api's one-hour
timeout, relays that keep imageUrls, trueai PicReader "all", route sets per family, new-api
code 30, the Custom Zoom prompt check, trueai's 403 and Java's base64-only describe.
"""

from __future__ import annotations

from typing import Any

import pytest
from emu_support import PIXEL, RELAYS, Wire, WireFactory, button

from midjourney_async.testing import FaultRule
from midjourney_async.testing._main import build_parser

LINK = "https://example.com/a.png"


async def _upscale(w: Wire, prompt: str = "lighthouse --ar 3:2") -> dict[str, Any]:
    grid = await w.finished(await w.imagine(prompt))
    r = await w.press(grid["id"], button(grid, "U1"))
    return await w.finished(str(r.json()["result"]))


# -- 1. edits and video take an http(s) image link ----------------------------------------


@pytest.mark.parametrize("profile", ["trueai", "new-api", "openai-hk"])
async def test_edits_and_video_accept_image_links(wire: WireFactory, profile: str) -> None:
    w = await wire(profile)
    edits = await w.submit("edits", prompt="white background", image=LINK)
    video = await w.submit("video", prompt="waves", image="http://example.com/frame.jpg")
    assert edits.status == 200 and edits.json()["code"] == 1, edits.text
    assert video.status == 200 and video.json()["code"] == 1, video.text
    edits_task = w.emu.tasks[str(edits.json()["result"])]
    video_task = w.emu.tasks[str(video.json()["result"])]
    assert edits_task.action in ("EDIT", "EDITS")
    assert video_task.extra["first_frame"] == "http://example.com/frame.jpg"
    await w.emu.complete_all()
    assert (edits_task.status, video_task.status) == ("SUCCESS", "SUCCESS")
    assert video_task.image_url == "http://example.com/frame.jpg"
    # Not a link and not base64: still refused.
    assert (await w.submit("edits", prompt="x", image="ftp://a/b.png")).json()["code"] == 4
    assert (await w.submit("video", prompt="x", image="%%%")).json()["code"] == 4


async def test_same_link_edits_the_same_picture(wire: WireFactory) -> None:
    w = await wire("trueai")
    a = (await w.submit("edits", prompt="red", image=LINK)).json()["result"]
    b = (await w.submit("edits", prompt="red", image=LINK)).json()["result"]
    other = (await w.submit("edits", prompt="red", image=LINK + "?x")).json()["result"]
    assert w.emu.tasks[a].image_key == w.emu.tasks[b].image_key
    assert w.emu.tasks[a].image_key != w.emu.tasks[other].image_key


# -- 2. account remix: Pan/Variation/Reroll open a MODAL window ----------------------------


async def test_trueai_account_remix_opens_modal_only_when_asked(wire: WireFactory) -> None:
    w = await wire("trueai", account_remix=True)
    grid = await w.finished(await w.imagine("fox"))
    plain = (await w.press(grid["id"], button(grid, "V1"))).json()
    assert plain["code"] == 1  # no enableRemix: the job runs with the old prompt
    assert w.emu.tasks[plain["result"]].status != "MODAL"
    for custom_id in (button(grid, "V2"), button(grid, emoji="🔄")):
        answer = (await w.press(grid["id"], custom_id, enableRemix=True)).json()
        assert answer["code"] == 21, custom_id
        assert answer["properties"]["remix"] is True
        assert w.emu.tasks[answer["result"]].status == "MODAL"
    up = await w.finished(str((await w.press(grid["id"], button(grid, "U1"))).json()["result"]))
    assert up["status"] == "SUCCESS"  # upscales never open a window
    pan = (await w.press(up["id"], button(up, emoji="⬅️"), enableRemix=True)).json()
    assert pan["code"] == 21
    confirmed = (await w.submit("modal", taskId=pan["result"], prompt="fox, wider")).json()
    assert (confirmed["code"], confirmed["result"]) == (1, pan["result"])
    done = await w.finished(pan["result"])
    assert (done["status"], done["action"], done["prompt"]) == ("SUCCESS", "PAN", "fox, wider")


async def test_trueai_remix_flag_on_account_without_remix_is_code_4(wire: WireFactory) -> None:
    w = await wire("trueai")
    grid = await w.finished(await w.imagine("fox"))
    assert (await w.press(grid["id"], button(grid, "V2"))).json()["code"] == 1
    before = len(w.emu.tasks)
    r = await w.press(grid["id"], button(grid, "V3"), enableRemix=True)
    assert r.status == 200
    assert r.json() == {
        "code": 4, "description": "当前账号不支持 remix，请开启 remix 功能",
        "result": None, "properties": {},
    }
    assert len(w.emu.tasks) == before  # nothing was created


@pytest.mark.parametrize("profile", RELAYS)
async def test_relay_remix_window_answers_code_1(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, account_remix=True, relay_refresh_interval=0)
    grid = await w.finished(await w.imagine("fox"))
    answer = await w.press(grid["id"], button(grid, "V1"), enableRemix=True)
    assert answer.status == 200
    assert answer.json()["code"] == 1  # new-api rewrites 21 to 1
    tid = str(answer.json()["result"])
    assert w.emu.tasks[tid].status == "MODAL"
    assert (await w.task(tid))["status"] == "MODAL"  # only the status shows the window
    assert (await w.submit("modal", taskId=tid, prompt="fox, red")).json()["code"] == 1
    await w.emu.complete_all()
    assert w.emu.tasks[tid].status == "SUCCESS"
    # Inpaint and Custom Zoom keep their 21.
    up = await _upscale(w)
    assert (await w.press(up["id"], button(up, "Custom Zoom"))).json()["code"] == 21


async def test_relay_remix_flag_without_account_remix_is_refused(wire: WireFactory) -> None:
    w = await wire("new-api", relay_refresh_interval=0)
    grid = await w.finished(await w.imagine("fox"))
    plain = (await w.press(grid["id"], button(grid, "V1"))).json()
    assert w.emu.tasks[str(plain["result"])].status != "MODAL"
    r = await w.press(grid["id"], button(grid, emoji="🔄"), enableRemix=True)
    assert r.status == 400
    assert r.json() == {
        "code": 4, "description": "当前账号不支持 remix，请开启 remix 功能",
        "type": "upstream_error",
    }


def test_cli_has_account_remix_flag() -> None:
    assert build_parser().parse_args(["--account-remix"]).account_remix is True
    assert build_parser().parse_args([]).account_remix is False


# -- 3. new-api's one-hour timeout --------------------------------------------------------


@pytest.mark.parametrize("interval", [0.0, float("inf")])
async def test_relay_times_out_unfinished_tasks_after_an_hour(
    wire: WireFactory, interval: float
) -> None:
    w = await wire("new-api", relay_refresh_interval=interval)
    hung = await w.imagine("stuck --emu-hang")
    done = await w.imagine("fine")
    await w.emu.complete_all()
    w.emu.advance(3500)  # nominal seconds: not an hour yet
    w.emu.refresh_relay()
    early = await w.task(hung)
    assert (early["status"], early["progress"]) == ("IN_PROGRESS", "46%")
    w.emu.advance(200)
    w.emu.refresh_relay()
    late = await w.task(hung)
    assert late["status"] == "FAILURE"
    assert late["failReason"] == "上游任务超时（超过1小时）"
    assert late["progress"] == "100%"
    assert (await w.task(done))["status"] == "SUCCESS"
    listed = (await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": [hung]}))
    assert listed.json()[0]["status"] == "FAILURE"
    # Only the relay gave up: the upstream task still hangs.
    assert w.emu.tasks[hung].status == "IN_PROGRESS"


async def test_relay_timeout_scales_with_speed(wire: WireFactory) -> None:
    w = await wire("pro365", speed="demo", relay_refresh_interval=0)
    tid = await w.imagine("stuck --emu-hang")
    w.emu.advance(3599)
    assert (await w.task(tid))["status"] != "FAILURE"
    w.emu.advance(2)
    assert (await w.task(tid))["status"] == "FAILURE"


async def test_non_relays_have_no_hour_limit(wire: WireFactory) -> None:
    w = await wire("trueai")
    tid = await w.imagine("stuck --emu-hang")
    await w.emu.complete_all()
    w.emu.advance(7200)
    assert (await w.task(tid))["status"] == "IN_PROGRESS"


# -- 4. openai-hk and zhongzhuan keep imageUrls and the upstream imageUrl -----------------


@pytest.mark.parametrize("profile", ["openai-hk", "zhongzhuan"])
async def test_relays_that_keep_image_urls(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, relay_refresh_interval=0)
    tid = str((await w.submit("edits", prompt="white background", image=PIXEL)).json()["result"])
    task = await w.finished(tid)
    assert task["action"] == "EDITS"
    assert len(task["imageUrls"]) == 4
    assert all(set(u) == {"url"} for u in task["imageUrls"])
    assert task["imageUrl"] == w.emu.tasks[tid].image_url
    assert "/mj/image/" not in task["imageUrl"]
    assert (await w.call("GET", task["imageUrls"][0]["url"], auth=False)).status == 200
    vid = str((await w.submit("video", prompt="waves", image=PIXEL)).json()["result"])
    video = await w.finished(vid)
    assert video["imageUrls"] is None
    assert len(video["videoUrls"]) == 4
    assert "/mj/image/" not in video["imageUrl"]


@pytest.mark.parametrize("profile", ["new-api", "pro365"])
async def test_plain_relays_rewrite_and_drop(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, relay_refresh_interval=0)
    tid = str((await w.submit("edits", prompt="white background", image=PIXEL)).json()["result"])
    task = await w.finished(tid)
    assert "imageUrls" not in task
    assert task["imageUrl"] == f"{w.emu.base_url}/mj/image/{tid}"


async def test_keeping_relay_row_before_first_refresh(wire: WireFactory) -> None:
    w = await wire("openai-hk", relay_refresh_interval=float("inf"))
    tid = str((await w.submit("edits", prompt="white background", image=PIXEL)).json()["result"])
    row = await w.task(tid)
    assert (row["status"], row["imageUrl"], row["imageUrls"]) == ("", "", None)


# -- 5. trueai PicReader ------------------------------------------------------------------


async def test_trueai_pic_reader_all_imagines_four_prompts(wire: WireFactory) -> None:
    w = await wire("trueai")
    described = await w.finished((await w.submit("describe", base64=PIXEL)).json()["result"])
    assert button(described, prefix="MJ::Job::PicReader::all") == "MJ::Job::PicReader::all"
    answer = (await w.press(described["id"], "MJ::Job::PicReader::all")).json()
    assert answer["code"] == 1
    ids = answer["result"].split(",")
    assert len(ids) == 4 and len(set(ids)) == 4
    lines = described["properties"]["finalPrompt"].split("\n\n")
    for tid, line in zip(ids, lines, strict=True):
        task = await w.finished(tid)
        assert (task["action"], task["status"]) == ("IMAGINE", "SUCCESS")
        assert task["prompt"] == line.split(" ", 1)[1]
    one = (await w.press(described["id"], "MJ::Job::PicReader::3")).json()
    assert one["code"] == 21
    assert w.emu.tasks[one["result"]].status == "MODAL"


async def test_trueai_pic_reader_all_when_queue_is_full(wire: WireFactory) -> None:
    w = await wire("trueai")
    described = await w.finished((await w.submit("describe", base64=PIXEL)).json()["result"])
    w.emu.concurrency, w.emu.queue_size = 1, 1
    await w.imagine("busy --emu-hang")
    answer = (await w.press(described["id"], "MJ::Job::PicReader::all")).json()
    assert answer["code"] == 22  # one queued; the rest did not fit
    assert len(answer["result"].split(",")) == 1
    assert (await w.press(described["id"], "MJ::Job::PicReader::all")).json()["code"] == 9


# -- 6. route sets per family -------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["video", "edits", "upload-discord-images"])
async def test_java_lacks_trueai_and_relay_endpoints(wire: WireFactory, endpoint: str) -> None:
    w = await wire("midjourney-proxy-plus")
    r = await w.submit(endpoint, prompt="x", image=PIXEL, base64Array=[PIXEL])
    assert r.status == 404
    body = r.json()
    assert (body["status"], body["error"], body["path"]) == (
        404, "Not Found", f"/mj/submit/{endpoint}"
    )
    assert not w.emu.tasks
    for profile in ("trueai", "new-api"):
        other = await wire(profile)
        assert (await other.submit(endpoint)).status != 404, profile


@pytest.mark.parametrize("endpoint", ["change", "simple-change"])
async def test_trueai_head_has_no_change_endpoints(wire: WireFactory, endpoint: str) -> None:
    w = await wire("trueai")
    tid = await w.imagine("fox")
    await w.emu.complete_all()
    r = await w.submit(endpoint, taskId=tid, action="UPSCALE", index=1, content=f"{tid} U1")
    assert (r.status, r.body) == (404, b"")
    assert len(w.emu.tasks) == 1
    for profile in ("midjourney-proxy-plus", "new-api"):
        other = await wire(profile)
        assert (await other.submit(endpoint)).status != 404, profile


# -- 7. new-api code 30 -------------------------------------------------------------------


@pytest.mark.parametrize("profile", RELAYS)
async def test_relay_429_is_code_30_upstream_error(wire: WireFactory, profile: str) -> None:
    w = await wire(profile)
    w.emu.faults.add(FaultRule("submit/imagine", "429", retry_after=3, times=1))
    r = await w.submit("imagine", prompt="fox")
    assert (r.status, r.headers["Retry-After"]) == (429, "3")
    body = r.json()
    assert set(body) == {"code", "description", "type"}
    assert (body["code"], body["type"]) == (30, "upstream_error")
    assert body["description"]
    w.emu.faults.add(FaultRule("submit/imagine", "429", message="满了", times=1))
    assert (await w.submit("imagine", prompt="fox")).json()["description"] == "满了"


# -- 8. Custom Zoom needs --zoom (1-2) and --ar -------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [None, "lighthouse --zoom 1.5", "lighthouse --ar 3:2", "lighthouse --ar 3:2 --zoom 2.5",
     "lighthouse --ar 3:2 --zoom 0.5"],
)
async def test_custom_zoom_prompt_needs_zoom_and_ar(wire: WireFactory, prompt: str | None) -> None:
    w = await wire("trueai")
    up = await _upscale(w)
    modal_id = (await w.press(up["id"], button(up, "Custom Zoom"))).json()["result"]
    body = {"taskId": modal_id} if prompt is None else {"taskId": modal_id, "prompt": prompt}
    refused = (await w.call("POST", "/mj/submit/modal", json_body=body)).json()
    assert refused["code"] == 4
    assert w.emu.tasks[modal_id].status == "MODAL"
    ok = await w.submit("modal", taskId=modal_id, prompt="lighthouse --ar 3:2 --zoom 2")
    assert ok.json()["code"] == 1


async def test_relay_custom_zoom_refusal_is_relay_shaped(wire: WireFactory) -> None:
    w = await wire("new-api")
    up = await _upscale(w)
    modal_id = str((await w.press(up["id"], button(up, "Custom Zoom"))).json()["result"])
    refused = await w.submit("modal", taskId=modal_id, prompt="lighthouse --zoom 1.5")
    assert refused.status == 400
    assert refused.json()["code"] == 4 and refused.json()["type"] == "upstream_error"
    ok = await w.submit("modal", taskId=modal_id, prompt="lighthouse --zoom 1.5 --aspect 1:1")
    assert (ok.status, ok.json()["code"]) == (200, 1)


# -- 9. trueai: wrong token is 403 "未登录" ------------------------------------------------


async def test_trueai_wrong_token_is_403_missing_is_401(wire: WireFactory) -> None:
    w = await wire("trueai", api_key="tok")
    for headers in ({"Authorization": "nope"}, {"Mj-Api-Secret": "nope"}):
        r = await w.call("GET", "/mj/task/1/fetch", auth=False, headers=headers)
        assert (r.status, r.text) == (403, "未登录"), headers
        assert r.headers["Content-Type"].startswith("text/plain")
    missing = await w.call("GET", "/mj/task/1/fetch", auth=False)
    assert (missing.status, missing.text) == (401, "Authorization header missing.")
    assert w.emu.stats.auth_failures == 3


# -- 10. Java describe takes base64 only --------------------------------------------------


async def test_java_describe_ignores_link(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    r = (await w.submit("describe", link=LINK)).json()
    assert r["code"] == 4
    assert not w.emu.tasks
    assert (await w.submit("describe", base64=PIXEL, link=LINK)).json()["code"] == 1
    trueai = await wire("trueai")
    assert (await trueai.submit("describe", link=LINK)).json()["code"] == 1
