"""Each profile's wire quirks, checked with raw aiohttp requests."""

from __future__ import annotations

import re

import pytest
from emu_support import PIXEL, RELAYS, WireFactory, button

from midjourney_async.testing import PROFILE_ALIASES, PROFILES

# -- midjourney-proxy (Java) ------------------------------------------------------------


async def test_java_auth_is_mj_api_secret_and_401_has_empty_body(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", api_key="k1")
    missing = await w.call("POST", "/mj/submit/imagine", json_body={"prompt": "x"}, auth=False)
    wrong = await w.call(
        "POST", "/mj/submit/imagine", json_body={"prompt": "x"}, auth=False,
        headers={"mj-api-secret": "nope"},
    )
    assert (missing.status, missing.body) == (401, b"")
    assert (wrong.status, wrong.body) == (401, b"")
    assert w.emu.stats.auth_failures == 2
    assert not w.emu.tasks
    assert (await w.submit("imagine", prompt="x")).status == 200


async def test_java_result_is_a_16_digit_string(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    answer = (await w.submit("imagine", prompt="fox")).json()
    assert answer["code"] == 1
    assert answer["description"] == "提交成功"
    assert isinstance(answer["result"], str)
    assert re.fullmatch(r"\d{16}", answer["result"])
    assert answer["properties"]["discordInstanceId"] == w.emu.instance_id


async def test_java_unknown_fetch_is_200_with_empty_body(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    r = await w.fetch("1234567890123456")
    assert (r.status, r.body) == (200, b"")


async def test_java_queue_full_is_code_23(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime", concurrency=1, queue_size=1)
    codes = [(await w.submit("imagine", prompt=f"p{i}")).json() for i in range(3)]
    assert [c["code"] for c in codes] == [1, 22, 23]
    assert codes[1]["properties"]["numberOfQueues"] == 0
    assert codes[2]["result"] is None
    assert len(w.emu.tasks) == 2  # the refused submit created nothing


async def test_java_banned_prompt_is_code_24_with_word(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    answer = (await w.submit("imagine", prompt="a bannedword here")).json()
    assert answer["code"] == 24
    assert answer["properties"] == {"promptEn": "a bannedword here", "bannedWord": "bannedword"}
    assert not w.emu.tasks
    w.emu.rules.ban("forbidden")
    assert (await w.submit("imagine", prompt="FORBIDDEN fruit")).json()["code"] == 24


async def test_java_unparsable_json_is_spring_400(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    r = await w.call(
        "POST", "/mj/submit/imagine", data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status == 400
    assert r.json()["error"] == "Bad Request"


# -- trueai --------------------------------------------------------------------------------


async def test_trueai_reads_authorization_verbatim(wire: WireFactory) -> None:
    w = await wire("trueai", api_key="tok")
    body = {"prompt": "x"}
    ok = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                      headers={"Authorization": "tok"})
    bearer = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                          headers={"Authorization": "Bearer tok"})
    fallback = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                            headers={"Mj-Api-Secret": "tok"})
    shadowed = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                            headers={"Authorization": "other", "Mj-Api-Secret": "tok"})
    missing = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False)
    assert ok.status == 200 and fallback.status == 200
    # A token that matches no user is 403 "未登录"; no token at all is 401.
    for refused in (bearer, shadowed):
        assert refused.status == 403
        assert refused.text == "未登录"
        assert refused.headers["Content-Type"].startswith("text/plain")
    assert missing.status == 401
    assert missing.text == "Authorization header missing."
    assert missing.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("prefix", "mode"),
    [("/mj-fast/mj", "FAST"), ("/mj-relax/mj", "RELAX"), ("/mj-turbo/mj", "TURBO")],
)
async def test_trueai_mode_prefixes_are_recorded(
    wire: WireFactory, prefix: str, mode: str
) -> None:
    w = await wire("trueai")
    tid = str((await w.submit("imagine", prefix=prefix, prompt="cat")).json()["result"])
    assert w.emu.tasks[tid].mode == mode
    fetched = (await w.fetch(tid, prefix=prefix)).json()
    assert fetched["mode"] == mode


async def test_trueai_unknown_prefix_and_prompt_flag(wire: WireFactory) -> None:
    w = await wire("trueai")
    assert (await w.submit("imagine", prefix="/mj-slow/mj", prompt="cat")).status == 404
    tid = await w.imagine("cat --relax")
    assert w.emu.tasks[tid].mode == "RELAX"


async def test_trueai_unknown_fetch_is_204(wire: WireFactory) -> None:
    w = await wire("trueai")
    r = await w.fetch("1234567890123456")
    assert (r.status, r.body) == (204, b"")


async def test_trueai_queue_full_is_code_9_with_wording(wire: WireFactory) -> None:
    w = await wire("trueai", speed="realtime", concurrency=1, queue_size=0)
    assert (await w.submit("imagine", prompt="a")).json()["code"] == 1
    full = (await w.submit("imagine", prompt="b")).json()
    assert full["code"] == 9
    assert full["description"] == "提交失败，队列已满，请稍后重试"


async def test_trueai_custom_zoom_goes_through_modal(wire: WireFactory) -> None:
    w = await wire("trueai")
    grid = await w.finished(await w.imagine("lighthouse --ar 3:2"))
    up = await w.finished(str((await w.press(grid["id"], button(grid, "U1"))).json()["result"]))
    answer = (await w.press(up["id"], button(up, "Custom Zoom"))).json()
    assert answer["code"] == 21
    assert answer["description"] == "Waiting for window confirm"
    assert answer["properties"]["remix"] is True
    assert answer["properties"]["finalPrompt"].startswith("lighthouse --ar 3:2")
    modal_id = answer["result"]
    assert (await w.task(modal_id))["status"] == "MODAL"
    await w.emu.complete_all()
    assert (await w.task(modal_id))["status"] == "MODAL"  # waits for /submit/modal forever

    confirmed = (
        await w.submit("modal", taskId=modal_id, prompt="lighthouse --ar 3:2 --zoom 1.8")
    ).json()
    assert confirmed["code"] == 1
    assert confirmed["result"] == modal_id
    done = await w.finished(modal_id)
    assert done["status"] == "SUCCESS"
    assert done["action"] == "ZOOM"
    assert done["prompt"] == "lighthouse --ar 3:2 --zoom 1.8"


async def test_trueai_vary_region_modal_needs_a_mask(wire: WireFactory) -> None:
    w = await wire("trueai")
    grid = await w.finished(await w.imagine("garden"))
    up = await w.finished(str((await w.press(grid["id"], button(grid, "U2"))).json()["result"]))
    answer = (await w.press(up["id"], button(up, "Vary (Region)"))).json()
    assert answer["code"] == 21
    modal_id = answer["result"]
    no_mask = (await w.submit("modal", taskId=modal_id, prompt="a pond")).json()
    assert no_mask["code"] == 4
    ok = (await w.submit("modal", taskId=modal_id, prompt="a pond", maskBase64=PIXEL)).json()
    assert ok["code"] == 1
    done = await w.finished(modal_id)
    assert (done["status"], done["action"]) == ("SUCCESS", "VARIATION")


async def test_trueai_missing_parent_is_http_404_code_3(wire: WireFactory) -> None:
    w = await wire("trueai")
    action = await w.press("1111111111111111", "MJ::JOB::upsample::1::x")
    modal = await w.submit("modal", taskId="1111111111111111", prompt="x")
    for r in (action, modal):
        assert r.status == 404
        assert r.json()["code"] == 3


async def test_trueai_cancel_marks_failure_with_empty_200(wire: WireFactory) -> None:
    w = await wire("trueai", speed="realtime")
    tid = await w.imagine("slow one")
    r = await w.call("POST", f"/mj/task/{tid}/cancel")
    assert (r.status, r.body) == (200, b"")
    task = await w.task(tid)
    assert (task["status"], task["failReason"], task["progress"]) == ("FAILURE", "取消任务", "")
    assert w.emu.running == 0


async def test_trueai_grid_has_image_urls_lists(wire: WireFactory) -> None:
    w = await wire("trueai")
    task = await w.finished(await w.imagine("koi"))
    assert len(task["imageUrls"]) == 4
    assert all(set(u) == {"url"} for u in task["imageUrls"])
    assert task["videoUrls"] is None
    assert task["botType"] == "MID_JOURNEY"
    assert task["properties"]["discordChannelId"] == w.emu.instance_id


async def test_trueai_error_shape_fault(wire: WireFactory) -> None:
    from midjourney_async.testing import FaultRule

    w = await wire("trueai")
    w.emu.faults.add(FaultRule("submit/imagine", "trueai_error_shape", message="今日额度已用完"))
    r = await w.submit("imagine", prompt="x")
    body = r.json()
    assert r.status == 200
    assert body["success"] is False and body["code"] == -1
    assert body["message"] == "今日额度已用完"
    assert isinstance(body["timestamp"], int)
    assert not w.emu.tasks


# -- new-api family ---------------------------------------------------------------------


@pytest.mark.parametrize("profile", RELAYS)
async def test_relay_auth(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, api_key="sk-abc")
    body = {"prompt": "x"}
    bearer = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                          headers={"Authorization": "Bearer sk-abc"})
    no_sk = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                         headers={"Authorization": "Bearer abc"})
    secret = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                          headers={"mj-api-secret": "sk-abc"})
    bad = await w.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                       headers={"Authorization": "Bearer sk-zzz"})
    assert bearer.status == no_sk.status == secret.status == 200
    assert bad.status == 401
    assert set(bad.json()["error"]) == {"message", "type"}


