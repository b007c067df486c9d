"""Counters in Python and over HTTP; health."""

from __future__ import annotations

from emu_support import WireFactory


async def test_counters_prove_what_a_client_did(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    ids = [await w.imagine("x"), await w.imagine("y")]
    await w.submit("imagine", prompt="bannedword")
    await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": [*ids, "nope"]})
    await w.fetch(ids[0])
    stats = w.emu.stats
    assert stats.requests["submit/imagine"] == 3
    assert stats.requests["task/list-by-condition"] == 1
    assert stats.requests["task/fetch"] == 1
    assert stats.requests["never/called"] == 0
    assert stats.submits_by_prompt == {"x": 1, "y": 1}
    assert stats.submit_attempts_by_prompt["bannedword"] == 1
    assert stats.submits_by_code == {1: 2, 24: 1}
    assert (stats.list_ids, stats.fetch_ids, stats.tasks_created) == (3, 1, 2)
    await w.emu.complete_all()
    assert stats.tasks_by_status["SUCCESS"] == 2
    stats.reset()
    assert stats.requests["submit/imagine"] == 0 and stats.submits_by_prompt["x"] == 0
    assert stats.tasks_by_status["SUCCESS"] == 2  # a live gauge survives reset


async def test_stats_and_health_over_http_without_auth(wire: WireFactory) -> None:
    w = await wire("trueai")
    tid = await w.imagine("fox")
    stats = (await w.call("GET", "/_emulator/stats", auth=False)).json()
    assert stats["requests"] == {"submit/imagine": 1}
    assert stats["submits_by_prompt"] == {"fox": 1}
    health = (await w.call("GET", "/_emulator/health", auth=False)).json()
    assert health["status"] == "ok" and health["profile"] == "trueai"
    assert health["tasks"] == 1
    assert tid in w.emu.tasks
    assert (await w.call("GET", "/_emulator/nope", auth=False)).status == 404


async def test_responses_and_auth_failures_are_counted(wire: WireFactory) -> None:
    w = await wire("new-api")
    await w.call("GET", "/mj/task/1/fetch", auth=False)
    await w.fetch("1")
    assert w.emu.stats.auth_failures == 1
    assert w.emu.stats.responses == {401: 1, 400: 1}


async def test_most_in_flight_is_the_peak_of_running_and_queued_tasks(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime", concurrency=2, queue_size=1)
    first, _ = await w.imagine("a"), await w.imagine("b")
    await w.imagine("c")  # queued
    assert (await w.submit("imagine", prompt="d")).json()["code"] == 23  # full: not held
    stats = w.emu.stats
    assert stats.most_in_flight == 3
    w.emu.cancel(first)  # the queued one starts: still 2 running, none queued
    await w.imagine("e")
    assert (w.emu.running, w.emu.waiting, stats.most_in_flight) == (2, 1, 3)
    await w.emu.complete_all()
    await w.imagine("f")
    assert stats.most_in_flight == 3  # a peak, not a gauge
    stats.reset()
    await w.imagine("g")
    assert stats.most_in_flight == 2  # f still runs, and g
    served = (await w.call("GET", "/_emulator/stats", auth=False)).json()
    assert served["most_in_flight"] == 2
