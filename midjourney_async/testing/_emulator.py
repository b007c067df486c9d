"""The :class:`Emulator`: lifecycle, task bookkeeping, HTTP dispatch, test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from . import _http
from ._engine import Admission, Engine
from ._faults import DEFAULT_BANNED_WORDS, FaultKind, FaultRule, FaultSet, TaskRules
from ._files import FileSpec, FileStore, file_bytes
from ._ohmygpt_api import OhmygptApi
from ._outputs import echoed_prompt, finish_outputs, grid_url
from ._profiles import Profile, get_profile
from ._proxy_api import ProxyApi
from ._quirks import LinkBook, ServerQuirks
from ._relay_cache import RelayCache
from ._render import ohmygpt_dict, proxy_dict, relay_dict
from ._server import HttpFront
from ._stats import EmulatorStats
from ._task import (
    FAILURE,
    IN_PROGRESS,
    MODAL,
    NOT_START,
    SUBMITTED,
    SUCCESS,
    TERMINAL,
    EmuTask,
    Output,
    PlanKind,
    Step,
    apply_rule,
    build_plan,
    progress_value,
)
from ._webhooks import WebhookDispatcher

log = logging.getLogger("midjourney_async.testing")

SPEEDS: Mapping[str, float] = {"realtime": 1.0, "demo": 10.0, "instant": 1000.0}
"""Named speeds: multipliers applied to every nominal timing."""

_ALLOWED_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_DEFAULT_RELAY_REFRESH = 15.0
_MAX_BODY = 64 * 1024 * 1024


def resolve_speed(speed: float | str) -> float:
    """Turn ``"instant"``, ``"demo"``, ``"realtime"`` or a number into a speed multiplier."""
    if isinstance(speed, str):
        if speed in SPEEDS:
            return SPEEDS[speed]
        try:
            speed = float(speed)
        except ValueError:
            raise ValueError(
                f"unknown speed {speed!r}; use one of {sorted(SPEEDS)} or a number"
            ) from None
    if not speed > 0:
        raise ValueError("speed must be a positive number")
    return float(speed)


class Emulator:
    """A local Midjourney proxy server for tests, demos and benchmarks.

    Serves one provider ``profile`` (see ``PROFILES``) on 127.0.0.1 with realistic task
    lifecycles, queueing, webhooks, images and injectable faults::

        async with Emulator(profile="trueai", speed="instant") as emu:
            ...  # point a client at emu.base_url with emu.api_key

    Args:
        profile: Profile name (see ``PROFILES``; ``PROFILE_ALIASES`` also accepted):
            ``midjourney-proxy-open`` is novicezk's open edition, ``midjourney-proxy-plus``
            the closed plus edition (``midjourney-proxy``, the default, is an alias of the
            open one). Use
            :attr:`provider` as the client's ``provider=``.
        speed: ``"instant"`` (a task runs through every state in tens of milliseconds),
            ``"demo"`` (10x faster than real), ``"realtime"`` or any multiplier (1.0 = real).
        seed: Seeds ids, shuffles, fault and webhook rates, timings and images.
        api_key: The key clients must send (the way the profile expects it).
        host: ``127.0.0.1``, ``::1`` or ``localhost``; nothing else is allowed.
        port: TCP port; 0 picks a free one (read it from :attr:`base_url`).
        concurrency: Jobs one account runs at once (None = unlimited).
        queue_size: Jobs waiting for a slot before submits are refused (None = unlimited).
        relay_refresh_interval: new-api family: real seconds between the relay's refreshes
            from upstream. None = 15 s scaled by ``speed``; 0 = no cache (always fresh);
            ``float("inf")`` = only when :meth:`refresh_relay` is called.
        notify_hook_enabled: Deliver ``notifyHook`` callbacks. None = the profile's default
            (new-api relays strip notifyHook unless the operator enabled it).
        banned_words: Words that make a submit rejected as a banned prompt.
        account_remix: The emulated account has remix on without auto-submit. Plus edition:
            Pan, Variation and Reroll presses open a MODAL window. trueai (and new-api relays,
            which pass the flag to it): only a press sent with ``enableRemix: true`` does;
            without remix on the account that flag is refused with code 4.
        quirks: Real-server behaviours to switch on (per-user caps, save race, new-api
            duplicate rows and refusals, dying image links...): see :class:`ServerQuirks`.
    """

    def __init__(
        self,
        profile: str = "midjourney-proxy",
        *,
        speed: float | str = "instant",
        seed: int = 0,
        api_key: str = "test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        concurrency: int | None = 3,
        queue_size: int | None = 10,
        relay_refresh_interval: float | None = None,
        notify_hook_enabled: bool | None = None,
        banned_words: Iterable[str] = DEFAULT_BANNED_WORDS,
        account_remix: bool = False,
        quirks: ServerQuirks | None = None,
    ) -> None:
        if host not in _ALLOWED_HOSTS:
            raise ValueError("the emulator only binds 127.0.0.1, ::1 or localhost")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1 (or None for unlimited)")
        if queue_size is not None and queue_size < 0:
            raise ValueError("queue_size must be >= 0 (or None for unlimited)")
        self.profile_info: Profile = get_profile(profile)
        self._profile_name = profile
        self.quirks = quirks if quirks is not None else ServerQuirks()
        """Switchable real-server behaviours; change them at any time."""
        self.received: deque[tuple[str, dict[str, Any]]] = deque(maxlen=1000)
        """The latest submit bodies as received: ``(route, body)``, oldest first."""
        self.speed = resolve_speed(speed)
        self.links = LinkBook(self.speed)
        self.seed = seed
        self.api_key = api_key
        self.account_remix = account_remix
        """Remix on without auto-submit: Pan/Variation/Reroll presses open a MODAL window."""
        self.host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self.stats = EmulatorStats()
        self.faults = FaultSet(self._rng("faults"))
        self.rules = TaskRules(banned_words)
        self.webhooks = WebhookDispatcher(self.stats, self._rng("webhooks"))
        self.tasks: dict[str, EmuTask] = {}
        self.notify_hook_enabled = (
            self.profile_info.notify_hook_default
            if notify_hook_enabled is None
            else notify_hook_enabled
        )
        if relay_refresh_interval is None:
            relay_refresh_interval = _DEFAULT_RELAY_REFRESH / self.speed
        if relay_refresh_interval < 0:
            raise ValueError("relay_refresh_interval must be >= 0")
        self.files = FileStore()
        self._engine = Engine(
            time_scale=1.0 / self.speed,
            concurrency=concurrency,
            queue_size=queue_size,
            apply=self._apply_step,
        )
        self._ids = self._rng("ids")
        self._timing = self._rng("timing")
        self.shuffle_rng = self._rng("shuffle")
        """Seeded order of list-by-condition answers."""
        self._id_ms = 1_700_000_000_000 + self._ids.randrange(10**11)
        self._int_id = 1000 + self._ids.randrange(9000)
        self._by_int: dict[int, EmuTask] = {}
        self.instance_id = str(10**18 + self._ids.randrange(9 * 10**18))
        """The emulated Discord account id (``discordInstanceId``)."""
        self._uploads = 0
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._relay = RelayCache(self, self._engine, relay_refresh_interval)
        self._wall0_ms = 0.0
        self._mono0 = 0.0
        api = OhmygptApi(self) if self.profile_info.family == "ohmygpt" else ProxyApi(self)
        self._front = HttpFront(self, api)

    def _rng(self, stream: str) -> random.Random:
        # Independent streams keep, say, list shuffles from changing the ids a seed gives.
        return random.Random(f"{self.seed}:{stream}")

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> Emulator:
        """Bind the port and start serving; returns ``self``."""
        if self._runner is not None:
            return self
        loop = asyncio.get_running_loop()
        self._engine.bind(loop)
        self._wall0_ms = time.time() * 1000.0
        self._mono0 = self._engine.now()
        self._relay.last = self._mono0
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._front.handle)
        # A short shutdown timeout: a test closing the emulator should not wait for a
        # request stuck in an injected latency fault.
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{port}"
        self.files.base_url = self._base_url
        self._relay.arm()
        log.info("emulator %s listening on %s", self.profile, self._base_url)
        return self

    async def close(self) -> None:
        """Stop serving, cancel timers and webhook deliveries. Safe to call twice."""
        self._engine.close()
        self._relay.cancel()
        await self.webhooks.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters.clear()

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- public properties --------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/mj``: clients add their own prefix)."""
        if self._base_url is None:
            raise RuntimeError("the emulator is not started; use 'async with' or start()")
        return self._base_url

    @property
    def provider(self) -> str:
        """The client preset (``MidjourneySession(provider=...)``) that talks to this server."""
        return self.profile_info.client_provider

    @property
    def profile(self) -> str:
        """The profile name the emulator was started with (an alias stays as given)."""
        return self._profile_name

    @property
    def concurrency(self) -> int | None:
        """Jobs run at once; may be changed while running."""
        return self._engine.concurrency

    @concurrency.setter
    def concurrency(self, value: int | None) -> None:
        self._engine.concurrency = value

    @property
    def queue_size(self) -> int | None:
        """Jobs allowed to wait; may be changed while running."""
        return self._engine.queue_size

    @queue_size.setter
    def queue_size(self, value: int | None) -> None:
        self._engine.queue_size = value

    @property
    def running(self) -> int:
        """Tasks holding a concurrency slot now."""
        return self._engine.running

    @property
    def waiting(self) -> int:
        """Tasks waiting in the queue now."""
        return len(self._engine.waiting)

    # -- test helpers -------------------------------------------------------------------

    def add_fault(self, route: str = "*", kind: FaultKind = "status", **kwargs: Any) -> FaultRule:
        """Shorthand for ``emu.faults.add(FaultRule(route, kind, ...))``."""
        return self.faults.add(FaultRule(route=route, kind=kind, **kwargs))

    def advance(self, seconds: float) -> int:
        """Move the emulated clock ``seconds`` (nominal, i.e. real seconds / speed) forward.

        Every step that becomes due is applied at once. Returns how many tasks finished.
        """
        done = self._engine.advance(seconds / self.speed)
        if self.profile_info.relay_cache and self._relay.due():
            self.refresh_relay()
        return done

    async def complete_all(self) -> int:
        """Fast-forward until every task that can finish has finished.

        Hung tasks (``--emu-hang``, ``rules.never_finish``) and MODAL tasks stay as they are.
        The relay cache is refreshed and held-back webhooks are released afterwards. Returns
        how many tasks finished.
        """
        done = self._engine.run_until_idle()
        if self.profile_info.relay_cache:
            self.refresh_relay()
        self.webhooks.flush_held()
        # Yield once so waiters woken by the burst of changes run before the caller goes on.
        await asyncio.sleep(0)
        return done

    def refresh_relay(self) -> int:
        """new-api family: copy the live state of changed tasks into the relay cache now.

        Tasks still unfinished an hour (emulated) after their submit become FAILURE
        "上游任务超时（超过1小时）" in the relay's view, as new-api's poller does it.
        """
        return self._relay.refresh()

    @property
    def relay_refresh_interval(self) -> float:
        """new-api family: real seconds between relay refreshes (0 = no cache, inf = manual)."""
        return self._relay.interval

    @relay_refresh_interval.setter
    def relay_refresh_interval(self, value: float) -> None:
        if value < 0:
            raise ValueError("relay_refresh_interval must be >= 0")
        self._relay.interval = value
        if self._runner is not None:
            self._relay.arm()

    async def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Wait (bounded) until ``predicate()`` is true; re-checked after every task change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"emulator condition not met within {timeout} s")
            fut: asyncio.Future[None] = loop.create_future()
            self._waiters.append(fut)
            # asyncio.TimeoutError: on Python 3.10 it is not yet the builtin TimeoutError.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(fut, remaining)

    async def wait_for(
        self,
        task_id: str,
        status: str | Collection[str] = TERMINAL,
        *,
        timeout: float = 5.0,
    ) -> EmuTask:
        """Wait until task ``task_id`` exists and is in ``status`` (default: finished)."""
        wanted = {status} if isinstance(status, str) else set(status)

        def ready() -> bool:
            task = self.tasks.get(task_id)
            return task is not None and task.status in wanted

        await self.wait_until(ready, timeout=timeout)
        return self.tasks[task_id]

    def forget(self, task_id: str) -> None:
        """Make the server lose a task: fetches answer "not found" from now on."""
        task = self.tasks.pop(task_id, None)
        if task is None:
            return
        self._engine.release(task)
        if task.int_id is not None:
            self._by_int.pop(task.int_id, None)
        self.stats.tasks_by_status[task.status] -= 1
        self._relay.dirty.discard(task)

    def cancel(self, task_id: str, reason: str = "取消任务") -> bool:
        """End a task in FAILURE with ``reason`` (trueai's cancel). False if unknown/finished."""
        task = self.tasks.get(task_id)
        if task is None or task.terminal:
            return False
        self._engine.release(task)
        self._apply_step(task, Step(0.0, FAILURE, "", reason))
        return True

    def task_json(self, task_id: str) -> dict[str, Any]:
        """The live task JSON in this profile's shape (bypasses the relay cache)."""
        result: dict[str, Any] = msgspec.json.decode(self.live_json(self.tasks[task_id]))
        return result

    # -- task bookkeeping (used by the API modules) -------------------------------------

    def now_ms(self) -> int:
        """Emulated wall-clock time in epoch milliseconds."""
        return int(self._wall0_ms + (self._engine.now() - self._mono0) * 1000.0)

    def new_task_id(self) -> tuple[str, int | None]:
        """A fresh id: 16 digits (epoch-ms + 3 digits) or, for OhMyGPT, an integer."""
        if self.profile_info.family == "ohmygpt":
            self._int_id += 1
            return str(self._int_id), self._int_id
        self._id_ms += 1 + self._ids.randrange(40)
        return f"{self._id_ms}{self._ids.randrange(1000):03d}", None

    def new_hash(self) -> str:
        """A job uuid as Midjourney uses in customIds (seeded)."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def lookup(self, task_id: Any) -> EmuTask | None:
        """Find a task by id (string or, for OhMyGPT, integer)."""
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            return self._by_int.get(task_id) or self.tasks.get(str(task_id))
        if not isinstance(task_id, str):
            return None
        return self.tasks.get(task_id.strip())

    def can_admit(self) -> bool:
        """Whether a new job would start or fit in the queue."""
        return self._engine.can_admit()

    def create_task(
        self,
        *,
        action: str,
        relay_action: str,
        plan_kind: PlanKind,
        output: Output,
        prompt: str,
        description: str,
        state: str = "",
        notify_hook: str | None = None,
        mode: str = "FAST",
        parent: EmuTask | None = None,
        custom_id: str = "",
        image_key: str | None = None,
        tile_index: int = 0,
        size: tuple[int, int] = (512, 512),
        final_prompt: str | None = None,
        status: str = NOT_START,
        count_prompt: bool = True,
    ) -> EmuTask:
        """Create and register a task (not yet admitted to a slot)."""
        task_id, int_id = self.new_task_id()
        job_hash = self.new_hash()
        if not self.notify_hook_enabled:
            notify_hook = None
        task = EmuTask(
            id=task_id,
            int_id=int_id,
            action=action,
            relay_action=relay_action,
            plan_kind=plan_kind,
            output=output,
            prompt=prompt,
            prompt_en=prompt,
            final_prompt=final_prompt if final_prompt is not None else echoed_prompt(prompt),
            description=description,
            state=state,
            submit_time=self.now_ms(),
            job_hash=job_hash,
            image_key=image_key or f"{self.seed}:{job_hash}:{prompt}",
            tile_index=tile_index,
            size=size,
            custom_id=custom_id,
            mode=mode,
            notify_hook=notify_hook or None,
            parent_id=parent.id if parent else None,
            status=status,
        )
        rule = self.rules.match(prompt, action)
        task.plan = apply_rule(build_plan(plan_kind, self._timing, relax=mode == "RELAX"), rule)
        task.history.append((task.status, _render_progress(task)))
        self.tasks[task_id] = task
        if int_id is not None:
            self._by_int[int_id] = task
        self.stats.tasks_created += 1
        self.stats.tasks_by_status[task.status] += 1
        self.stats.submits_by_action[action] += 1
        if count_prompt:
            self.stats.submits_by_prompt[prompt] += 1
        if custom_id:
            self.stats.submits_by_custom_id[custom_id] += 1
        if self.profile_info.relay_cache:
            task.extra["relay_json"] = _http.encode(
                relay_dict(task, self.relay_base(), self.profile_info, refreshed=False)
            )
            self._relay.dirty.add(task)
            self._relay.open.append(task)
        if status == MODAL:
            self._changed(task, NOT_START)
        return task

    def admit(self, task: EmuTask) -> tuple[Admission, int]:
        """Start ``task`` or queue it (see :meth:`Engine.admit`)."""
        outcome = self._engine.admit(task)
        held = self._engine.running + len(self._engine.waiting)
        if held > self.stats.most_in_flight:
            self.stats.most_in_flight = held
        return outcome

    def leave_modal(self, task: EmuTask, prompt: str) -> None:
        """The modal was submitted: the task takes ``prompt`` and waits for a slot."""
        task.prompt = task.prompt_en = prompt
        task.final_prompt = echoed_prompt(prompt)
        task.modal_kind = None
        task.description = "Submit success"
        task.status = NOT_START
        self.stats.tasks_by_status[MODAL] -= 1
        self.stats.tasks_by_status[NOT_START] += 1
        task.history.append((NOT_START, None))
        task.version += 1
        task.extra.pop("json", None)
        if self.profile_info.relay_cache:
            self._relay.dirty.add(task)

    def store_upload(self, data: bytes, content_type: str) -> str:
        """Serve uploaded bytes and return their URL (upload-discord-images, describe...)."""
        self._uploads += 1
        ext = "png" if "png" in content_type else content_type.rsplit("/", 1)[-1] or "bin"
        name = f"attachments/uploads/upload_{self._id_ms}{self._uploads:04d}.{ext}"
        return self.files.add(name, FileSpec("raw", data=data, content_type=content_type))

    def live_json(self, task: EmuTask) -> bytes:
        """The task's current JSON in the profile's shape, cached until it changes."""
        cached: bytes | None = task.extra.get("json")
        if cached is None:
            family = self.profile_info.family
            if family == "new-api":
                obj = relay_dict(task, self.relay_base(), self.profile_info, refreshed=True)
            elif family == "ohmygpt":
                obj = ohmygpt_dict(task)
            else:
                obj = proxy_dict(task, self.profile_info, self.instance_id)
            cached = _http.encode(obj)
            task.extra["json"] = cached
        return cached

    def fetch_json(self, task: EmuTask) -> bytes:
        """What fetch and list-by-condition return: the relay's cached copy when relayed."""
        if self.profile_info.relay_cache and self.relay_refresh_interval != 0:
            relay: bytes = task.extra["relay_json"]
            return relay
        if self.profile_info.relay_cache:
            self._relay.expire()  # no cache: the relay's hour is checked on every read
        return self.live_json(task)

    def relay_base(self) -> str:
        """Where a new-api relay says its ``/mj/image/<id>`` lives (its ServerAddress)."""
        return self.quirks.relay_image_host or self.base_url

    def renew_links(self, task: EmuTask) -> None:
        """Hand out fresh image links when one of the task's current links has expired."""
        if self.links.renew(task, self._engine.now(), self.quirks):
            task.extra.pop("json", None)

    def link_gone(self, token: str | None) -> bool:
        """Whether the image link with expiry ``token`` is dead; counts the download if not."""
        return self.links.gone(token, self._engine.now(), self.quirks)

    def in_save_race(self, task: EmuTask) -> bool:
        """novicezk's Redis store still holds the unfinished copy of a just-finished task."""
        window = self.quirks.save_race_window
        if window <= 0 or task.status != SUCCESS or task.finish_time is None:
            return False
        return (self.now_ms() - task.finish_time) / 1000.0 * self.speed < window

    def task_image(self, task: EmuTask) -> tuple[bytes, str] | None:
        """The bytes behind a task's ``imageUrl`` (for new-api's ``/mj/image/{id}``)."""
        url = task.image_url
        if not url:
            return None
        path = url.split("/files/", 1)[-1].split("?", 1)[0]
        spec = self.files.get(path)
        return file_bytes(spec) if spec else None

    # -- state changes ------------------------------------------------------------------

    def _apply_step(self, task: EmuTask, step: Step) -> None:
        old = task.status
        task.status = step.status
        task.progress = step.progress
        if step.status == SUBMITTED and task.start_time is None:
            task.start_time = self.now_ms()
        elif step.status == IN_PROGRESS:
            if task.start_time is None:
                task.start_time = self.now_ms()
            if task.output in ("grid", "edits") and progress_value(step.progress) >= 15:
                # Java and trueai expose Discord's blurry preview while a grid renders.
                preview = progress_value(step.progress)
                task.image_url = f"{grid_url(self.files, task)}?preview={preview}"
        elif step.status == SUCCESS:
            task.finish_time = self.now_ms()
            finish_outputs(self.files, task, seed=self.seed, family=self.profile_info.family)
            if self.quirks.links_expire:
                self.links.sign(task, self._engine.now())
        elif step.status == FAILURE:
            task.finish_time = self.now_ms()
            task.fail_reason = step.fail_reason or "Emulated failure"
            task.image_url = None if task.output in ("grid", "edits") else task.image_url
        self._changed(task, old)

    def _changed(self, task: EmuTask, old_status: str) -> None:
        task.version += 1
        task.extra.pop("json", None)
        if old_status != task.status:
            self.stats.tasks_by_status[old_status] -= 1
            self.stats.tasks_by_status[task.status] += 1
        task.history.append((task.status, _render_progress(task)))
        if self.profile_info.relay_cache:
            self._relay.dirty.add(task)
        if task.notify_hook and self._runner is not None:
            self.webhooks.send(
                task.notify_hook, task.id, self._webhook_body(task), final=task.terminal
            )
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def _webhook_body(self, task: EmuTask) -> bytes:
        return self.live_json(task)


def _render_progress(task: EmuTask) -> str | None:
    if task.status == NOT_START:
        return None
    return task.progress