async def test_openai_hk_accepts_mj_api_secret_next_to_authorization(wire: WireFactory) -> None:
    body = {"prompt": "x"}
    hdrs = {"Authorization": "Bearer wrong", "Mj-Api-Secret": "hk-1"}
    hk = await wire("openai-hk", api_key="hk-1")
    plain = await wire("new-api", api_key="hk-1")
    assert (await hk.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                          headers=hdrs)).status == 200
    assert (await plain.call("POST", "/mj/submit/imagine", json_body=body, auth=False,
                             headers=hdrs)).status == 401


@pytest.mark.parametrize(
    ("prefix", "mode"), [("/fast/mj", "FAST"), ("/relax/mj", "RELAX"), ("/whatever/mj", "FAST")]
)
async def test_relay_strips_any_mode_prefix(wire: WireFactory, prefix: str, mode: str) -> None:
    w = await wire("openai-hk")
    r = await w.submit("imagine", prefix=prefix, prompt="cat")
    assert r.status == 200
    tid = str(r.json()["result"])
    assert w.emu.tasks[tid].mode == mode
    assert (await w.fetch(tid, prefix=prefix)).status == 200


async def test_openai_hk_result_is_a_number(wire: WireFactory) -> None:
    hk = await wire("openai-hk")
    answer = (await hk.submit("imagine", prompt="cat")).json()
    assert isinstance(answer["result"], int)
    plain = await wire("new-api")
    assert isinstance((await plain.submit("imagine", prompt="cat")).json()["result"], str)


