"""Injected HTTP faults: each kind, scripted and seeded selection, effects."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from emu_support import WireFactory

from midjourney_async.testing import FaultRule


async def test_status_fault_on_nth_requests(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox")
    rule = w.emu.faults.add(FaultRule("task/fetch", "status", status=503, nth=[1, 3]))
    statuses = [(await w.fetch(tid)).status for _ in range(4)]
    assert statuses == [503, 200, 503, 200]
    assert (rule.matched, rule.fired) == (4, 2)
    assert w.emu.stats.faults == {"status": 2}


async def test_gateway_errors_look_like_nginx(wire: WireFactory) -> None:
    w = await wire("new-api")
    w.emu.add_fault("task/fetch", "status", status=502)
    r = await w.fetch("1")
    assert r.status == 502
    assert r.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in r.text


async def test_500_uses_each_familys_error_shape(wire: WireFactory) -> None:
    t = await wire("trueai")
    t.emu.add_fault("submit/*", "status", status=500)
    body = (await t.submit("imagine", prompt="x")).json()
    assert (body["success"], body["code"]) == (False, -1)
    assert not t.emu.tasks  # no effect: the request was refused before processing


async def test_429_carries_retry_after(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    w.emu.faults.add(FaultRule("submit/imagine", "429", retry_after=2, times=1))
    r = await w.submit("imagine", prompt="fox")
    assert (r.status, r.headers["Retry-After"], r.body) == (429, "2", b"")
    assert (await w.submit("imagine", prompt="fox")).status == 200
    assert w.emu.stats.submits_by_prompt["fox"] == 1
    w.emu.faults.add(FaultRule("submit/imagine", "429", retry_after=0.25, times=1))
    assert (await w.submit("imagine", prompt="y")).headers["Retry-After"] == "0.25"


async def test_latency_then_normal_answer(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    rule = w.emu.faults.add(FaultRule("submit/imagine", "latency", latency=0.05))
    assert (await w.submit("imagine", prompt="fox")).json()["code"] == 1
    assert rule.fired == 1


async def test_latency_beyond_the_client_timeout(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    w.emu.faults.add(FaultRule("task/fetch", "latency", latency=1.0))
    with pytest.raises(asyncio.TimeoutError):
        async with w.http.get(
            f"{w.emu.base_url}/mj/task/1/fetch", headers=w.headers,
            timeout=aiohttp.ClientTimeout(total=0.05),
        ) as r:
            await r.read()


async def test_drop_after_read_creates_the_task_then_hangs_up(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    w.emu.faults.add(FaultRule("submit/imagine", "drop_after_read", nth=[1]))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await w.submit("imagine", prompt="paid once")
    assert w.emu.stats.submits_by_prompt["paid once"] == 1
    assert len(w.emu.tasks) == 1
    assert (await w.submit("imagine", prompt="next")).status == 200


async def test_malformed_and_truncated_json_still_apply_the_effect(wire: WireFactory) -> None:
    w = await wire("trueai")
    w.emu.faults.add(FaultRule("submit/imagine", "malformed", nth=[1]))
    w.emu.faults.add(FaultRule("submit/imagine", "truncated", nth=[2]))
    bad = await w.submit("imagine", prompt="a")
    cut = await w.submit("imagine", prompt="b")
    for r in (bad, cut):
        assert r.status == 200
        with pytest.raises(json.JSONDecodeError):
            r.json()
    assert cut.text.startswith('{"code":1')
    assert len(w.emu.tasks) == 2


async def test_status_with_effect_is_a_gateway_that_lost_the_answer(wire: WireFactory) -> None:
    w = await wire("new-api")
    w.emu.faults.add(FaultRule("submit/imagine", "status", status=504, apply_effect=True))
    assert (await w.submit("imagine", prompt="fox")).status == 504
    assert w.emu.stats.submits_by_prompt["fox"] == 1


async def test_rate_is_seeded(wire: WireFactory) -> None:
    async def pattern(seed: int) -> list[int]:
        w = await wire("midjourney-proxy-plus", seed=seed)
        w.emu.faults.add(FaultRule("task/fetch", "status", status=500, rate=0.5))
        return [(await w.fetch("1")).status for _ in range(24)]

    a, b = await pattern(3), await pattern(3)
    assert a == b
    assert 0 < a.count(500) < 24


async def test_times_limit_wildcards_and_removal(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    rule = w.emu.faults.add(FaultRule("*", "status", status=503, times=2))
    assert (await w.fetch("1")).status == 503
    assert (await w.submit("imagine", prompt="x")).status == 503
    assert (await w.fetch("1")).status == 200
    w.emu.faults.remove(rule)
    w.emu.faults.add(FaultRule("submit/*", "status", status=500))
    assert (await w.fetch("1")).status == 200
    assert (await w.submit("blend")).status == 500
    w.emu.faults.clear()
    assert len(w.emu.faults) == 0


async def test_file_downloads_can_fail(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    grid = await w.finished(await w.imagine("fox"))
    w.emu.faults.add(FaultRule("files", "status", status=503, nth=[1]))
    assert (await w.call("GET", grid["imageUrl"], auth=False)).status == 503
    assert (await w.call("GET", grid["imageUrl"], auth=False)).status == 200


async def test_internal_endpoints_are_never_faulted(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    w.emu.faults.add(FaultRule("*", "status", status=500))
    assert (await w.call("GET", "/_emulator/health", auth=False)).status == 200


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="kind"):
        FaultRule("*", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        FaultRule("*", "status", rate=2)
