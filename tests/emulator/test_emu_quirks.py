"""Real-server behaviours switched on with ``ServerQuirks``, checked on the raw wire."""

from __future__ import annotations

import json
from typing import Any

import pytest
from emu_support import PIXEL, WireFactory, button

from midjourney_async.testing import ServerQuirks

# -- trueai per-user caps and quotas ------------------------------------------------------


def _logic_error(body: dict[str, Any], message: str) -> None:
    """trueai's exception-filter shape: ``{success: false, code: -1, message, timestamp}``."""
    assert set(body) == {"success", "code", "message", "timestamp"}
    assert (body["success"], body["code"], body["message"]) == (False, -1, message)
    assert isinstance(body["timestamp"], int)


async def test_trueai_concurrency_cap_is_code_4_on_imagine_and_logic_error_elsewhere(
    wire: WireFactory,
) -> None:
    w = await wire("trueai", speed="realtime", quirks=ServerQuirks(user_core_size=1))
    await w.imagine("first")
    capped = await w.submit("imagine", prompt="second")
    assert capped.status == 200
    assert capped.json() == {
        "code": 4, "description": "并发数已达上限", "result": None, "properties": {}
    }
    for endpoint, body in (
        ("blend", {"base64Array": [PIXEL, PIXEL]}),
        ("describe", {"base64": PIXEL}),
        ("shorten", {"prompt": "x"}),
    ):
        r = await w.submit(endpoint, **body)
        assert r.status == 200, endpoint
        _logic_error(r.json(), "并发数已达上限")
    assert len(w.emu.tasks) == 1  # nothing was accepted


async def test_trueai_queue_cap_counts_waiting_tasks(wire: WireFactory) -> None:
    w = await wire("trueai", speed="realtime", quirks=ServerQuirks(user_queue_size=2))
    await w.imagine("a")
    await w.imagine("b")
    _logic_error((await w.submit("describe", base64=PIXEL)).json(), "队列数已达上限")
    w.emu.advance(2.0)  # both are SUBMITTED: still waiting in trueai's count
    assert (await w.submit("imagine", prompt="c")).json()["description"] == "队列数已达上限"
    w.emu.advance(5.0)  # both are IN_PROGRESS now
    assert (await w.submit("imagine", prompt="c")).json()["code"] == 1


@pytest.mark.parametrize(
    ("quirks", "message"),
    [
        (ServerQuirks(user_day_limit=1), "用户今日绘图次数已达上限"),
        (ServerQuirks(user_day_limit=1, guest=True), "访客今日绘图次数已达上限"),
        (ServerQuirks(user_total_limit=1), "总绘图次数已达上限"),
    ],
)
async def test_trueai_quotas_refuse_once_more_than_the_quota_exists(
    wire: WireFactory, quirks: ServerQuirks, message: str
) -> None:
    w = await wire("trueai", quirks=quirks)
    # trueai compares "tasks already stored > quota": a quota of 1 lets two through.
    await w.imagine("one")
    await w.imagine("two")
    imagine = (await w.submit("imagine", prompt="three")).json()
    assert (imagine["code"], imagine["description"]) == (4, message)
    _logic_error((await w.submit("shorten", prompt="three")).json(), message)
    assert len(w.emu.tasks) == 2


async def test_trueai_refuses_a_state_over_255_characters(wire: WireFactory) -> None:
    w = await wire("trueai")
    assert (await w.submit("imagine", prompt="ok", state="s" * 255)).json()["code"] == 1
    long = (await w.submit("imagine", prompt="no", state="s" * 256)).json()
    assert (long["code"], long["description"]) == (4, "State参数过长")
    _logic_error((await w.submit("shorten", prompt="no", state="s" * 256)).json(), "State参数过长")
    assert len(w.emu.tasks) == 1


async def test_new_api_passes_trueai_caps_through_unchanged(wire: WireFactory) -> None:
    w = await wire("openai-hk", speed="realtime", quirks=ServerQuirks(user_core_size=1))
    await w.imagine("first")
    imagine = await w.submit("imagine", prompt="second")
    assert imagine.status == 200
    assert imagine.json()["description"] == "并发数已达上限"
    blend = await w.submit("blend", base64Array=[PIXEL, PIXEL])
    assert blend.status == 200
    _logic_error(blend.json(), "并发数已达上限")


# -- new-api: duplicate rows, REROLL index, its own refusals, queue position ----------------


async def _relay_modal_step(w: Any) -> str:
    grid = await w.finished(await w.imagine("fox"))
    press = (await w.press(grid["id"], button(grid, "V1"), enableRemix=True)).json()
    tid = str(press["result"])
    assert (await w.submit("modal", taskId=tid, prompt="fox, red")).json()["code"] == 1
    await w.emu.complete_all()
    assert w.emu.tasks[tid].status == "SUCCESS"
    return tid


