"""Injected failures: HTTP-level faults per route and task-level behaviours per prompt."""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._task import EMU_FAIL_FLAG, EMU_FAIL_REASON, EMU_HANG_FLAG, TaskRule

FaultKind = Literal[
    "status",
    "429",
    "latency",
    "drop_after_read",
    "malformed",
    "truncated",
    "trueai_error_shape",
]
FAULT_KINDS: frozenset[str] = frozenset(FaultKind.__args__)  # type: ignore[attr-defined]

_EFFECT_BY_DEFAULT = frozenset({"latency", "drop_after_read", "malformed", "truncated"})


@dataclass
class FaultRule:
    """One injected HTTP fault.

    A rule matches requests whose route name matches ``route`` (shell-style pattern:
    ``"submit/imagine"``, ``"submit/*"``, ``"task/fetch"``, ``"*"``). It fires on every match,
    or with probability ``rate`` (seeded), or on the ``nth`` matching requests (1-based), and
    at most ``times`` times. The first firing rule decides the response.

    Kinds:
        ``status``: answer HTTP ``status`` (500, 502, 503 ...) with a realistic body.
        ``429``: answer 429 with ``Retry-After: retry_after``.
        ``latency``: wait ``latency`` real seconds, then answer normally.
        ``drop_after_read``: read the body, apply its effect (a submit creates its task),
            then close the connection without answering.
        ``malformed``: answer normally but with invalid JSON.
        ``truncated``: answer normally but cut the JSON body in half.
        ``trueai_error_shape``: 200 with ``{success:false, code:-1, message, timestamp}``.

    ``apply_effect`` overrides whether the request's effect happens before the fault is
    served (default: yes for latency, drop_after_read, malformed and truncated; no for the
    others). ``status`` with ``apply_effect=True`` is a gateway that lost the upstream's answer.
    """

    route: str = "*"
    kind: FaultKind = "status"
    status: int = 500
    rate: float | None = None
    nth: Sequence[int] | None = None
    times: int | None = None
    retry_after: float = 1.0
    latency: float = 0.0
    message: str | None = None
    body: bytes | None = None
    apply_effect: bool | None = None
    matched: int = field(default=0, init=False)
    fired: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(FAULT_KINDS)}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError("FaultRule.rate must be between 0 and 1")

    @property
    def effect_first(self) -> bool:
        """Whether the request is processed before this fault shapes the answer."""
        if self.apply_effect is not None:
            return self.apply_effect
        return self.kind in _EFFECT_BY_DEFAULT

    def _decide(self, rng: random.Random) -> bool:
        self.matched += 1
        if self.times is not None and self.fired >= self.times:
            return False
        if self.nth is not None:
            hit = self.matched in self.nth
        elif self.rate is not None:
            hit = rng.random() < self.rate
        else:
            hit = True
        if hit:
            self.fired += 1
        return hit


class FaultSet:
    """The emulator's fault rules (``emu.faults``), checked in the order they were added."""

    def __init__(self, rng: random.Random) -> None:
        self._rules: list[FaultRule] = []
        self._rng = rng

    def add(self, rule: FaultRule) -> FaultRule:
        """Add ``rule`` and return it (its ``fired`` counter shows how often it hit)."""
        self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Remove ``rule`` if present."""
        if rule in self._rules:
            self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def __iter__(self) -> Iterator[FaultRule]:
        return iter(list(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def pick(self, route: str) -> FaultRule | None:
        """The rule that fires for this request on ``route``, if any."""
        chosen: FaultRule | None = None
        for rule in self._rules:
            if not fnmatch.fnmatchcase(route, rule.route):
                continue
            # Every matching rule counts the request, so nth stays "the nth matching request"
            # even when an earlier rule fired on it.
            if rule._decide(self._rng) and chosen is None:
                chosen = rule
        return chosen


DEFAULT_BANNED_WORDS = ("bannedword", "gore", "nsfw")


class TaskRules:
    """Task-level behaviours (``emu.rules``): hang, fail, banned words.

    Prompt conventions work without Python access too: a prompt containing ``--emu-fail``
    ends in FAILURE, ``--emu-hang`` never finishes.
    """

    def __init__(self, banned_words: Iterable[str] = DEFAULT_BANNED_WORDS) -> None:
        self.banned_words: list[str] = [w.lower() for w in banned_words]
        self._rules: list[TaskRule] = []

    def never_finish(
        self,
        prompt_contains: str | None = None,
        *,
        action: str | None = None,
        at_progress: str | None = "46%",
        times: int | None = None,
    ) -> TaskRule:
        """Matching new tasks stop at ``at_progress`` (None: stuck in SUBMITTED) forever.

        A hung task keeps its concurrency slot, as a stuck Discord job does.
        """
        return self._add(TaskRule("hang", prompt_contains, action, at_progress, "", times))

    def fail(
        self,
        prompt_contains: str | None = None,
        *,
        reason: str = "Emulated failure",
        action: str | None = None,
        at_progress: str | None = "0%",
        times: int | None = None,
    ) -> TaskRule:
        """Matching new tasks end in FAILURE with ``reason`` after reaching ``at_progress``."""
        return self._add(TaskRule("fail", prompt_contains, action, at_progress, reason, times))

    def ban(self, *words: str) -> None:
        """Add banned words: a submit containing one is rejected (code 24 or HTTP 400)."""
        self.banned_words.extend(w.lower() for w in words)

    def clear(self) -> None:
        """Remove hang/fail rules (banned words stay)."""
        self._rules.clear()

    def _add(self, rule: TaskRule) -> TaskRule:
        self._rules.append(rule)
        return rule

    def match(self, prompt: str, action: str) -> TaskRule | None:
        """The rule for a new task, counting it as applied; prompt flags come first."""
        lowered = prompt.lower()
        if EMU_HANG_FLAG in lowered:
            return TaskRule("hang", at_progress="46%")
        if EMU_FAIL_FLAG in lowered:
            return TaskRule("fail", at_progress="0%", reason=EMU_FAIL_REASON)
        for rule in self._rules:
            if rule.matches(prompt, action):
                rule.applied += 1
                return rule
        return None

    def banned_word(self, text: str) -> str | None:
        """The first banned word found in ``text`` (whole-word, case-insensitive)."""
        words = {w.strip(".,;:!?()[]{}\"'") for w in text.lower().split()}
        for banned in self.banned_words:
            if banned in words:
                return banned
        return None
