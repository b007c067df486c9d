"""Real-server behaviours a test switches on: per-user caps, races, relay refusals, dying links.

Each knob reproduces something a real server does (file and line in the servers' source are
named beside it) so a client can be tested against it. All are off by default; set them on
``Emulator(quirks=ServerQuirks(...))`` or later on ``emu.quirks``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ._task import IN_PROGRESS, NOT_START, SUBMITTED, EmuTask

STATE_MAX = 255
"""trueai refuses a ``state`` longer than this (``BaseSubmitDTO.State``)."""

CONCURRENCY_CAP = "并发数已达上限"
QUEUE_CAP = "队列数已达上限"
USER_DAY_QUOTA = "用户今日绘图次数已达上限"
GUEST_DAY_QUOTA = "访客今日绘图次数已达上限"
TOTAL_QUOTA = "总绘图次数已达上限"
STATE_TOO_LONG = "State参数过长"
NO_REMIX = "当前账号不支持 remix，请开启 remix 功能"
NO_ACCOUNT = "无可用的账号实例"
SEED_NOT_FOUND = "未找到 seed"
LINK_GONE = "This content is no longer available."
"""What Discord's CDN answers for an expired attachment link."""


@dataclass
class ServerQuirks:
    """Switchable real-server behaviours (all off by default).

    trueai per-user limits (``SubmitController.NewTask``; new-api relays in front of trueai
    pass the answer through unchanged). Checked in trueai's order: day quota, total quota,
    concurrency, queue. Like trueai, a quota of N refuses once *more than* N tasks exist.

    Attributes:
        user_core_size: Tasks of the user not finished (NOT_START, SUBMITTED, IN_PROGRESS;
            a guest counts IN_PROGRESS only) at or above which a submit is refused with
            "并发数已达上限".
        user_queue_size: Tasks waiting (NOT_START, SUBMITTED) at or above which a submit is
            refused with "队列数已达上限".
        user_day_limit: Daily quota: "用户今日绘图次数已达上限" (guest: "访客今日...").
        user_total_limit: Total quota of a (non-guest) user: "总绘图次数已达上限".
        guest: The caller is a guest (trueai without a user token): quota wording and
            concurrency counting change as trueai's do.
        save_race_window: novicezk with its Redis task store: for this many nominal seconds
            after a task reached SUCCESS, a change/action on it is refused with
            ``save_race_code`` (the store still holds the unfinished copy).
        save_race_code: 4 ("关联任务状态错误") or 3 ("关联任务不存在或已失效").
        relay_duplicate_fetch: new-api after a modal step keeps two rows for one id; fetch
            answers the stale MODAL row (``"stale"``, GORM ``First``) or ``task_no_found``
            (``"not_found"``, newer QuantumNous refusing ambiguous rows).
        relay_error_style: How new-api words its own (distributor) refusals: ``"openai"``
            (``{"error":{"message":"Invalid request, unknown_action:…"}}``), ``"chinese"``
            (the same with the Chinese prefix) or ``"mixed"`` (an older distributor: a
            Midjourney-shaped body and then the OpenAI one in the same response).
        relay_no_channel: new-api has no channel for the model: every submit answers 503.
        relay_account_filter: new-api operator enabled ``accountFilter`` pass-through
            (off by default, as in new-api: the relay deletes it from the body).
        relay_image_host: new-api relays that rewrite image links to their own
            ``/mj/image/<id>`` (new-api, pro365) write them on this host (a wrong
            ServerAddress such as ``http://localhost:3000``) instead of their base URL; the
            emulator's own ``/mj/image/<id>`` still serves the image.
        fetch_as_list: fetch answers a one-element JSON list holding the task (seed 003).
        image_seed_failure: trueai's image-seed lookup fails for an existing task with code
            3 and this message (``"未找到 seed"`` or ``"无可用的账号实例"``).
        image_link_ttl: Image links expire this many nominal seconds after they were handed
            out (None: never). A fetch after expiry hands out a fresh link (Java, trueai);
            new-api relays keep serving the stored one.
        image_link_uses: Image links expire after this many downloads (None: never).
        image_link_status: HTTP status of an expired link (Discord answers 404; some CDNs
            and blocked regions 403).
    """

    user_core_size: int | None = None
    user_queue_size: int | None = None
    user_day_limit: int | None = None
    user_total_limit: int | None = None
    guest: bool = False
    save_race_window: float = 0.0
    save_race_code: Literal[3, 4] = 4
    relay_duplicate_fetch: Literal["stale", "not_found"] = "stale"
    relay_error_style: Literal["openai", "chinese", "mixed"] = "openai"
    relay_no_channel: bool = False
    relay_account_filter: bool = False
    relay_image_host: str | None = None
    fetch_as_list: bool = False
    image_seed_failure: str | None = None
    image_link_ttl: float | None = None
    image_link_uses: int | None = None
    image_link_status: int = 404

    @property
    def links_expire(self) -> bool:
        """Whether image links carry an expiry token."""
        return self.image_link_ttl is not None or self.image_link_uses is not None

    def user_limit(self, by_status: dict[str, int], created: int) -> str | None:
        """The trueai refusal for one more submit, or None; ``created``: tasks stored."""
        if self.user_day_limit is not None and created > self.user_day_limit:
            return GUEST_DAY_QUOTA if self.guest else USER_DAY_QUOTA
        total = self.user_total_limit
        if not self.guest and total is not None and created > total:
            return TOTAL_QUOTA
        waiting = by_status.get(NOT_START, 0) + by_status.get(SUBMITTED, 0)
        running = by_status.get(IN_PROGRESS, 0)
        busy = running if self.guest else running + waiting
        if self.user_core_size is not None and busy >= self.user_core_size:
            return CONCURRENCY_CAP
        if self.user_queue_size is not None and waiting >= self.user_queue_size:
            return QUEUE_CAP
        return None