async def test_new_api_lists_two_rows_for_one_id_after_a_modal_step(wire: WireFactory) -> None:
    w = await wire("new-api", account_remix=True, relay_refresh_interval=0)
    tid = await _relay_modal_step(w)
    rows = (await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": [tid]})).json()
    assert [r["id"] for r in rows] == [tid, tid]
    stale, live = rows
    assert (stale["status"], stale["action"]) == ("MODAL", "VARIATION")
    assert (live["status"], live["action"]) == ("SUCCESS", "MODAL")
    assert live["imageUrl"] and not stale["imageUrl"]
    # fetch takes the first row (GORM First): the stale MODAL one, for ever.
    fetched = await w.task(tid)
    assert (fetched["status"], fetched["action"]) == ("MODAL", "VARIATION")


async def test_newer_new_api_fetch_of_a_duplicated_id_is_task_no_found(
    wire: WireFactory,
) -> None:
    w = await wire(
        "new-api", account_remix=True, relay_refresh_interval=0,
        quirks=ServerQuirks(relay_duplicate_fetch="not_found"),
    )
    tid = await _relay_modal_step(w)
    r = await w.fetch(tid)
    assert r.status == 400
    assert r.json()["description"] == "task_no_found"


async def test_new_api_refuses_reroll_without_index(wire: WireFactory) -> None:
    w = await wire("new-api", relay_refresh_interval=0)
    grid = await w.finished(await w.imagine("fox"))
    r = await w.submit("change", taskId=grid["id"], action="REROLL")
    assert r.status == 400
    assert r.json() == {"code": 4, "description": "index_is_required", "type": "upstream_error"}
    assert (await w.submit("change", taskId=grid["id"], action="REROLL", index=1)).json()[
        "code"
    ] == 1
    java = await wire("midjourney-proxy-open")
    jgrid = await java.finished(await java.imagine("fox"))
    assert (await java.submit("change", taskId=jgrid["id"], action="REROLL", index=1)).json()[
        "code"
    ] == 1  # novicezk ignores the index of a REROLL


async def test_new_api_unknown_action_wording_variants(wire: WireFactory) -> None:
    w = await wire("new-api", quirks=ServerQuirks(relay_error_style="chinese"))
    tid = await w.imagine("fox")
    r = await w.press(tid, "MJ::Job::PicReader::1")
    assert r.status == 400
    assert r.json()["error"] == {
        "message": "无效的请求, unknown_action:MJ::Job::PicReader::1", "type": "new_api_error"
    }
    w.emu.quirks.relay_error_style = "mixed"
    r = await w.press(tid, "MJ::BOOKMARK::h")
    assert r.status == 400
    first, end = json.JSONDecoder().raw_decode(r.text)
    second = json.loads(r.text[end:])
    assert first == {"description": "unknown_action:MJ::BOOKMARK::h", "type": "upstream_error",
                     "code": 4}
    assert second["error"]["type"] == "new_api_error"
    assert "unknown_action:MJ::BOOKMARK::h" in second["error"]["message"]


async def test_new_api_without_a_channel_answers_503_openai_shaped(wire: WireFactory) -> None:
    w = await wire("zhongzhuan", quirks=ServerQuirks(relay_no_channel=True))
    r = await w.submit("imagine", prompt="fox")
    assert r.status == 503
    assert r.json() == {
        "error": {"message": "当前分组 default 下对于模型 mj_imagine 无可用渠道",
                  "type": "new_api_error"}
    }
    assert not w.emu.tasks
    w.emu.quirks.relay_no_channel = False
    assert (await w.submit("imagine", prompt="fox")).json()["code"] == 1


async def test_new_api_keeps_the_queue_position_when_it_rewrites_22(wire: WireFactory) -> None:
    w = await wire("new-api", speed="realtime", concurrency=1, queue_size=5)
    await w.imagine("runs")
    answers = [(await w.submit("imagine", prompt=f"waits {i}")).json() for i in range(2)]
    assert [a["code"] for a in answers] == [1, 1]
    assert [a["properties"]["numberOfQueues"] for a in answers] == [0, 1]
    assert answers[1]["description"] == "排队中，前面还有1个任务"


# -- trueai odds: image-seed failure, video extend, fetch as a list ------------------------


@pytest.mark.parametrize("message", ["未找到 seed", "无可用的账号实例"])
async def test_trueai_image_seed_failure_is_code_3_for_a_task_that_exists(
    wire: WireFactory, message: str
) -> None:
    w = await wire("trueai", quirks=ServerQuirks(image_seed_failure=message))
    grid = await w.finished(await w.imagine("fox"))
    r = await w.call("GET", f"/mj/task/{grid['id']}/image-seed")
    assert r.status == 200
    assert r.json() == {"code": 3, "description": message, "result": None, "properties": {}}
    assert (await w.fetch(grid["id"])).status == 200


async def test_trueai_refuses_video_extend_without_prompt(wire: WireFactory) -> None:
    w = await wire("trueai")
    video = await w.finished(str((await w.submit("video", prompt="waves")).json()["result"]))
    before = len(w.emu.tasks)
    r = await w.submit("video", action="extend", taskId=video["id"], index=1)
    assert r.status == 200
    assert r.json() == {
        "code": 4, "description": "Prompt 不能为空", "result": None, "properties": {}
    }
    assert len(w.emu.tasks) == before
    ok = await w.submit("video", action="extend", taskId=video["id"], index=1, prompt="more")
    assert ok.json()["code"] == 1


@pytest.mark.parametrize("profile", ["pro365", "midjourney-proxy-open", "trueai"])
async def test_fetch_can_answer_a_one_element_list(wire: WireFactory, profile: str) -> None:
    w = await wire(profile, relay_refresh_interval=0, quirks=ServerQuirks(fetch_as_list=True))
    tid = await w.imagine("fox")
    r = await w.fetch(tid)
    assert r.status == 200
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    assert str(body[0]["id"]) == tid
