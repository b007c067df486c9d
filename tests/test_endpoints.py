"""Every endpoint of seeds 000-003 against a recording server on 127.0.0.1: the
method, path, headers and body the client sends, and the value it returns.

Also: provider presets (auth header, mode prefixes), user overrides, env
configuration, ohmygpt's missing endpoints and client-side validation, each of
which must fail before anything is sent.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mj_support import KEY, RecordingServer, Reply, sample, submit_ok, task_json

from midjourney_async import (
    PROVIDERS,
    ConfigurationError,
    InvalidArgument,
    MidjourneySession,
    SubmitRejected,
    TaskAction,
    TaskNotFound,
    TaskStatus,
    UnsupportedOperation,
    WebhookConfig,
    __version__,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"pixels" * 4
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg-bytes"
JPEG_URL = "data:image/jpeg;base64," + base64.b64encode(JPEG).decode()
TID = "1730621826053455"
NEW = "1751352955547075"
CUSTOM = "MJ::JOB::upsample::2::3785da15-4f70-4034-9128-f3ff1ac634fa"

# preset -> (header name, expected value)
AUTH = {
    "midjourney-proxy": ("mj-api-secret", KEY),
    "trueai": ("Authorization", KEY),
    "new-api": ("Authorization", f"Bearer {KEY}"),
    "openai-hk": ("Authorization", f"Bearer {KEY}"),
    "zhongzhuan": ("Authorization", f"Bearer {KEY}"),
    "pro365": ("Authorization", f"Bearer {KEY}"),
    "ohmygpt": ("Authorization", f"Bearer {KEY}"),
}
PROXY_PRESETS = [name for name in AUTH if name != "ohmygpt"]


def _check_auth(headers: Any, provider: str) -> None:
    name, value = AUTH[provider]
    assert headers.get(name) == value
    other = "Authorization" if name.lower() == "mj-api-secret" else "mj-api-secret"
    assert other not in headers


def test_every_preset_has_an_expected_auth_style() -> None:
    assert set(AUTH) == set(PROVIDERS)


# ---------------------------------------------------------------------------
# Auth header per preset, on a submit, a fetch and a list


@pytest.mark.parametrize("provider", PROXY_PRESETS)
async def test_auth_header_per_proxy_preset(
    server: RecordingServer, make_session: Any, provider: str
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(NEW))
    server.add("GET", f"/mj/task/{NEW}/fetch", Reply.json(task_json(NEW)))
    server.add("POST", "/mj/task/list-by-condition", Reply.json([task_json(NEW)]))
    mj = await make_session(provider=provider)
    handle = await mj.imagine("cat")
    assert handle.id == NEW
    await mj.fetch(NEW)
    await mj.fetch_many([NEW])
    assert [r.path for r in server.requests] == [
        "/mj/submit/imagine",
        f"/mj/task/{NEW}/fetch",
        "/mj/task/list-by-condition",
    ]
    for rec in server.requests:
        _check_auth(rec.headers, provider)
        assert rec.headers["Accept"] == "application/json"
        assert rec.headers["User-Agent"] == f"midjourney-async/{__version__}"
    assert server.requests[0].headers["Content-Type"] == "application/json"


async def test_auth_header_ohmygpt(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/api/v1/ai/draw/mj/imagine", Reply.json({"statusCode": 200, "data": 1}))
    mj = await make_session(provider="ohmygpt")
    await mj.imagine("cat")
    _check_auth(server.last.headers, "ohmygpt")


async def test_no_key_sends_no_auth_header(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(task_json(TID)))
    mj = await make_session(api_key=None, provider="new-api")
    await mj.fetch(TID)
    assert "Authorization" not in server.last.headers
    assert "mj-api-secret" not in server.last.headers


# ---------------------------------------------------------------------------
# Proxy submits (seeds 002 openai-hk, 003 pro365)


async def test_imagine(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/imagine", Reply.json(sample("proxy-submit-success.json")))
    mj = await make_session(provider="openai-hk")
    handle = await mj.imagine("Cat")
    rec = server.last
    assert (rec.method, rec.path) == ("POST", "/mj/submit/imagine")
    assert rec.json == {"prompt": "Cat"}  # empties left out
    assert handle.id == "1320098173412546"
    assert handle.submit_code == 1
    assert handle.queue_position is None
    assert handle.task is None


async def test_imagine_with_image_prompts_and_state(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(NEW))
    mj = await make_session()
    await mj.imagine("Cat --ar 3:2", images=[PNG, JPEG_URL], state="job-7")
    assert server.last.json == {
        "prompt": "Cat --ar 3:2",
        "base64Array": [PNG_URL, JPEG_URL],
        "state": "job-7",
    }


async def test_imagine_extra_fields_are_merged(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(NEW))
    mj = await make_session(provider="trueai")
    await mj.imagine("Cat", extra={"botType": "NIJI_JOURNEY", "accountFilter": {"modes": ["FAST"]}})
    assert server.last.json == {
        "prompt": "Cat",
        "botType": "NIJI_JOURNEY",
        "accountFilter": {"modes": ["FAST"]},
    }


async def test_imagine_code_22_keeps_queue_position(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(NEW, code=22, numberOfQueues=3))
    mj = await make_session()
    handle = await mj.imagine("Cat")
    assert handle.id == NEW
    assert handle.submit_code == 22
    assert handle.queue_position == 3


async def test_action(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/action", submit_ok(NEW))
    mj = await make_session(provider="openai-hk")
    handle = await mj.action("14001934816969359", CUSTOM)
    assert server.last.path == "/mj/submit/action"
    assert server.last.json == {"taskId": "14001934816969359", "customId": CUSTOM}
    assert handle.id == NEW


async def test_action_with_remix_and_several_ids(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/action", submit_ok("111,222, 333"))
    mj = await make_session(provider="trueai")
    handle = await mj.action(TID, "MJ::Job::PicReader::all", enable_remix=True, state="s")
    assert server.last.json == {
        "taskId": TID,
        "customId": "MJ::Job::PicReader::all",
        "enableRemix": True,
        "state": "s",
    }
    assert handle.id == "111"
    assert handle.task_ids == ["111", "222", "333"]


async def test_blend(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/blend", submit_ok(NEW))
    mj = await make_session(provider="pro365")
    handle = await mj.blend([PNG, JPEG], dimensions="LANDSCAPE")
    assert server.last.path == "/mj/submit/blend"
    assert server.last.json == {"base64Array": [PNG_URL, JPEG_URL], "dimensions": "LANDSCAPE"}
    assert handle.id == NEW


async def test_blend_without_dimensions(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/blend", submit_ok(NEW))
    mj = await make_session()
    await mj.blend([PNG_URL, PNG_URL, PNG_URL])
    assert server.last.json == {"base64Array": [PNG_URL] * 3}


async def test_describe_from_bytes(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/describe", submit_ok(NEW))
    mj = await make_session(provider="openai-hk")
    handle = await mj.describe(PNG)
    assert server.last.path == "/mj/submit/describe"
    assert server.last.json == {"base64": PNG_URL}
    assert handle.id == NEW


async def test_describe_from_link(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/describe", submit_ok(NEW))
    mj = await make_session(provider="trueai")
    await mj.describe("https://cdn.example/cat.png")
    assert server.last.json == {"link": "https://cdn.example/cat.png"}


async def test_describe_from_file(
    server: RecordingServer, make_session: Any, tmp_path: Any
) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)
    server.add("POST", "/mj/submit/describe", submit_ok(NEW))
    mj = await make_session()
    await mj.describe(path)
    assert server.last.json == {"base64": PNG_URL}


async def test_modal(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/modal", submit_ok(NEW))
    mj = await make_session(provider="openai-hk")
    handle = await mj.modal("14001934816969359", prompt="a cat --zoom 1.8", mask_base64=PNG_URL)
    assert server.last.path == "/mj/submit/modal"
    assert server.last.json == {
        "taskId": "14001934816969359",
        "prompt": "a cat --zoom 1.8",
        "maskBase64": PNG_URL,
    }
    assert handle.id == NEW


async def test_modal_with_task_id_only(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/modal", submit_ok(NEW))
    mj = await make_session()
    await mj.modal(TID)
    assert server.last.json == {"taskId": TID}


async def test_shorten(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/shorten", submit_ok(NEW))
    mj = await make_session(provider="zhongzhuan")
    handle = await mj.shorten("a very long prompt about a cat", state="x")
    assert server.last.path == "/mj/submit/shorten"
    assert server.last.json == {"prompt": "a very long prompt about a cat", "state": "x"}
    assert handle.id == NEW


@pytest.mark.parametrize(
    ("action", "index", "body"),
    [
        ("UPSCALE", 2, {"taskId": TID, "action": "UPSCALE", "index": 2}),
        ("VARIATION", 4, {"taskId": TID, "action": "VARIATION", "index": 4}),
        # new-api refuses a REROLL without an index; novicezk ignores it.
        ("REROLL", None, {"taskId": TID, "action": "REROLL", "index": 1}),
        ("REROLL", 3, {"taskId": TID, "action": "REROLL", "index": 1}),
    ],
)
async def test_change(
    server: RecordingServer, make_session: Any, action: Any, index: int | None, body: Any
) -> None:
    server.add("POST", "/mj/submit/change", submit_ok(NEW))
    mj = await make_session(provider="pro365")
    handle = await mj.change(TID, action, index)
    assert server.last.path == "/mj/submit/change"
    assert server.last.json == body
    assert handle.id == NEW


async def test_simple_change(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/simple-change", submit_ok(NEW))
    mj = await make_session()
    handle = await mj.simple_change(f"{TID} U2")
    assert server.last.json == {"content": f"{TID} U2"}
    assert handle.id == NEW


async def test_swap_face(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/insight-face/swap", submit_ok(NEW))
    mj = await make_session(provider="openai-hk")
    handle = await mj.swap_face(PNG, JPEG)
    assert (server.last.method, server.last.path) == ("POST", "/mj/insight-face/swap")
    assert server.last.json == {"sourceBase64": PNG_URL, "targetBase64": JPEG_URL}
    assert handle.id == NEW


async def test_video(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/video", Reply.json(sample("proxy-submit-video.json")))
    mj = await make_session(provider="openai-hk")
    image = "https://cdn.discordapp.com/attachments/1/2/tulip.jpg?ex=1&"
    handle = await mj.video("缠斗", image=image, motion="high", loop=False, batch_size=2)
    assert server.last.path == "/mj/submit/video"
    assert server.last.json == {
        "prompt": "缠斗",
        "image": image,
        "motion": "high",
        "loop": False,
        "batchSize": 2,
    }
    assert handle.id == "1751352955547075"


async def test_video_extend(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/video", submit_ok(NEW))
    mj = await make_session()
    await mj.video("more", extend_task_id=TID, index=1, video_type="vid_1.1_i2v_720")
    assert server.last.json == {
        "prompt": "more",
        "action": "extend",
        "taskId": TID,
        "index": 1,
        "videoType": "vid_1.1_i2v_720",
    }


async def test_video_with_end_image_bytes(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/video", submit_ok(NEW))
    mj = await make_session()
    await mj.video("a bee", image=PNG, end_image=JPEG)
    assert server.last.json == {"prompt": "a bee", "image": PNG_URL, "endImage": JPEG_URL}


async def test_edits(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/mj/submit/edits", Reply.json({"code": 1, "result": "1751342042863641"}))
    mj = await make_session(provider="openai-hk")
    image = "https://cdn.discordapp.com/attachments/1/2/tulip.jpg"
    handle = await mj.edits("改为白色背景", image, state="abc")
    assert server.last.path == "/mj/submit/edits"
    assert server.last.json == {"prompt": "改为白色背景", "image": image, "state": "abc"}
    assert handle.id == "1751342042863641"


async def test_upload_images(server: RecordingServer, make_session: Any) -> None:
    urls = ["https://cdn.discordapp.com/a.png", "https://cdn.discordapp.com/b.jpg"]
    server.add(
        "POST",
        "/mj/submit/upload-discord-images",
        Reply.json({"code": 1, "description": "ok", "result": urls}),
    )
    mj = await make_session(provider="pro365")
    got = await mj.upload_images([PNG, JPEG])
    assert server.last.path == "/mj/submit/upload-discord-images"
    assert server.last.json == {"base64Array": [PNG_URL, JPEG_URL]}
    assert got == urls


async def test_notify_hook_is_sent_when_the_receiver_runs(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", "/mj/submit/imagine", submit_ok(NEW))
    mj = await make_session(webhook=WebhookConfig(host="127.0.0.1", port=0))
    await mj.imagine("Cat")
    hook = mj.webhook_url
    assert hook is not None and hook.startswith("http://127.0.0.1:")
    assert server.last.json == {"prompt": "Cat", "notifyHook": hook}


# ---------------------------------------------------------------------------
# Queries (seeds 001 zhongzhuan, 002 openai-hk, 003 pro365)


async def test_fetch(server: RecordingServer, make_session: Any) -> None:
    body = sample("proxy-fetch-imagine-success.json")
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(body))
    mj = await make_session(provider="zhongzhuan")
    task = await mj.fetch(TID)
    assert (server.last.method, server.last.path, server.last.body) == (
        "GET",
        f"/mj/task/{TID}/fetch",
        b"",
    )
    assert task.id == TID
    assert task.status is TaskStatus.SUCCESS
    assert task.action is TaskAction.IMAGINE
    assert [b.label for b in task.buttons][:4] == ["U1", "U2", "U3", "U4"]


async def test_fetch_quotes_the_id_in_the_path(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", "/mj/task/a b/fetch", Reply.json(task_json("a b")))
    mj = await make_session()
    task = await mj.fetch("a b")
    assert task.id == "a b"
    assert "/../" not in server.last.path


async def test_fetch_many_orders_by_request_and_leaves_out_unknown_ids(
    server: RecordingServer, make_session: Any
) -> None:
    # The server answers in its own order and drops ids it does not know.
    server.add(
        "POST",
        "/mj/task/list-by-condition",
        Reply.json([task_json("3"), task_json("1", "IN_PROGRESS", "46%"), task_json("99")]),
    )
    server.add("GET", "/mj/task/2/fetch", Reply(status=200, body=b""))  # unknown
    server.add("GET", "/mj/task/4/fetch", Reply.json(task_json("4", "SUBMITTED", "0%")))
    mj = await make_session(provider="openai-hk")
    tasks = await mj.fetch_many(["1", "2", "3", "4", "1"])
    assert [t.id for t in tasks] == ["1", "3", "4"]
    assert tasks[0].progress_percent == 46
    assert tasks[2].status is TaskStatus.SUBMITTED
    lists = server.calls("POST", "/mj/task/list-by-condition")
    assert len(lists) == 1
    assert lists[0].json == {"ids": ["1", "2", "3", "4"]}
    # Ids the batch left out are looked up one by one.
    assert sorted(r.path for r in server.calls("GET")) == ["/mj/task/2/fetch", "/mj/task/4/fetch"]


async def test_fetch_many_chunks(server: RecordingServer, make_session: Any) -> None:
    def answer(rec: Any) -> Reply:
        return Reply.json([task_json(i) for i in rec.json["ids"]])

    server.on("POST", "/mj/task/list-by-condition", answer)
    mj = await make_session(chunk_size=2)
    ids = [str(i) for i in range(5)]
    tasks = await mj.fetch_many(ids)
    assert [t.id for t in tasks] == ids
    assert sorted(len(r.json["ids"]) for r in server.requests) == [1, 2, 2]


async def test_image_seed(server: RecordingServer, make_session: Any) -> None:
    server.add(
        "GET", f"/mj/task/{TID}/image-seed", Reply.json({"code": 1, "result": "2938472618"})
    )
    mj = await make_session(provider="openai-hk")
    seed = await mj.image_seed(TID)
    assert (server.last.method, server.last.path) == ("GET", f"/mj/task/{TID}/image-seed")
    assert seed == "2938472618"


async def test_image_seed_numeric_result_is_str(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", f"/mj/task/{TID}/image-seed", Reply.json({"code": 1, "result": 42}))
    mj = await make_session()
    assert await mj.image_seed(TID) == "42"


async def test_image_by_id(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", f"/mj/image/{TID}", Reply.raw(PNG, content_type="image/png"))
    mj = await make_session(provider="pro365")
    data = await mj.image(TID)
    assert data == PNG
    _check_auth(server.last.headers, "pro365")


async def test_cancel(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"/mj/task/{TID}/cancel", Reply(status=200))
    mj = await make_session(provider="trueai")
    await mj.cancel(TID)
    assert (server.last.method, server.last.path) == ("POST", f"/mj/task/{TID}/cancel")


# ---------------------------------------------------------------------------
# Mode prefixes, overrides, environment


@pytest.mark.parametrize(
    ("provider", "mode", "root"),
    [
        ("trueai", "fast", "/mj-fast/mj"),
        ("trueai", "relax", "/mj-relax/mj"),
        ("trueai", "turbo", "/mj-turbo/mj"),
        ("new-api", "relax", "/relax/mj"),
        ("new-api", "FAST", "/fast/mj"),
        ("openai-hk", "fast", "/fast/mj"),
        ("openai-hk", "relax", "/relax/mj"),
    ],
)
async def test_mode_prefix(
    server: RecordingServer, make_session: Any, provider: str, mode: str, root: str
) -> None:
    server.add("POST", f"{root}/submit/imagine", submit_ok(NEW))
    server.add("GET", f"{root}/task/{NEW}/fetch", Reply.json(task_json(NEW)))
    server.add("POST", f"{root}/task/list-by-condition", Reply.json([task_json(NEW)]))
    server.add("GET", f"{root}/task/{NEW}/image-seed", Reply.json({"code": 1, "result": "7"}))
    server.add("POST", f"{root}/insight-face/swap", submit_ok(NEW))
    mj = await make_session(provider=provider, mode=mode)
    assert (await mj.imagine("cat")).id == NEW
    assert (await mj.fetch(NEW)).id == NEW
    assert [t.id for t in await mj.fetch_many([NEW])] == [NEW]
    assert await mj.image_seed(NEW) == "7"
    await mj.swap_face(PNG, PNG)
    assert [r.path for r in server.requests] == [
        f"{root}/submit/imagine",
        f"{root}/task/{NEW}/fetch",
        f"{root}/task/list-by-condition",
        f"{root}/task/{NEW}/image-seed",
        f"{root}/insight-face/swap",
    ]


@pytest.mark.parametrize(
    ("provider", "mode"),
    [("midjourney-proxy", "fast"), ("openai-hk", "turbo"), ("trueai", "ludicrous")],
)
def test_mode_the_provider_does_not_serve(provider: str, mode: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession("http://127.0.0.1:9", KEY, provider=provider, mode=mode)
    assert mode in str(info.value)


async def test_override_base_url_with_path(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/gateway/v2/mj/submit/imagine", submit_ok(NEW))
    mj = await make_session(base_url=server.url + "/gateway/v2/", provider="zhongzhuan")
    assert (await mj.imagine("cat")).id == NEW
    assert server.last.path == "/gateway/v2/mj/submit/imagine"


async def test_override_auth_header_and_scheme(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(task_json(TID)))
    mj = await make_session(provider="new-api", auth_header="X-Api-Key", auth_scheme="Token")
    await mj.fetch(TID)
    assert server.last.headers["X-Api-Key"] == f"Token {KEY}"
    assert "Authorization" not in server.last.headers


async def test_override_scheme_to_raw_key(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(task_json(TID)))
    mj = await make_session(provider="openai-hk", auth_scheme="")
    await mj.fetch(TID)
    assert server.last.headers["Authorization"] == KEY


async def test_override_mj_api_secret_on_a_relay(
    server: RecordingServer, make_session: Any
) -> None:
    # openai-hk also takes the key as Mj-Api-Secret.
    server.add("GET", f"/mj/task/{TID}/fetch", Reply.json(task_json(TID)))
    mj = await make_session(provider="openai-hk", auth_header="Mj-Api-Secret", auth_scheme="")
    await mj.fetch(TID)
    assert server.last.headers["Mj-Api-Secret"] == KEY
    assert "Authorization" not in server.last.headers


async def test_override_mode_prefix(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", "/speed-relax/mj/submit/imagine", submit_ok(NEW))
    mj = await make_session(provider="midjourney-proxy", mode="relax", mode_prefix="/speed-{mode}/")
    assert (await mj.imagine("cat")).id == NEW
    assert server.last.path == "/speed-relax/mj/submit/imagine"
    _check_auth(server.last.headers, "midjourney-proxy")


def test_mode_prefix_without_placeholder_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        MidjourneySession("http://127.0.0.1:9", KEY, provider="trueai", mode_prefix="/fast")


def test_unknown_provider_lists_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession("http://127.0.0.1:9", KEY, provider="midjourney-official")
    assert "openai-hk" in str(info.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:8080", "http://"])
def test_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigurationError):
        MidjourneySession(url, KEY)


def test_provider_without_default_url_needs_one() -> None:
    with pytest.raises(ConfigurationError) as info:
        MidjourneySession(api_key=KEY, provider="trueai")
    assert "MJ_BASE_URL" in str(info.value)


def test_relay_presets_have_their_default_urls() -> None:
    assert MidjourneySession(api_key=KEY, provider="openai-hk").base_url == (
        "https://api.openai-hk.com"
    )
    assert MidjourneySession(api_key=KEY, provider="pro365").base_url == "https://api.pro365.top"
    assert MidjourneySession(api_key=KEY, provider="ohmygpt").base_url == (
        "https://api.ohmygpt.com"
    )


async def test_env_configuration(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MJ_BASE_URL", server.url)
    monkeypatch.setenv("MJ_API_KEY", KEY)
    monkeypatch.setenv("MJ_PROVIDER", "new-api")
    monkeypatch.setenv("MJ_MODE", "relax")
    server.add("POST", "/relax/mj/submit/imagine", submit_ok(NEW))
    async with MidjourneySession() as mj:
        assert mj.provider.name == "new-api"
        assert mj.mode == "relax"
        handle = await mj.imagine("cat")
    assert handle.id == NEW
    assert server.last.path == "/relax/mj/submit/imagine"
    assert server.last.headers["Authorization"] == f"Bearer {KEY}"


async def test_arguments_beat_env(server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MJ_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MJ_API_KEY", "env-key-not-used")
    monkeypatch.setenv("MJ_PROVIDER", "new-api")
    monkeypatch.setenv("MJ_MODE", "relax")
    server.add("POST", "/mj-fast/mj/submit/imagine", submit_ok(NEW))
    async with MidjourneySession(server.url, KEY, provider="trueai", mode="fast") as mj:
        await mj.imagine("cat")
    assert server.last.path == "/mj-fast/mj/submit/imagine"
    assert server.last.headers["Authorization"] == KEY


# ---------------------------------------------------------------------------
# OhMyGPT (seed 000)

OMG = "/api/v1/ai/draw/mj"


def _omg_ok(data: Any = 3432) -> Reply:
    return Reply.json({"statusCode": 200, "message": "Success", "data": data})


async def test_ohmygpt_imagine_form(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", _omg_ok(3432))
    mj = await make_session(provider="ohmygpt")
    handle = await mj.imagine("a cat")
    rec = server.last
    assert (rec.method, rec.path) == ("POST", f"{OMG}/imagine")
    assert rec.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert rec.form == {"model": "midjourney", "type": "FAST", "prompt": "a cat"}
    assert handle.id == "3432"


async def test_ohmygpt_relax_mode_is_normal(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", _omg_ok())
    mj = await make_session(provider="ohmygpt", mode="relax")
    await mj.imagine("a cat")
    assert server.last.form is not None and server.last.form["type"] == "NORMAL"


async def test_ohmygpt_webhook_field(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/imagine", _omg_ok())
    mj = await make_session(provider="ohmygpt", webhook=WebhookConfig(port=0))
    await mj.imagine("a cat")
    assert server.last.form is not None
    assert server.last.form["webhook"] == mj.webhook_url
    assert "notifyHook" not in server.last.form


async def test_ohmygpt_action(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/action", _omg_ok(21))
    mj = await make_session(provider="ohmygpt")
    handle = await mj.action("20", CUSTOM)
    assert server.last.form == {
        "model": "midjourney",
        "type": "FAST",
        "taskId": "20",
        "customId": CUSTOM,
    }
    assert handle.id == "21"


async def test_ohmygpt_blend_sends_json_for_the_array(
    server: RecordingServer, make_session: Any
) -> None:
    server.add("POST", f"{OMG}/blend", _omg_ok(22))
    mj = await make_session(provider="ohmygpt", mode="fast")
    handle = await mj.blend([PNG, JPEG], dimensions="PORTRAIT")
    assert server.last.json == {
        "model": "midjourney",
        "type": "FAST",
        "base64Array": [PNG_URL, JPEG_URL],
        "dimensions": "PORTRAIT",
    }
    assert handle.id == "22"


async def test_ohmygpt_describe(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/describe", _omg_ok(23))
    mj = await make_session(provider="ohmygpt")
    await mj.describe(PNG)
    assert server.last.form == {"model": "midjourney", "type": "FAST", "base64": PNG_URL}


async def test_ohmygpt_query(server: RecordingServer, make_session: Any) -> None:
    server.add("POST", f"{OMG}/query", Reply.json(sample("ohmygpt-query-success.json")))
    mj = await make_session(provider="ohmygpt")
    task = await mj.fetch("20")
    rec = server.last
    assert (rec.method, rec.path) == ("POST", f"{OMG}/query")
    assert rec.form == {"model": "midjourney", "taskId": "20"}
    _check_auth(rec.headers, "ohmygpt")
    assert task.id == "20"
    assert task.status is TaskStatus.SUCCESS
    assert task.submit_time == 1693490354000
    assert task.image_url is not None and task.image_url.startswith("https://cdn.discordapp.com/")
    assert task.buttons[0].custom_id == (
        "MJ::JOB::upsample::1::0b33153d-f3c4-486b-9b4a-2f0f0ae6a355"
    )


async def test_ohmygpt_fetch_many_queries_one_by_one(
    server: RecordingServer, make_session: Any
) -> None:
    def answer(rec: Any) -> Reply:
        task_id = rec.form["taskId"]
        if task_id == "2":
            return Reply.json({"statusCode": 404, "message": "task not found", "data": None})
        return _omg_ok({"taskId": int(task_id), "status": "IN_PROGRESS", "progress": "10%"})

    server.on("POST", f"{OMG}/query", answer)
    mj = await make_session(provider="ohmygpt")
    tasks = await mj.fetch_many(["3", "2", "1"])
    assert [t.id for t in tasks] == ["3", "1"]
    assert sorted(r.form["taskId"] for r in server.requests if r.form) == ["1", "2", "3"]
    assert all(r.path == f"{OMG}/query" for r in server.requests)


async def _unsupported_calls(mj: MidjourneySession) -> list[tuple[str, Any]]:
    return [
        ("shorten", lambda: mj.shorten("a cat")),
        ("modal", lambda: mj.modal("20", prompt="p")),
        ("video", lambda: mj.video("p", image="https://x/y.png")),
        ("edits", lambda: mj.edits("p", "https://x/y.png")),
        ("swap_face", lambda: mj.swap_face(PNG, PNG)),
        ("upload", lambda: mj.upload_images([PNG])),
        ("image_seed", lambda: mj.image_seed("20")),
        ("change", lambda: mj.change("20", "UPSCALE", 1)),
        ("simple_change", lambda: mj.simple_change("20 U1")),
        ("cancel", lambda: mj.cancel("20")),
        ("image", lambda: mj.image("20")),
        ("describe link", lambda: mj.describe("https://x/y.png")),
    ]


async def test_ohmygpt_unsupported_operations_send_nothing(
    server: RecordingServer, make_session: Any
) -> None:
    mj = await make_session(provider="ohmygpt", max_in_flight=1)
    for name, call in await _unsupported_calls(mj):
        with pytest.raises(UnsupportedOperation) as info:
            await call()
        assert isinstance(info.value, NotImplementedError), name
        assert "ohmygpt" in str(info.value), name
    assert server.requests == []
    # No in-flight slot leaked: a supported submit still goes through at once.
    server.add("POST", f"{OMG}/imagine", _omg_ok())
    assert (await mj.imagine("a cat")).id == "3432"


async def test_ohmygpt_has_no_list_endpoint(server: RecordingServer, make_session: Any) -> None:
    mj = await make_session(provider="ohmygpt")
    assert mj.dialect.supports_list is False
    with pytest.raises(UnsupportedOperation):
        mj.dialect.list_tasks(["1", "2"])
    assert server.requests == []


# ---------------------------------------------------------------------------
# Client-side validation: a clear error and nothing sent


async def _bad_calls(mj: MidjourneySession) -> list[tuple[str, Any]]:
    handle = mj.handle(TID)
    return [
        ("blank prompt", lambda: mj.imagine("")),
        ("whitespace prompt", lambda: mj.imagine("   \n")),
        ("blend of 1", lambda: mj.blend([PNG])),
        ("blend of 6", lambda: mj.blend([PNG] * 6)),
        ("blend of 0", lambda: mj.blend([])),
        ("blend dimensions", lambda: mj.blend([PNG, PNG], dimensions="WIDE")),  # type: ignore
        ("blend with a link", lambda: mj.blend(["https://x/a.png", PNG])),
        ("change index 0", lambda: mj.change(TID, "UPSCALE", 0)),
        ("change index 5", lambda: mj.change(TID, "VARIATION", 5)),
        ("change no index", lambda: mj.change(TID, "UPSCALE")),
        ("change action", lambda: mj.change(TID, "ZOOM", 1)),  # type: ignore[arg-type]
        ("change no task", lambda: mj.change("", "REROLL")),
        ("action no custom id", lambda: mj.action(TID, "")),
        ("action no task", lambda: mj.action(" ", CUSTOM)),
        ("modal no task", lambda: mj.modal("")),
        ("shorten blank", lambda: mj.shorten("")),
        ("edits blank", lambda: mj.edits("", PNG)),
        ("video no image", lambda: mj.video("a prompt")),
        ("upload none", lambda: mj.upload_images([])),
        ("empty image", lambda: mj.describe(b"")),
        ("bad base64", lambda: mj.imagine("cat", images=["not base64 !!"])),
        ("missing file", lambda: mj.describe(_Missing())),
        ("simple change blank", lambda: mj.simple_change("")),
        ("fetch blank", lambda: mj.fetch("")),
        ("seed blank", lambda: mj.image_seed("")),
        ("upscale 5", lambda: handle.upscale(5)),
        ("upscale 0", lambda: handle.upscale(0)),
        ("variation 'medium'", lambda: handle.variation("medium")),
        ("pan diagonal", lambda: handle.pan("diagonal")),  # type: ignore[arg-type]
        ("zoom 3x", lambda: handle.zoom_out(3)),
        ("zoom 1x", lambda: handle.zoom_out(1)),
        ("vary region no mask", lambda: handle.vary_region("")),
    ]


class _Missing:
    def __fspath__(self) -> str:
        return "/nonexistent/dir/cat.png"


async def test_client_side_validation_sends_nothing(
    server: RecordingServer, make_session: Any
) -> None:
    mj = await make_session(max_in_flight=1)
    for name, call in await _bad_calls(mj):
        # Refused here, not by the server: not a SubmitRejected, nothing paid.
        with pytest.raises(InvalidArgument) as info:
            await call()
        assert not isinstance(info.value, SubmitRejected), name
        assert str(info.value), name
    assert server.requests == [], [r.path for r in server.requests]


async def test_validation_messages_say_nothing_was_sent() -> None:
    mj = MidjourneySession("http://127.0.0.1:9", KEY)  # never opened: nothing can be sent
    messages = []
    calls: tuple[Callable[[], Awaitable[object]], ...] = (
        lambda: mj.imagine(""), lambda: mj.blend([PNG])
    )
    for call in calls:
        with pytest.raises(InvalidArgument) as info:
            await call()
        messages.append(str(info.value))
    assert all("nothing was sent" in m for m in messages)
    assert "2 to 5" in messages[1]


async def test_calls_on_a_closed_session_are_refused() -> None:
    mj = MidjourneySession("http://127.0.0.1:9", KEY)
    with pytest.raises(ConfigurationError) as info:
        await mj.fetch(TID)
    assert "async with" in str(info.value)


async def test_unknown_task_on_fetch(server: RecordingServer, make_session: Any) -> None:
    server.add("GET", f"/mj/task/{TID}/fetch", Reply(status=200, body=b""))
    mj = await make_session()
    with pytest.raises(TaskNotFound) as info:
        await mj.fetch(TID)
    assert info.value.task_id == TID
