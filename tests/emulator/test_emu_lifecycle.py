"""Task lifecycle, queueing, fast-forwarding, task rules and determinism."""

from __future__ import annotations

import pytest
from emu_support import EmuFactory, WireFactory

GRID_HISTORY = [
    ("NOT_START", None),
    ("SUBMITTED", "0%"),
    ("IN_PROGRESS", "0%"),
    ("IN_PROGRESS", "15%"),
    ("IN_PROGRESS", "31%"),
    ("IN_PROGRESS", "46%"),
    ("IN_PROGRESS", "62%"),
    ("IN_PROGRESS", "78%"),
    ("IN_PROGRESS", "93%"),
    ("SUCCESS", "100%"),
]


async def test_instant_imagine_passes_through_every_state(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox")
    task = await w.emu.wait_for(tid, timeout=5)  # instant speed: real timers, no fast-forward
    assert task.history == GRID_HISTORY
    fetched = await w.task(tid)
    assert (fetched["status"], fetched["progress"]) == ("SUCCESS", "100%")
    assert fetched["submitTime"] <= fetched["startTime"] <= fetched["finishTime"]


async def test_a_poller_sees_each_step_when_the_clock_is_stepped(wire: WireFactory) -> None:
    w = await wire("trueai", speed="realtime")
    tid = await w.imagine("fox")
    first = await w.task(tid)
    assert (first["status"], first["progress"], first["startTime"]) == ("NOT_START", None, None)
    seen = [(first["status"], first["progress"])]
    for _ in range(200):
        w.emu.advance(0.5)  # nominal seconds; steps are >= 0.8 s apart
        task = await w.task(tid)
        state = (task["status"], task["progress"])
        if state != seen[-1]:
            seen.append(state)
        if task["status"] == "SUCCESS":
            break
    assert seen == GRID_HISTORY


async def test_progress_image_is_a_preview_until_success(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime")
    tid = await w.imagine("fox")
    w.emu.advance(12)
    running = await w.task(tid)
    assert running["status"] == "IN_PROGRESS"
    assert "?preview=" in running["imageUrl"]
    assert running["buttons"] == []
    done = await w.finished(tid)
    assert "?preview" not in done["imageUrl"]


async def test_queue_answers_22_with_position_then_queue_full(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime", concurrency=3, queue_size=10)
    answers = [(await w.submit("imagine", prompt=f"p{i}")).json() for i in range(14)]
    assert [a["code"] for a in answers] == [1, 1, 1, *[22] * 10, 23]
    assert [a["properties"]["numberOfQueues"] for a in answers[3:13]] == list(range(10))
    assert (w.emu.running, w.emu.waiting) == (3, 10)
    queued = await w.task(answers[3]["result"])
    assert (queued["status"], queued["progress"]) == ("NOT_START", None)
    assert await w.emu.complete_all() == 13
    statuses = {w.emu.tasks[a["result"]].status for a in answers[:13]}
    assert statuses == {"SUCCESS"}
    assert w.emu.stats.submits_by_code == {1: 3, 22: 10, 23: 1}


async def test_unlimited_concurrency_and_queue(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime", concurrency=None, queue_size=None)
    codes = {(await w.submit("imagine", prompt=f"p{i}")).json()["code"] for i in range(30)}
    assert codes == {1}
    assert w.emu.running == 30


async def test_a_freed_slot_starts_the_next_queued_task(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", speed="realtime", concurrency=1, queue_size=5)
    first = await w.imagine("first")
    second = await w.imagine("second")
    assert w.emu.tasks[second].status == "NOT_START"
    w.emu.advance(60)
    assert w.emu.tasks[first].status == "SUCCESS"
    assert w.emu.tasks[second].status != "NOT_START"


@pytest.mark.parametrize("profile", ["midjourney-proxy-plus", "trueai"])
async def test_emu_fail_flag_and_rule(wire: WireFactory, profile: str) -> None:
    w = await wire(profile)
    flagged = await w.finished(await w.imagine("boom --emu-fail"))
    assert (flagged["status"], flagged["progress"]) == ("FAILURE", "")
    assert "--emu-fail" in flagged["failReason"]
    w.emu.rules.fail("cursed", reason="Job action restricted", at_progress="31%")
    tid = await w.imagine("a cursed crown")
    failed = await w.finished(tid)
    assert (failed["status"], failed["failReason"]) == ("FAILURE", "Job action restricted")
    assert ("IN_PROGRESS", "31%") in w.emu.tasks[tid].history
    assert ("IN_PROGRESS", "46%") not in w.emu.tasks[tid].history


async def test_hang_flag_rule_and_stuck_submitted(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", concurrency=None)
    flagged = await w.imagine("stuck --emu-hang")
    w.emu.rules.never_finish("frozen", at_progress="62%")
    ruled = await w.imagine("frozen lake")
    w.emu.rules.never_finish("limbo", at_progress=None, times=1)
    limbo, later = await w.imagine("limbo one"), await w.imagine("limbo two")
    assert await w.emu.complete_all() == 1
    assert (w.emu.tasks[flagged].status, w.emu.tasks[flagged].progress) == ("IN_PROGRESS", "46%")
    assert (w.emu.tasks[ruled].status, w.emu.tasks[ruled].progress) == ("IN_PROGRESS", "62%")
    assert w.emu.tasks[limbo].status == "SUBMITTED"
    assert w.emu.tasks[later].status == "SUCCESS"  # times=1: only the first match hangs
    w.emu.advance(3600)
    assert w.emu.tasks[flagged].status == "IN_PROGRESS"


async def test_hung_tasks_hold_their_slot(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus", concurrency=1, queue_size=5)
    await w.imagine("stuck --emu-hang")
    behind = await w.imagine("behind")
    await w.emu.complete_all()
    assert w.emu.tasks[behind].status == "NOT_START"
    w.emu.cancel(next(iter(w.emu.tasks)))
    await w.emu.complete_all()
    assert w.emu.tasks[behind].status == "SUCCESS"


async def test_forget_makes_the_server_lose_a_task(wire: WireFactory) -> None:
    w = await wire("midjourney-proxy-plus")
    tid = await w.imagine("fox")
    w.emu.forget(tid)
    assert (await w.fetch(tid)).body == b""


async def test_same_seed_same_ids_images_and_order(wire: WireFactory) -> None:
    async def run(seed: int) -> tuple[list[str], bytes, list[str]]:
        w = await wire("trueai", seed=seed)
        ids = [await w.imagine(f"prompt {i}") for i in range(6)]
        await w.emu.complete_all()
        grid = await w.task(ids[0])
        png = (await w.call("GET", grid["imageUrl"], auth=False)).body
        listed = await w.call("POST", "/mj/task/list-by-condition", json_body={"ids": ids})
        return ids, png, [t["id"] for t in listed.json()]

    a, b, c = await run(7), await run(7), await run(8)
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    assert a[2] != a[0]  # the answer is shuffled...
    assert sorted(a[2]) == sorted(a[0])  # ...but complete


async def test_task_json_helper_matches_fetch(wire: WireFactory) -> None:
    # Real-time speed: no step falls due between the two reads (instant speed moves in ms).
    w = await wire("midjourney-proxy-plus", speed="realtime")
    tid = await w.imagine("fox")
    assert w.emu.task_json(tid) == await w.task(tid)


async def test_constructor_validation(emulators: EmuFactory) -> None:
    from midjourney_async.testing import Emulator

    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        Emulator(host="0.0.0.0")
    with pytest.raises(ValueError, match="unknown emulator profile"):
        Emulator("midjourney")
    with pytest.raises(ValueError, match="speed"):
        Emulator(speed="warp")
    with pytest.raises(ValueError, match="speed"):
        Emulator(speed=0)
    with pytest.raises(RuntimeError, match="not started"):
        _ = Emulator().base_url
    emu = await emulators(speed="demo")
    assert emu.speed == 10.0