@pytest.mark.parametrize("profile", RELAYS)
async def test_relay_errors_are_http_400_upstream_error(wire: WireFactory, profile: str) -> None:
    w = await wire(profile)
    blank = await w.submit("imagine", prompt="  ")
    assert blank.status == 400
    assert blank.json() == {
        "code": 4, "description": "prompt_is_required", "type": "upstream_error"
    }
    missing = await w.fetch("1234567890123456")
    assert missing.status == 400
    assert missing.json() == {"code": 4, "description": "task_no_found", "type": "upstream_error"}
    banned = await w.submit("imagine", prompt="bannedword")
    assert banned.status == 400
    assert banned.json()["code"] == 24


@pytest.mark.parametrize(("profile", "code"), [("new-api", 23), ("openai-hk", 9)])
async def test_relay_queue_codes(wire: WireFactory, profile: str, code: int) -> None:
    w = await wire(profile, speed="realtime", concurrency=1, queue_size=1)
    first = (await w.submit("imagine", prompt="a")).json()
    queued = (await w.submit("imagine", prompt="b")).json()
    full = await w.submit("imagine", prompt="c")
    assert first["code"] == 1
    assert queued["code"] == 1  # new-api rewrites 22 to 1
    assert w.emu.tasks[str(queued["result"])].status == "NOT_START"
    assert full.status == 400
    assert full.json()["code"] == code
    assert full.json()["type"] == "upstream_error"


async def test_relay_status_is_empty_until_first_refresh(wire: WireFactory) -> None:
    w = await wire("new-api", relay_refresh_interval=float("inf"))
    tid = await w.imagine("fox")
    await w.emu.complete_all()
    before = await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": [tid]})
    w.emu.refresh_relay()
    # complete_all refreshes too; reset to prove that fetch serves the cached copy.
    tid2 = await w.imagine("wolf")
    await w.emu.wait_for(tid2)  # upstream finished, relay not refreshed yet
    stale = await w.task(tid2)
    assert (stale["status"], stale["progress"]) == ("", "")
    assert stale["startTime"] == 0 and stale["finishTime"] == 0
    assert stale["imageUrl"] == "" and stale["buttons"] is None
    assert before.json()[0]["status"] == "SUCCESS"
    w.emu.refresh_relay()
    fresh = await w.task(tid2)
    assert (fresh["status"], fresh["progress"]) == ("SUCCESS", "100%")
    assert fresh["imageUrl"] == f"{w.emu.base_url}/mj/image/{tid2}"


