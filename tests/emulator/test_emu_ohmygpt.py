"""OhMyGPT dialect: form bodies, model check, envelope, integer ids, ISO times."""

from __future__ import annotations

import json
import re
from pathlib import Path

from emu_support import PIXEL, Wire, WireFactory

BASE = "/api/v1/ai/draw/mj"
SAMPLE = Path(__file__).parent.parent / "samples" / "ohmygpt-query-success.json"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def _post(w: Wire, op: str, **fields: object) -> dict[str, object]:
    r = await w.call("POST", f"{BASE}/{op}", data={"model": "midjourney", **fields})
    assert r.status == 200, r.text
    body: dict[str, object] = r.json()
    return body


async def test_imagine_and_query_match_the_sample_shape(wire: WireFactory) -> None:
    w = await wire("ohmygpt")
    answer = await _post(w, "imagine", prompt="chibi vader", type="NORMAL")
    assert (answer["statusCode"], answer["message"]) == (200, "Success")
    task_id = answer["data"]
    assert isinstance(task_id, int)
    await w.emu.complete_all()
    got = await _post(w, "query", taskId=str(task_id))
    data = got["data"]
    assert isinstance(data, dict)
    sample = json.loads(SAMPLE.read_text())["data"]
    assert set(data) == set(sample)
    assert data["taskId"] == task_id and data["taskType"] == "NORMAL"
    assert (data["status"], data["action"], data["progress"]) == ("SUCCESS", "IMAGINE", "100%")
    for key in ("submitTime", "startTime", "finishTime"):
        assert ISO.fullmatch(data[key]), data[key]
    assert data["imageS3Url"] is None and data["failReason"] is None
    assert [a["label"] for a in data["actions"]][:4] == ["U1", "U2", "U3", "U4"]
    assert set(data["actions"][0]) == {"customId", "emoji", "label"}


async def test_json_bodies_and_actions(wire: WireFactory) -> None:
    w = await wire("ohmygpt")
    r = await w.call("POST", f"{BASE}/imagine", json_body={"model": "midjourney", "prompt": "fox"})
    task_id = r.json()["data"]
    await w.emu.complete_all()
    data = (await _post(w, "query", taskId=task_id))["data"]
    assert isinstance(data, dict)
    up = await _post(w, "action", taskId=task_id, customId=data["actions"][0]["customId"])
    assert up["statusCode"] == 200
    await w.emu.complete_all()
    child = (await _post(w, "query", taskId=up["data"]))["data"]
    assert isinstance(child, dict) and child["action"] == "UPSCALE"
    assert (await _post(w, "action", taskId=task_id, customId="MJ::nope"))["statusCode"] == 400


async def test_envelope_errors_keep_http_200(wire: WireFactory) -> None:
    w = await wire("ohmygpt")
    no_model = await w.call("POST", f"{BASE}/imagine", data={"prompt": "fox"})
    assert no_model.status == 200
    assert no_model.json()["statusCode"] == 400
    assert (await _post(w, "imagine", prompt=""))["statusCode"] == 400
    assert (await _post(w, "imagine", prompt="x", type="TURBO"))["statusCode"] == 400
    assert (await _post(w, "imagine", prompt="bannedword"))["statusCode"] == 400
    assert (await _post(w, "query", taskId="999999"))["statusCode"] == 400
    assert not w.emu.tasks


async def test_blend_describe_auth_and_missing_routes(wire: WireFactory) -> None:
    w = await wire("ohmygpt")
    blend = await _post(w, "blend", base64Array=json.dumps([PIXEL, PIXEL]), dimensions="PORTRAIT")
    assert blend["statusCode"] == 200
    describe = await _post(w, "describe", base64=PIXEL)
    assert describe["statusCode"] == 200
    await w.emu.complete_all()
    described = (await _post(w, "query", taskId=describe["data"]))["data"]
    assert isinstance(described, dict) and described["action"] == "DESCRIBE"
    assert (await _post(w, "blend", base64Array=PIXEL))["statusCode"] == 400
    bad = await w.call("POST", f"{BASE}/imagine", data={"model": "midjourney", "prompt": "x"},
                       auth=False, headers={"Authorization": "Bearer wrong"})
    assert bad.status == 401
    assert (await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": []})).status == 404


async def test_queue_full_is_an_envelope_error(wire: WireFactory) -> None:
    w = await wire("ohmygpt", speed="realtime", concurrency=1, queue_size=0)
    assert (await _post(w, "imagine", prompt="a"))["statusCode"] == 200
    assert (await _post(w, "imagine", prompt="b"))["statusCode"] == 400
