"""The emulator's internal task record and the timing plans tasks move through."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from ._buttons import Button

NOT_START = "NOT_START"
SUBMITTED = "SUBMITTED"
IN_PROGRESS = "IN_PROGRESS"
MODAL = "MODAL"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
TERMINAL = frozenset({SUCCESS, FAILURE})

Output = Literal["grid", "upscale", "single", "describe", "shorten", "video", "edits"]
PlanKind = Literal[
    "imagine", "upscale", "upscale_hd", "describe", "shorten", "video", "edits", "swap"
]

GRID_STEPS = ("0%", "15%", "31%", "46%", "62%", "78%", "93%")


@dataclass(frozen=True, slots=True)
class Step:
    """One state change: ``delay`` nominal seconds after the previous one."""

    delay: float
    status: str
    progress: str | None
    fail_reason: str | None = None


def _plan(start_delay: float, first_edit: float, steps: tuple[str, ...], step: float,
          finish: float) -> list[Step]:
    plan = [Step(start_delay, SUBMITTED, "0%"), Step(first_edit, IN_PROGRESS, steps[0])]
    plan += [Step(step, IN_PROGRESS, p) for p in steps[1:]]
    plan.append(Step(finish, SUCCESS, "100%"))
    return plan


# Nominal seconds at speed 1.0, from the timings in reference/proxy-api.md section 7: a fast
# imagine takes ~40 s with Discord progress edits every ~6 s; upscales finish in seconds.
_PLANS: dict[str, list[Step]] = {
    "imagine": _plan(1.2, 3.0, GRID_STEPS, 5.5, 3.0),
    "upscale": _plan(1.2, 1.0, ("0%",), 1.0, 1.5),
    "upscale_hd": _plan(1.2, 2.0, ("0%", "31%", "62%", "93%"), 4.0, 2.0),
    "describe": _plan(1.2, 1.5, ("0%",), 1.0, 2.5),
    "shorten": _plan(1.2, 1.0, ("0%",), 1.0, 2.0),
    "video": _plan(1.2, 4.0, ("0%", "15%", "31%", "46%", "62%", "78%", "93%"), 10.0, 6.0),
    "edits": _plan(1.2, 3.0, ("0%", "31%", "62%", "93%"), 5.0, 3.0),
    "swap": _plan(1.2, 2.0, ("0%", "50%"), 3.0, 3.0),
}

RELAX_EXTRA_WAIT = 30.0
"""Extra nominal seconds a relax-mode job waits before Discord picks it up."""


def progress_value(progress: str | None) -> int:
    """Numeric value of a progress string (``"46%"`` -> 46; anything else -> -1)."""
    if not progress or not progress.endswith("%"):
        return -1
    try:
        return int(progress[:-1])
    except ValueError:
        return -1


@dataclass
class TaskRule:
    """A task-level behaviour applied to tasks whose prompt matches (see :class:`TaskRules`)."""

    kind: Literal["hang", "fail"]
    prompt_contains: str | None = None
    action: str | None = None
    at_progress: str | None = "46%"
    reason: str = ""
    times: int | None = None
    applied: int = 0

    def matches(self, prompt: str, action: str) -> bool:
        """True when this rule applies to a new task with ``prompt`` and ``action``."""
        if self.times is not None and self.applied >= self.times:
            return False
        if self.action is not None and self.action.upper() != action.upper():
            return False
        needle = self.prompt_contains
        return needle is None or needle.lower() in prompt.lower()


EMU_FAIL_FLAG = "--emu-fail"
EMU_HANG_FLAG = "--emu-hang"
EMU_FAIL_REASON = "Emulated failure requested by --emu-fail"


def apply_rule(plan: list[Step], rule: TaskRule | None) -> list[Step]:
    """Cut ``plan`` so the task hangs or fails where ``rule`` says; unchanged without a rule."""
    if rule is None:
        return plan
    target = progress_value(rule.at_progress)
    # Keep SUBMITTED, then every IN_PROGRESS step at or below the target progress.
    keep = [plan[0]]
    if rule.at_progress is not None:
        for s in plan[1:]:
            if s.status != IN_PROGRESS or progress_value(s.progress) > target:
                break
            keep.append(s)
    if rule.kind == "hang":
        return keep
    return [*keep, Step(plan[-1].delay, FAILURE, "", rule.reason or "Emulated failure")]


def build_plan(kind: PlanKind, rng: random.Random, *, relax: bool = False) -> list[Step]:
    """The step list for a task of ``kind`` with seeded +/-20% jitter on every delay."""
    out = []
    for i, s in enumerate(_PLANS[kind]):
        delay = s.delay * rng.uniform(0.8, 1.2)
        if i == 0 and relax:
            delay += RELAX_EXTRA_WAIT
        out.append(Step(delay, s.status, s.progress, s.fail_reason))
    return out


@dataclass(eq=False, slots=True)
class EmuTask:
    """One emulated task. Tests may read it; only the emulator changes it.

    ``history`` lists every ``(status, progress)`` the task went through, which lets a test
    prove the lifecycle without racing a poller against the clock.
    """

    id: str
    action: str
    relay_action: str
    plan_kind: PlanKind
    output: Output
    prompt: str
    submit_time: int
    job_hash: str
    image_key: str
    int_id: int | None = None
    prompt_en: str = ""
    final_prompt: str = ""
    description: str = "Submit success"
    state: str = ""
    custom_id: str = ""
    bot_type: str = "MID_JOURNEY"
    """``NIJI_JOURNEY`` when the submit asked for the niji bot (``botType``)."""
    account_filter: dict[str, Any] | None = None
    """The account filter the server received (after a relay dropped it or not)."""
    mode: str = "FAST"
    status: str = NOT_START
    progress: str | None = None
    start_time: int | None = None
    finish_time: int | None = None
    fail_reason: str | None = None
    image_url: str | None = None
    image_urls: list[str] = field(default_factory=list)
    video_urls: list[str] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    notify_hook: str | None = None
    parent_id: str | None = None
    tile_index: int = 0
    """For upscales: which tile (1-4) of the parent grid ``image_key`` this is."""
    size: tuple[int, int] = (512, 512)
    modal_kind: str | None = None
    """Set while the task waits in MODAL: what pressing the modal submit will run."""
    planned_modal_prompt: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    history: list[tuple[str, str | None]] = field(default_factory=list)
    plan: list[Step] = field(default_factory=list)
    step_index: int = 0
    generation: int = 0
    holds_slot: bool = False
    hung: bool = False
    version: int = 0
    seed_digits: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True once the task reached SUCCESS or FAILURE."""
        return self.status in TERMINAL