async def test_relay_refreshes_on_its_cadence(wire: WireFactory) -> None:
    w = await wire("new-api", speed="realtime", relay_refresh_interval=float("inf"))
    tid = await w.imagine("fox")
    assert (await w.task(tid))["status"] == ""
    w.emu.relay_refresh_interval = 15.0
    w.emu.advance(16.0)  # nominal seconds: the relay polled the upstream once meanwhile
    seen = await w.task(tid)
    assert seen["status"] == "IN_PROGRESS"
    assert seen["progress"] in ("0%", "15%", "31%")


async def test_relay_strips_notify_hook_and_uses_its_labels(wire: WireFactory) -> None:
    w = await wire("new-api")
    tid = await w.imagine("fox", notifyHook="http://127.0.0.1:9/hook")
    assert w.emu.tasks[tid].notify_hook is None
    grid = await w.finished(tid)
    assert set(grid) >= {"id", "action", "customId", "botType", "maskBase64", "videoUrl"}
    assert grid["properties"] == {"finalPrompt": "fox --v 6.1", "finalZhPrompt": ""}
    up = await w.finished(str((await w.press(tid, button(grid, "U1"))).json()["result"]))
    assert up["action"] == "UPSCALE"
    labels = {
        "Vary (Subtle)": "LOW_VARIATION",
        "Vary (Strong)": "HIGH_VARIATION",
        "Zoom Out 2x": "ZOOM",
        "Upscale (Creative)": "UPSCALE",
    }
    for label, action in labels.items():
        child = await w.finished(str((await w.press(up["id"], button(up, label))).json()["result"]))
        assert child["action"] == action, label
    pan = await w.finished(str((await w.press(up["id"], button(up, emoji="⬅️"))).json()["result"]))
    assert pan["action"] == "PAN"
    reroll = await w.finished(str((await w.press(tid, button(grid, emoji="🔄"))).json()["result"]))
    assert reroll["action"] == "REROLL"
    inpaint = await w.press(up["id"], button(up, "Vary (Region)"))
    assert inpaint.status == 200 and inpaint.json()["code"] == 21  # 21 survives for Inpaint
    assert (await w.task(str(inpaint.json()["result"])))["action"] == "INPAINT"


@pytest.mark.parametrize(
    "custom_id",
    ["MJ::JOB::animate_high::1::h::SOLO", "MJ::Job::PicReader::1", "MJ::Job::PromptAnalyzer::2",
     "MJ::BOOKMARK::h"],
)
async def test_relay_rejects_unknown_actions(wire: WireFactory, custom_id: str) -> None:
    w = await wire("zhongzhuan")
    tid = await w.imagine("fox")
    r = await w.press(tid, custom_id)
    assert r.status == 400
    # The relay's distributor refuses in OpenAI's shape, naming the button.
    assert r.json() == {
        "error": {
            "message": f"Invalid request, unknown_action:{custom_id}", "type": "new_api_error"
        }
    }


async def test_relay_failed_task_reports_100_percent(wire: WireFactory) -> None:
    w = await wire("pro365")
    task = await w.finished(await w.imagine("boom --emu-fail"))
    assert (task["status"], task["progress"]) == ("FAILURE", "100%")
    assert task["failReason"]


async def test_relay_image_route_streams_the_png(wire: WireFactory) -> None:
    w = await wire("new-api")
    tid = await w.imagine("fox")
    await w.finished(tid)
    r = await w.call("GET", f"/mj/image/{tid}", auth=False)
    assert r.status == 200
    assert r.headers["Content-Type"] == "image/png"
    assert r.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert (await w.call("GET", "/mj/image/nope", auth=False)).status == 400


@pytest.mark.parametrize("profile", RELAYS)
async def test_relay_notify_hook_can_be_enabled(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, notify_hook_enabled=True)
    tid = await w.imagine("fox", notifyHook="http://127.0.0.1:9/hook")
    assert w.emu.tasks[tid].notify_hook == "http://127.0.0.1:9/hook"


def test_profiles_mapping_is_complete_and_read_only() -> None:
    assert set(PROFILES) == {
        "midjourney-proxy-open", "midjourney-proxy-plus", "trueai", "new-api", "openai-hk",
        "zhongzhuan", "pro365", "ohmygpt",
    }
    assert dict(PROFILE_ALIASES) == {"midjourney-proxy": "midjourney-proxy-open"}
    with pytest.raises(TypeError):
        PROFILES["x"] = PROFILES["trueai"]  # type: ignore[index]
