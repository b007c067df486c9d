"""The chaos suite: 500 tasks through every fault the emulator can inject.

Faults on every route (seeded, so a run is repeatable): 10% 5xx, 10% 429 with
Retry-After, connections dropped after the request was read, malformed and
truncated bodies; tasks that never finish; webhooks dropped, duplicated and
reordered. The suite then proves, from the emulator's own counters:

* every wait ended as SUCCESS or a typed error within its deadline (0 hung);
* no prompt was created twice (0 double submits);
* every task the server created is known to the client (0 lost), except the
  submits whose answer never arrived, which the library reports as ambiguous
  (``TransportError(maybe_received=True)`` or an unreadable answer) and never
  re-sends: those are counted on their own;
* the poller is healthy afterwards: a fresh task still completes.

Run ``pytest tests/chaos -s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from midjourney_async import (
    AuthenticationError,
    DecodeError,
    HTTPStatusError,
    MidjourneyError,
    MidjourneySession,
    RetryPolicy,
    SubmitRejected,
    TaskFailed,
    TaskHandle,
    TaskStatus,
    TaskTimeout,
    TransportError,
    WebhookConfig,
)
from midjourney_async.testing import Emulator, FaultRule

KEY = "sk-CHAOS-7f3a9d1c-SECRET"
N_TASKS = 500
N_HUNG = 10  # prompts that never finish on the server
N_FAIL = 10  # prompts that end in FAILURE
DEADLINE = 6.0  # seconds each wait may take
SLACK = 3.0  # a wait that outlives DEADLINE + SLACK counts as hung

pytestmark = pytest.mark.timeout(90)


def chaos_faults(emu: Emulator) -> None:
    """The fault mix, applied to every API route (submits and reads alike)."""
    for rule in (
        FaultRule("*", "status", status=500, rate=0.04),
        FaultRule("*", "status", status=502, rate=0.03),
        FaultRule("*", "status", status=503, rate=0.03),
        FaultRule("*", "429", rate=0.10, retry_after=0.02),
        FaultRule("*", "drop_after_read", rate=0.03),
        FaultRule("*", "malformed", rate=0.02),
        FaultRule("*", "truncated", rate=0.02),
    ):
        emu.faults.add(rule)
    emu.webhooks.drop_rate = 0.2
    emu.webhooks.duplicate_rate = 0.2
    emu.webhooks.reorder = 0.3


@dataclass
class Figures:
    submitted: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    ambiguous: int = 0
    lost: int = 0
    double_submits: int = 0
    hung: int = 0
    untyped: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def show(self, title: str, extra: dict[str, object]) -> None:
        print(f"\n== {title} ==")
        print(f"tasks attempted:       {self.submitted}")
        for name, count in sorted(self.outcomes.items()):
            print(f"  {name:<22} {count}")
        print(f"ambiguous submits:     {self.ambiguous} (server created, answer lost; not re-sent)")
        print(f"lost ids:              {self.lost}")
        print(f"double submits:        {self.double_submits}")
        print(f"hung waits:            {self.hung}")
        print(f"slowest wait:          {self.slowest:.2f} s (deadline {DEADLINE:g} s)")
        for name, value in extra.items():
            print(f"{name + ':':<22} {value}")


def prompt_of(i: int) -> str:
    if i < N_HUNG:
        return f"chaos {i} stuck forever"
    if i < N_HUNG + N_FAIL:
        return f"chaos {i} --emu-fail"
    return f"chaos {i} a fox in the snow"


class Run:
    """One chaos run: an emulator with faults and a session that rides them out."""

    def __init__(self, *, webhooks: bool, seed: int) -> None:
        self.webhooks = webhooks
        self.seed = seed
        self.figures = Figures()
        self.handles: dict[str, TaskHandle] = {}
        self.submit_errors: dict[str, MidjourneyError] = {}

    async def submit(self, mj: MidjourneySession, i: int) -> None:
        prompt = prompt_of(i)
        try:
            self.handles[prompt] = await mj.imagine(prompt, state=f"chaos-{i}")
        except MidjourneyError as exc:
            self.submit_errors[prompt] = exc
        except Exception as exc:  # anything untyped is a failure of the suite
            self.figures.untyped.append(f"submit {prompt!r}: {exc!r}")

    async def wait(self, handle: TaskHandle) -> str:
        started = time.monotonic()
        try:
            try:
                await asyncio.wait_for(handle.wait(DEADLINE), DEADLINE + SLACK)
                return "success"
            finally:
                self.figures.slowest = max(self.figures.slowest, time.monotonic() - started)
        except asyncio.TimeoutError as exc:
            if isinstance(exc, TaskTimeout):
                return "timeout (hung task)"
            self.figures.hung += 1
            return "HUNG"
        except TaskFailed:
            return "task failed"
        except MidjourneyError as exc:
            return f"wait error {type(exc).__name__}"
        except Exception as exc:
            self.figures.untyped.append(f"wait {handle.id}: {exc!r}")
            return "UNTYPED"

    async def go(self, emu: Emulator, mj: MidjourneySession) -> None:
        fig = self.figures
        fig.submitted = N_TASKS
        await asyncio.gather(*(self.submit(mj, i) for i in range(N_TASKS)))
        results = await asyncio.gather(*(self.wait(h) for h in self.handles.values()))
        fig.outcomes.update(results)

        created: dict[str, list[str]] = {}
        for task in emu.tasks.values():
            created.setdefault(task.prompt, []).append(task.id)
        for prompt, exc in self.submit_errors.items():
            made = created.get(prompt, [])
            ambiguous = (isinstance(exc, TransportError) and exc.maybe_received) or isinstance(
                exc, DecodeError
            )
            if made and ambiguous:
                fig.ambiguous += 1
                fig.outcomes["submit ambiguous"] += 1
            elif made:
                # The server made a task the library told the user it had not.
                fig.lost += len(made)
                fig.outcomes[f"LOST after {type(exc).__name__}"] += 1
            else:
                kind = (
                    "status"
                    if isinstance(exc, HTTPStatusError)
                    else "rejected"
                    if isinstance(exc, SubmitRejected)
                    else type(exc).__name__
                )
                fig.outcomes[f"submit refused ({kind})"] += 1
        for prompt, handle in self.handles.items():
            if created.get(prompt) != [handle.id]:
                fig.lost += 1
        fig.double_submits = sum(
            1 for count in emu.stats.submits_by_prompt.values() if count > 1
        )


@pytest.mark.parametrize("webhooks", [False, True], ids=["polling", "webhooks"])
async def test_chaos_500_tasks(webhooks: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="midjourney_async")
    run = Run(webhooks=webhooks, seed=7)
    options: dict[str, object] = {
        "retry": RetryPolicy(max_tries=6, max_time=10, base_delay=0.01, max_delay=0.1),
        "poll_interval": 0.05,
        "timeout": 5.0,
        "not_found_grace": 1.0,
    }
    if webhooks:
        options["webhook"] = WebhookConfig(poll_interval=0.25)
    async with Emulator(
        speed=50.0,
        seed=7,
        api_key=KEY,
        concurrency=None,
        queue_size=None,
        notify_hook_enabled=webhooks,
    ) as emu:
        emu.rules.never_finish("stuck")
        chaos_faults(emu)
        async with MidjourneySession(emu.base_url, KEY, **options) as mj:  # type: ignore[arg-type]
            await run.go(emu, mj)
            fired = {str(k): v for k, v in sorted(emu.stats.faults.items())}
            # The tracker is healthy afterwards: no faults, one more task goes through.
            emu.faults.clear()
            emu.webhooks.drop_rate = emu.webhooks.duplicate_rate = emu.webhooks.reorder = 0.0
            after = await (await mj.imagine("after the storm")).wait(timeout=10)
            healthy = after.status is TaskStatus.SUCCESS and mj._tracker.running
            pending = mj.pending
            receiver = mj._webhook
            hook_stats = receiver.stats if receiver is not None else None
    fig = run.figures
    extra: dict[str, object] = {
        "faults fired": fired,
        "tracker": f"ticks={mj.tracker_stats.ticks} errors={mj.tracker_stats.errors} "
        f"rate_limited={mj.tracker_stats.rate_limited} "
        f"dropped={mj.tracker_stats.snapshots_dropped}",
        "healthy after": healthy,
    }
    if hook_stats is not None:
        extra["webhook receiver"] = hook_stats
        extra["webhooks (emulator)"] = (
            f"sent={emu.stats.webhooks_sent} dropped={emu.stats.webhooks_dropped} "
            f"duplicated={emu.stats.webhooks_duplicated} "
            f"reordered={emu.stats.webhooks_reordered}"
        )
    fig.show(f"chaos ({'webhooks' if webhooks else 'polling'})", extra)

    assert fig.untyped == []
    assert fig.hung == 0
    assert fig.lost == 0
    assert fig.double_submits == 0
    assert max(emu.stats.submits_by_prompt.values()) == 1
    assert fig.slowest <= DEADLINE + SLACK
    assert sum(fig.outcomes.values()) == N_TASKS
    # Every kind of fault really happened.
    for kind in ("status", "429", "drop_after_read", "malformed", "truncated"):
        assert fired.get(kind, 0) > 0, kind
    # The stuck prompts ended as timeouts, the doomed ones as failures, the rest succeeded
    # unless their own submit was refused.
    assert fig.outcomes["timeout (hung task)"] <= N_HUNG
    assert fig.outcomes["success"] > N_TASKS * 0.6
    assert healthy and pending == 0
    if webhooks:
        assert emu.stats.webhooks_duplicated > 0 and emu.stats.webhooks_reordered > 0
        assert emu.stats.webhooks_dropped > 0
    # No log line of the whole storm carries the key.
    assert all(KEY not in r.getMessage() for r in caplog.records)
    assert len(caplog.records) > 0


async def test_chaos_auth_failure_mid_wait_keeps_every_paid_task(tmp_path: Path) -> None:
    """A key rejected while 100 tasks run ends every wait at once with a typed
    error, finishes no journal row, and a later session resumes all of them."""
    journal = tmp_path / "chaos.db"
    n = 100
    async with Emulator(speed=50.0, seed=11, api_key=KEY, concurrency=None,
                        queue_size=None) as emu:
        emu.rules.never_finish("chaos")
        async with MidjourneySession(emu.base_url, KEY, journal=journal,
                                     poll_interval=0.05, not_found_grace=1.0) as mj:
            handles = await asyncio.gather(*(mj.imagine(f"chaos auth {i}") for i in range(n)))
            # The key is revoked while every task still runs on the server.
            emu.faults.add(FaultRule("task/*", "status", status=401))
            outcomes = await asyncio.gather(
                *(asyncio.wait_for(h.wait(timeout=30), 10) for h in handles),
                return_exceptions=True,
            )
        emu.faults.clear()
        async with MidjourneySession(emu.base_url, KEY, journal=journal,
                                     poll_interval=0.05) as again:
            resumed = await again.resume()
    assert all(isinstance(o, AuthenticationError) for o in outcomes), outcomes[:3]
    assert sorted(h.id for h in resumed) == sorted(h.id for h in handles)
    assert max(emu.stats.submits_by_prompt.values()) == 1


async def test_chaos_a_day_long_retry_after_never_stalls_the_waits() -> None:
    """list-by-condition answers 429 with Retry-After: 86400: the poller pauses
    at most until just before the nearest deadline, asks again, and every wait
    ends with its task instead of timing out with no request sent."""
    async with Emulator(speed=50.0, seed=5, api_key=KEY, concurrency=None,
                        queue_size=None) as emu:
        emu.faults.add(FaultRule("task/list*", "429", times=1, retry_after=86400))
        async with MidjourneySession(emu.base_url, KEY, poll_interval=0.05,
                                     retry=RetryPolicy.never()) as mj:
            handles = await asyncio.gather(*(mj.imagine(f"slow lane {i}") for i in range(50)))
            tasks = await asyncio.wait_for(mj.wait_all(handles, timeout=3), 6)
            limited = mj.tracker_stats.rate_limited
    assert [t.status for t in tasks] == [TaskStatus.SUCCESS] * 50
    assert limited > 0, "the 429s really happened"