@dataclass
class _Link:
    issued: float
    uses: int = 0


@dataclass
class LinkBook:
    """Expiry tokens on image links (``?ex=<token>``), the way Discord signs its CDN links."""

    speed: float
    _links: dict[str, _Link] = field(default_factory=dict)
    _next: int = 0

    def mint(self, url: str, now: float) -> str:
        """``url`` (any old token stripped) with a fresh token issued at ``now``."""
        self._next += 1
        token = f"{self._next:08x}"
        self._links[token] = _Link(now)
        return f"{url.split('?ex=', 1)[0]}?ex={token}"

    def expired(self, token: str, now: float, q: ServerQuirks) -> bool:
        """Whether the link with ``token`` no longer serves under the knobs ``q``."""
        link = self._links.get(token)
        if link is None:
            return False
        if q.image_link_uses is not None and link.uses >= q.image_link_uses:
            return True
        return q.image_link_ttl is not None and (now - link.issued) * self.speed >= q.image_link_ttl

    def use(self, token: str) -> None:
        """Count one download of the link with ``token``."""
        link = self._links.get(token)
        if link is not None:
            link.uses += 1

    def sign(self, task: EmuTask, now: float) -> None:
        """Put fresh tokens on every image link of ``task``."""
        if task.image_url:
            task.image_url = self.mint(task.image_url, now)
        task.image_urls = [self.mint(u, now) for u in task.image_urls]

    def renew(self, task: EmuTask, now: float, q: ServerQuirks) -> bool:
        """Re-sign ``task``'s links if any has expired; True when they changed."""
        if not any(self.url_expired(u, now, q) for u in (task.image_url, *task.image_urls)):
            return False
        self.sign(task, now)
        return True

    def gone(self, token: str | None, now: float, q: ServerQuirks) -> bool:
        """Whether the link with ``token`` is dead; counts one download when it is not."""
        if token is None:
            return False
        if self.expired(token, now, q):
            return True
        self.use(token)
        return False

    def url_expired(self, url: str | None, now: float, q: ServerQuirks) -> bool:
        """Whether ``url`` carries a token that has expired."""
        if not url or "?ex=" not in url:
            return False
        return self.expired(url.split("?ex=", 1)[1], now, q)


def token_of(query: Any) -> str | None:
    """The expiry token of a request's query, if any."""
    token = query.get("ex")
    return token if isinstance(token, str) else None
