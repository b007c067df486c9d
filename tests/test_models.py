"""Decoding: every sample in tests/samples/ becomes the expected Task, and odd bodies
are read tolerantly (unknown fields, unknown enums, numeric ids, ISO or epoch-second
times, nulls) instead of crashing the poller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mj_support import (
    sample,
    sample_bytes,
)

from midjourney_async import (
    DecodeError,
    RetryPolicy,
    SubmitRejected,
    Task,
    TaskAction,
    TaskStatus,
    parse_notification,
)
from midjourney_async._dialects import OhMyGPTDialect, ProxyDialect
from midjourney_async._dialects._json import to_epoch_ms
from midjourney_async._dialects.proxy import decode_task, decode_task_list
from midjourney_async._http import HttpResponse
from midjourney_async._models import parse_percent

GRID_LABELS = ["U1", "U2", "U3", "U4", "", "V1", "V2", "V3", "V4"]


FAST: dict[str, Any] = {"poll_interval": 0.01, "retry": RetryPolicy.without_waits()}


def _resp(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status, body, {}, lambda text: text)


def _grid_ids(job: str) -> list[str]:
    return [
        *(f"MJ::JOB::upsample::{i}::{job}" for i in range(1, 5)),
        f"MJ::JOB::reroll::0::{job}::SOLO",
        *(f"MJ::JOB::variation::{i}::{job}" for i in range(1, 5)),
    ]


def _dec(obj: Any) -> Task:
    task = decode_task(json.dumps(obj).encode())
    assert task is not None
    return task


# ---------------------------------------------------------------------------
# The samples


def test_sample_fetch_imagine_success() -> None:
    task = decode_task(sample_bytes("proxy-fetch-imagine-success.json"))
    assert task is not None
    assert task.id == "1730621826053455"
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.IMAGINE
    assert task.progress == "100%"
    assert task.progress_percent == 100
    assert task.prompt == "pig --v 6.1"
    assert task.image_url is not None
    assert task.image_url.startswith("https://cdnmjp.oneabc.org/attachments/1300842274347028520/")
    assert task.image_url.endswith(
        "hm=f6d701914d608e4da9298d2290b3616317264a70635fbf08a37ca6c1bb671b50&"
    )
    assert task.image_urls == []
    assert task.video_urls == []
    assert task.fail_reason is None  # "" on the wire
    assert task.submit_time == 1730621826053
    assert task.start_time == 1730621828024
    assert task.finish_time == 1730621855817
    assert task.final_prompt == "pig --v 6.1"
    assert task.properties["finalZhPrompt"] == ""
    assert [b.label for b in task.buttons] == GRID_LABELS
    assert [b.custom_id for b in task.buttons] == _grid_ids("3785da15-4f70-4034-9128-f3ff1ac634fa")
    reroll = task.buttons[4]
    assert reroll.emoji == "🔄"
    assert reroll.name == "🔄"
    assert task.buttons[0].name == "U1"
    assert (task.buttons[0].type, task.buttons[0].style) == (2, 2)
    assert task.is_terminal


def test_sample_fetch_edits_success() -> None:
    task = decode_task(sample_bytes("proxy-fetch-edits-success.json"))
    assert task is not None
    assert task.id == "1751342042863641"
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.EDITS
    assert task.progress_percent == 100
    assert task.state == "9"
    assert task.prompt_en == "Change to a white background."
    assert task.image_urls == [
        f"https://cdn.midjourney.com/1651da63-85c6-45c7-9679-f42381c73c78/0_{i}.png"
        for i in range(4)
    ]
    assert task.video_urls == []  # videoUrls null, videoUrl ""
    assert task.buttons == []
    assert task.image_url is not None and "change_white_background_" in task.image_url
    assert task.final_prompt is not None
    assert task.final_prompt.startswith("Change to a white background. --ar 1:1 --v 7")
    assert (task.submit_time, task.start_time, task.finish_time) == (
        1751342042863,
        1751342044141,
        1751342065872,
    )


def test_sample_fetch_video_success() -> None:
    task = decode_task(sample_bytes("proxy-fetch-video-success.json"))
    assert task is not None
    assert task.id == "1751275590720680"
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.VIDEO
    assert task.progress_percent == 100
    assert task.prompt == "缠斗"
    assert task.image_url == "https://abc.om/upload_1751275589663574690.jpg"
    assert task.image_urls == []  # imageUrls null
    assert task.video_urls == [
        f"https://cdn.discordapp.com/video/5938067e-b820-4938-b3ad-69d81778cbc4/0_{i}.mp4"
        for i in range(4)
    ]
    assert task.buttons == []
    assert task.properties["discordInstanceId"] == "1372468820912115716"
    assert task.properties["messageHash"] == "5938067e-b820-4938-b3ad-69d81778cbc4"
    assert task.final_prompt == (
        "https://cdn.discordapp.com/upload_1751275589663574690.jpg 缠斗 --ar 1:1 --v 7 "
        "--stylize 100 --relax"
    )
    assert task.submit_time == 1751275590720
    assert task.finish_time == 1751275670864


def test_sample_list_by_condition() -> None:
    tasks = decode_task_list(sample_bytes("proxy-list-by-condition.json"))
    assert len(tasks) == 1
    task = tasks[0]
    assert task.id == "1711436398441464"
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.IMAGINE
    assert task.progress_percent == 100
    assert task.image_url is None  # "" on the wire
    assert task.image_urls == []
    assert task.final_prompt == "Cat --v 5.2 --style raw"
    assert [b.label for b in task.buttons] == GRID_LABELS
    assert [b.custom_id for b in task.buttons] == _grid_ids("d476b0ae-a4a4-4a95-a697-d418cf989714")
    assert task.submit_time == 1711436398441


def test_sample_list_through_dialect() -> None:
    tasks = ProxyDialect().parse_list(_resp(sample_bytes("proxy-list-by-condition.json")))
    assert [t.id for t in tasks] == ["1711436398441464"]


def test_sample_submit_success_numeric_result() -> None:
    body = sample_bytes("proxy-submit-success.json")
    result = ProxyDialect().parse_submit("imagine", _resp(body))
    assert result.code == 1
    assert result.task_id == "1320098173412546"  # a JSON number on the wire
    assert isinstance(result.task_id, str)
    assert result.task_ids == ["1320098173412546"]
    assert result.queue_position is None
    assert result.description == "提交成功"


ACCEPTED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (the answer, what the result holds)
    "plain": ({"code": 1, "description": "Submit success", "result": "17", "properties": {}},
              {"task_ids": ["17"], "queue_position": None, "description": "Submit success"}),
    "no properties": ({"code": 1, "description": "ok", "result": "17"},
                      {"task_ids": ["17"], "properties": {}}),
    "null properties": ({"code": 1, "description": "ok", "result": "17", "properties": None},
                        {"task_ids": ["17"], "properties": {}}),
    "queued, new-api's 22 rewritten to 1": (
        {"code": 1, "description": "Submit success", "result": "17",
         "properties": {"numberOfQueues": 3}},
        {"queue_position": 3, "properties": {"numberOfQueues": 3}}),
    "queued first in line": (
        {"code": 1, "description": "排队中，前面还有0个任务", "result": "17",
         "properties": {"numberOfQueues": 0}},
        {"queue_position": 0}),
    "the key in the description": (
        {"code": 1, "description": "ok for sk-SECRET", "result": "17"},
        {"description": "ok for ***"}),
    "message instead of description": ({"code": 1, "description": "", "message": "ok",
                                        "result": "17"}, {"description": "ok"}),
    "an id in spaces": ({"code": 1, "description": "ok", "result": " 17 "},
                        {"task_id": "17", "task_ids": ["17"]}),
    "several ids": ({"code": 1, "description": "ok", "result": "17,18"},
                    {"task_id": "17", "task_ids": ["17", "18"]}),
    "a numeric id": ({"code": 1, "description": "ok", "result": 17}, {"task_ids": ["17"]}),
    "code 22": ({"code": 22, "description": "排队中", "result": "17",
                 "properties": {"numberOfQueues": 2}}, {"code": 22, "queue_position": 2}),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_an_accepted_submit_reads_as_the_server_meant_it(name: str) -> None:
    answer, expected = ACCEPTED[name]
    resp = HttpResponse(200, json.dumps(answer).encode(), {},
                        lambda text: text.replace("sk-SECRET", "***"))
    result = ProxyDialect().parse_submit("imagine", resp)
    got = {"code": result.code, "task_id": result.task_id, "task_ids": result.task_ids,
           "queue_position": result.queue_position, "description": result.description,
           "properties": result.properties}
    assert {key: got[key] for key in expected} == expected
    assert result.task_id == result.task_ids[0]


def test_an_accepted_code_that_says_it_failed_is_a_refusal() -> None:
    body = b'{"code": 1, "description": "ok", "result": "17", "success": false}'
    with pytest.raises(SubmitRejected):
        ProxyDialect().parse_submit("imagine", _resp(body))


@pytest.mark.parametrize(
    "status", ["", "NOT_START", "SUBMITTED", "IN_PROGRESS", "MODAL", "SUCCESS", "QUEUED"]
)
@pytest.mark.parametrize("progress", [None, "", "0%", "46%", "100%", " 7.5 %", "waiting"])
def test_a_rows_head_reads_as_the_whole_task_does(status: str, progress: str | None) -> None:
    # The poller decides from a row's head alone whether the task moved on.
    body = json.dumps({"id": "1", "status": status, "progress": progress,
                       "prompt": "a fox", "properties": {}}).encode()
    task = decode_task(body)
    head = ProxyDialect().decode_head(body)
    assert task is not None and head is not None
    assert (head.id, head.status, head.progress_percent) == (
        task.id, task.status, task.progress_percent)
    assert type(head.status) is type(task.status)


def test_sample_submit_video() -> None:
    result = ProxyDialect().parse_submit("video", _resp(sample_bytes("proxy-submit-video.json")))
    assert result.code == 1
    assert result.task_id == "1751352955547075"
    assert result.properties == {}


def test_sample_ohmygpt_query() -> None:
    task = OhMyGPTDialect().parse_fetch("20", _resp(sample_bytes("ohmygpt-query-success.json")))
    data = sample("ohmygpt-query-success.json")["data"]
    assert task.id == "20"  # integer taskId on the wire
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.IMAGINE
    assert task.progress_percent == 100
    assert task.submit_time == 1693490354000  # 2023-08-31T13:59:14.000Z
    assert task.start_time == 1693490354000
    assert task.finish_time == 1693490390000  # 2023-08-31T13:59:50.000Z
    assert task.image_url == data["imageDcUrl"]
    assert task.prompt == data["prompt"]
    assert task.description is not None and task.description.startswith("/imagine chibi")
    assert task.fail_reason is None
    assert [b.label for b in task.buttons] == GRID_LABELS
    assert [b.custom_id for b in task.buttons] == _grid_ids("0b33153d-f3c4-486b-9b4a-2f0f0ae6a355")
    assert task.buttons[4].emoji == "🔄"
    # The callback URL's path is a secret (a receiver token): only its origin is kept.
    assert task.properties["webhookUrl"] == "https://webhook.site/***"
    assert data["webhookUrl"].startswith("https://webhook.site/")
    assert task.properties["taskType"] == "NORMAL"


def test_ohmygpt_prefers_s3_copy_over_discord_link() -> None:
    data = sample("ohmygpt-query-success.json")
    data["data"]["imageS3Url"] = "https://s3.example/20.png"
    task = OhMyGPTDialect().parse_fetch("20", _resp(json.dumps(data).encode()))
    assert task.image_url == "https://s3.example/20.png"


def test_ohmygpt_notification_body() -> None:
    body = sample_bytes("ohmygpt-query-success.json")
    task = parse_notification(body, "ohmygpt")
    assert task.id == "20"
    assert task.status is TaskStatus.SUCCESS


def test_proxy_notification_body() -> None:
    task = parse_notification(sample_bytes("proxy-fetch-video-success.json"))
    assert task.id == "1751275590720680"
    assert task.action is TaskAction.VIDEO
    with pytest.raises(DecodeError):
        parse_notification(b"null")


# ---------------------------------------------------------------------------
# Tolerant decoding


def test_unknown_fields_are_ignored() -> None:
    task = _dec(
        {
            "id": "1",
            "status": "IN_PROGRESS",
            "progress": "46%",
            "instanceId": 77,
            "displays": {"a": [1, 2]},
            "accountFilter": {"modes": ["FAST"]},
            "isCompleted": False,
            "useTime": "12.34 s",
        }
    )
    assert task.id == "1"
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.progress_percent == 46


def test_unknown_status_and_action_stay_plain_strings() -> None:
    task = _dec({"id": "1", "status": "PAUSED_BY_ADMIN", "action": "TELEPORT"})
    assert task.status == "PAUSED_BY_ADMIN"
    assert type(task.status) is str
    assert not isinstance(task.status, TaskStatus)
    assert task.action == "TELEPORT"
    assert type(task.action) is str
    assert not task.is_terminal


def test_known_status_and_action_become_enums() -> None:
    task = _dec({"id": "1", "status": "MODAL", "action": "CUSTOM_ZOOM"})
    assert task.status is TaskStatus.MODAL
    assert task.action is TaskAction.CUSTOM_ZOOM
    assert task.status == "MODAL"  # a str enum compares as the string


def test_numeric_id_becomes_str() -> None:
    task = _dec({"id": 1730621826053455, "status": "SUBMITTED"})
    assert task.id == "1730621826053455"
    assert task.status is TaskStatus.SUBMITTED


def test_numeric_id_with_other_odd_types() -> None:
    task = _dec({"id": 5, "parentId": 4, "state": 9, "progress": None, "buttons": None})
    assert (task.id, task.parent_id, task.state) == ("5", "4", "9")
    assert task.progress is None and task.progress_percent is None
    assert task.buttons == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-08-31T13:59:14.000Z", 1693490354000),
        ("2023-08-31T13:59:14+00:00", 1693490354000),
        ("2023-08-31T21:59:14+08:00", 1693490354000),
        (1693490354, 1693490354000),  # epoch seconds
        (1693490354.5, 1693490354500),
        (1693490354000, 1693490354000),  # epoch ms
        ("1693490354000", 1693490354000),
        ("1693490354", 1693490354000),
    ],
)
def test_times_become_epoch_ms(value: Any, expected: int) -> None:
    task = _dec({"id": "1", "submitTime": value, "startTime": value, "finishTime": value})
    assert task.submit_time == expected
    assert task.start_time == expected
    assert task.finish_time == expected


def test_epoch_seconds_on_an_otherwise_strict_body_become_ms() -> None:
    # Every field has its strict type here, so this takes the fast decoder.
    task = _dec(
        {"id": "1", "status": "SUCCESS", "submitTime": 1700000000, "finishTime": 1700000042}
    )
    assert task.submit_time == 1700000000000
    assert task.finish_time == 1700000042000


def test_unreadable_times_are_dropped_not_fatal() -> None:
    task = _dec({"id": "1", "submitTime": "yesterday", "startTime": None, "finishTime": True})
    assert (task.submit_time, task.start_time, task.finish_time) == (None, None, None)


@pytest.mark.parametrize("value", [None, "", True, [], "garbage"])
def test_to_epoch_ms_rejects_non_times(value: Any) -> None:
    assert to_epoch_ms(value) is None


def test_null_lists_and_properties() -> None:
    task = _dec(
        {
            "id": "1",
            "status": "SUCCESS",
            "buttons": None,
            "imageUrls": None,
            "videoUrls": None,
            "properties": None,
        }
    )
    assert task.buttons == []
    assert task.image_urls == []
    assert task.video_urls == []
    assert task.properties == {}
    assert task.final_prompt is None


def test_media_lists_of_strings_or_objects() -> None:
    task = _dec(
        {
            "id": "1",
            "imageUrls": ["https://a/0.png", {"url": "https://a/1.png", "thumbnail": "t"}],
            "videoUrls": [{"url": "https://v/0.mp4"}, {"nourl": 1}, ""],
        }
    )
    assert task.image_urls == ["https://a/0.png", "https://a/1.png"]
    assert task.video_urls == ["https://v/0.mp4"]


def test_single_video_url_string() -> None:
    task = _dec({"id": "1", "videoUrl": "https://v/x.mp4", "videoUrls": None})
    assert task.video_urls == ["https://v/x.mp4"]


def test_buttons_without_custom_id_are_skipped() -> None:
    task = _dec(
        {
            "id": "1",
            "buttons": [
                {"customId": "MJ::JOB::upsample::1::h", "label": "U1", "type": "2"},
                {"label": "broken"},
                "not a button",
                {"customId": "", "label": "empty"},
            ],
        }
    )
    assert [(b.custom_id, b.label, b.type) for b in task.buttons] == [
        ("MJ::JOB::upsample::1::h", "U1", 2)
    ]


def test_empty_status_reads_as_not_start() -> None:
    assert _dec({"id": "1", "status": ""}).status is TaskStatus.NOT_START
    assert _dec({"id": "1", "status": None}).status is TaskStatus.NOT_START
    assert _dec({"id": "1"}).status is TaskStatus.NOT_START


def test_progress_text_that_is_not_a_percentage() -> None:
    task = _dec({"id": "1", "status": "IN_PROGRESS", "progress": "Waiting to start"})
    assert task.progress == "Waiting to start"
    assert task.progress_percent is None
    assert parse_percent("46.5%") == 46
    assert parse_percent("250%") == 100
    assert parse_percent(None) is None


def test_failure_with_empty_progress() -> None:
    task = _dec({"id": "1", "status": "FAILURE", "progress": "", "failReason": "banned prompt"})
    assert task.status is TaskStatus.FAILURE
    assert task.progress_percent is None
    assert task.fail_reason == "banned prompt"
    assert task.is_terminal


@pytest.mark.parametrize("body", [b"", b"   ", b"null", b" null\n"])
def test_empty_body_or_null_is_none(body: bytes) -> None:
    assert decode_task(body) is None
    assert decode_task_list(body) == []


@pytest.mark.parametrize("body", [b"{not json", b'{"id": "1", "status": "SUC', b"<html>"])
def test_malformed_json_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_task(body)
    with pytest.raises(DecodeError):
        decode_task_list(body)


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b'{"status": "SUCCESS"}'])
def test_json_that_is_not_a_task_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_task(body)


def test_task_list_skips_entries_that_are_not_tasks() -> None:
    body = json.dumps(
        [{"id": 7, "status": "SUCCESS"}, None, "x", {"noid": True}, {"id": "8", "status": "?"}]
    ).encode()
    tasks = decode_task_list(body)
    assert [t.id for t in tasks] == ["7", "8"]
    assert tasks[1].status == "?"
    with pytest.raises(DecodeError):
        decode_task_list(b'{"id": "1"}')


def test_to_dict_is_plain_snake_case() -> None:
    task = decode_task(sample_bytes("proxy-fetch-imagine-success.json"))
    assert task is not None
    data = task.to_dict()
    assert data["id"] == "1730621826053455"
    assert data["status"] == "SUCCESS" and type(data["status"]) is str
    assert data["action"] == "IMAGINE"
    assert data["buttons"][0] == {
        "custom_id": "MJ::JOB::upsample::1::3785da15-4f70-4034-9128-f3ff1ac634fa",
        "label": "U1",
        "emoji": "",
    }
    json.dumps(data)  # serialisable as is


def test_go_zero_times_read_as_no_time() -> None:
    body = {"id": "1", "status": "IN_PROGRESS", "submitTime": 1730621826053,
            "startTime": 0, "finishTime": 0}
    fast = decode_task(json.dumps(body).encode())
    slow = decode_task(json.dumps({**body, "id": 1}).encode())  # the tolerant path
    for task in (fast, slow):
        assert task is not None
        assert task.submit_time == 1730621826053
        assert task.start_time is None and task.finish_time is None
