"""Shared pieces of the proxy-family API: request helpers and reply shapes per family."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from . import _http, _relay
from ._buttons import Click, parse_custom_id, proxy_action, relay_action
from ._http import Call, Reply
from ._media import aspect_size, decode_data_url
from ._quirks import NO_ACCOUNT, STATE_MAX, STATE_TOO_LONG
from ._task import EmuTask

if TYPE_CHECKING:
    from ._emulator import Emulator

_AR = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")
_MODE_FLAGS = (("--relax", "RELAX"), ("--turbo", "TURBO"), ("--fast", "FAST"))
_KEYCAP = re.compile(r"^\d\ufe0f?\u20e3\s*")
_HTTP = ("http://", "https://")
_BLEND_DIMENSIONS = {"PORTRAIT": (2, 3), "SQUARE": (1, 1), "LANDSCAPE": (3, 2)}

# Submits for which trueai builds a new task (``NewTask``) and so checks the caller's limits.
_NEW_TASK_ROUTES = frozenset({
    "submit/imagine", "submit/action", "submit/blend", "submit/describe", "submit/shorten",
    "submit/video", "submit/edits", "insight-face/swap", "submit/change", "submit/simple-change",
})
_NIJI = frozenset({"niji", "NIJI_JOURNEY"})
_PLUS_FILTER_KEYS = ("instanceId", "modes", "remix")

BlendFault = Literal["base64Array", "dimensions"]
"""The blend field a request got wrong; each dialect words its own error for it."""


def prompt_size(prompt: str) -> tuple[int, int]:
    """Grid size for the ``--ar W:H`` in a prompt (512 long side)."""
    m = _AR.search(prompt)
    return aspect_size((int(m.group(1)), int(m.group(2))) if m else None)


def prompt_mode(prompt: str, default: str = "FAST") -> str:
    """The speed mode a prompt asks for with --relax/--fast/--turbo."""
    for flag, mode in _MODE_FLAGS:
        if flag in prompt:
            return mode
    return default


def click_task_kwargs(
    emu: Emulator, parent: EmuTask, click: Click, custom_id: str, mode: str | None
) -> dict[str, Any]:
    """``create_task`` arguments for pressing ``custom_id`` on ``parent``."""
    family = emu.profile_info.family
    hd_action = "UPSCALE" if family == "java" else "UPSCALE_HD"
    kwargs: dict[str, Any] = {
        "action": proxy_action(click, parent.action, hd_action=hd_action),
        "relay_action": relay_action(click) or "IMAGINE",
        "prompt": parent.prompt,
        "description": "Submit success",
        "mode": mode or parent.mode,
        "parent": parent,
        "custom_id": custom_id,
        "size": parent.size,
        "final_prompt": parent.final_prompt,
        "count_prompt": False,
    }
    match click.kind:
        case "upscale":
            kwargs.update(
                plan_kind="upscale",
                output="upscale",
                image_key=parent.image_key,
                tile_index=click.index,
            )
        case "upscale_hd":
            w, h = parent.size
            kwargs.update(
                plan_kind="upscale_hd",
                output="upscale",
                image_key=parent.image_key,
                tile_index=parent.tile_index or 1,
                size=(w * 2, h * 2),
            )
        case "animate":
            kwargs.update(plan_kind="video", output="video")
        case "picread_retry":
            kwargs.update(plan_kind="describe", output="describe", prompt="", final_prompt="")
        case "pic_reader" | "prompt_analyzer":
            text = _pick_prompt(parent.final_prompt, click.index)
            kwargs.update(
                plan_kind="imagine",
                output="grid",
                prompt=text,
                final_prompt=text,
                size=prompt_size(text),
            )
        case _:
            final = parent.final_prompt
            if click.kind == "outpaint":
                final = f"{final} --zoom {'2' if click.index == 50 else '1.5'}"
            kwargs.update(plan_kind="imagine", output="grid", final_prompt=final)
    return kwargs


def prompt_task_kwargs(command: str, prompt: str, output: str) -> dict[str, Any]:
    """``create_task`` arguments for ``/<command> <prompt>``.

    The prompt-driven commands (imagine, shorten, video, edits) share their name with their
    plan and their action, so only the output shape needs saying.
    """
    return {
        "action": command.upper(),
        "relay_action": command.upper(),
        "plan_kind": command,
        "output": output,
        "prompt": prompt,
    }


def blend_task_kwargs(emu: Emulator, body: dict[str, Any]) -> dict[str, Any] | BlendFault:
    """``create_task`` arguments for a blend of ``body["base64Array"]``, or the bad field."""
    images = body.get("base64Array")
    if (
        not isinstance(images, list)
        or not 2 <= len(images) <= 5
        or not all(isinstance(i, str) and decode_data_url(i) for i in images)
    ):
        return "base64Array"
    dimensions = body.get("dimensions") or "SQUARE"
    if dimensions not in _BLEND_DIMENSIONS:
        return "dimensions"
    digest = hashlib.sha256("|".join(images).encode()).hexdigest()[:16]
    return {
        "action": "BLEND",
        "relay_action": "BLEND",
        "plan_kind": "imagine",
        "output": "grid",
        "prompt": "",
        "image_key": f"{emu.seed}:blend:{digest}",
        "size": aspect_size(_BLEND_DIMENSIONS[dimensions]),
        "count_prompt": False,
    }


def describe_task_kwargs(image_key: str) -> dict[str, Any]:
    """``create_task`` arguments for describing the image behind ``image_key``."""
    return {
        "action": "DESCRIBE",
        "relay_action": "DESCRIBE",
        "plan_kind": "describe",
        "output": "describe",
        "prompt": "",
        "final_prompt": "",
        "image_key": image_key,
        "count_prompt": False,
    }


def _pick_prompt(text: str, index: int) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "image"
    line = lines[index - 1] if 1 <= index <= len(lines) else lines[0]
    # Drop the keycap digit Midjourney puts in front of each suggestion.
    return _KEYCAP.sub("", line)


class ProxyBase:
    """Reply helpers shared by the proxy-family handlers."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.profile = emu.profile_info
        self.family = self.profile.family
        # The submit body being handled. Handlers never await between reading the body and
        # creating the task, so one slot per API object is enough.
        self._last_body: dict[str, Any] = {}

    # -- reply helpers ------------------------------------------------------------------

    def _body(self, call: Call) -> dict[str, Any] | Reply:
        try:
            obj = call.json()
        except msgspec.DecodeError:
            return _http.bad_json(self.profile, call.request.path)
        if not isinstance(obj, dict):
            return _http.bad_json(self.profile, call.request.path)
        if call.route.startswith(("submit/", "insight-face/")):
            refused = self._gate(call.route, obj)
            if refused is not None:
                return refused
        return obj

    def _gate(self, route: str, body: dict[str, Any]) -> Reply | None:
        """Record a submit body, then apply what the server checks before any handler."""
        emu, quirks = self.emu, self.emu.quirks
        emu.received.append((route, dict(body)))
        if self.family == "new-api":
            if quirks.relay_no_channel:
                return _relay.no_channel(_model_name(route, body))
            if not quirks.relay_account_filter:
                body.pop("accountFilter", None)  # new-api deletes it unless enabled
        self._last_body = body
        if route not in _NEW_TASK_ROUTES or self.family not in ("trueai", "new-api"):
            return None
        message = None
        state = body.get("state")
        if self.family == "trueai" and isinstance(state, str) and len(state) > STATE_MAX:
            message = STATE_TOO_LONG
        if message is None:
            message = quirks.user_limit(emu.stats.tasks_by_status, len(emu.tasks))
        return None if message is None else self.limit_refusal(route, message)

    def limit_refusal(self, route: str, message: str) -> Reply:
        """trueai's answer to a per-user limit, passed through unchanged by new-api.

        trueai's ``Imagine`` catches its own error and answers a Midjourney-shaped code 4;
        every other submit lets its exception filter answer ``{success: false, code: -1}``.
        """
        if route == "submit/imagine":
            self.emu.stats.submits_by_code[4] += 1
            return _http.json_reply(
                {"code": 4, "description": message, "result": None, "properties": {}}
            )
        self.emu.stats.submits_by_code[-1] += 1
        return _http.trueai_error(message)

    def _account_filter(self, body: dict[str, Any]) -> dict[str, Any] | None:
        found = body.get("accountFilter")
        if isinstance(found, dict):
            return found
        # The plus edition (and openai-hk's examples) also take the filter fields top-level.
        top = {k: body[k] for k in _PLUS_FILTER_KEYS if k in body}
        return top or None

    def _choose_account(self) -> Reply | None:
        """Refuse a submit whose account filter names an instance this server lacks."""
        if self.profile.open_edition or self.family == "ohmygpt":
            return None
        wanted = (self._account_filter(self._last_body) or {}).get("instanceId")
        if wanted and str(wanted) != self.emu.instance_id:
            return self.error(3, NO_ACCOUNT, relay=NO_ACCOUNT, relay_code=3)
        return None

    def _note_client_fields(self, task: EmuTask) -> None:
        """Keep what the client asked for bot and account on the task, for tests to read."""
        body = self._last_body
        bot = body.get("botType")
        task.bot_type = "NIJI_JOURNEY" if bot in _NIJI else "MID_JOURNEY"
        task.account_filter = self._account_filter(body)

    def error(
        self,
        code: int,
        description: str,
        *,
        relay: str | None = None,
        relay_code: int | None = None,
        http_status: int = 200,
        properties: dict[str, Any] | None = None,
    ) -> Reply:
        """A refused submit in this family's shape (new-api: HTTP 400 upstream_error)."""
        if self.family == "new-api":
            wire_code = relay_code if relay_code is not None else code
            self.emu.stats.submits_by_code[wire_code] += 1
            return _http.json_reply(
                {"code": wire_code, "description": relay or description, "type": "upstream_error"},
                400,
            )
        self.emu.stats.submits_by_code[code] += 1
        body = {"code": code, "description": description, "result": None,
                "properties": properties or {}}
        return _http.json_reply(body, http_status)

    def not_found_parent(self) -> Reply:
        """Parent task unknown: Java code 3, trueai HTTP 404 code 3, new-api 400 code 4."""
        return self.error(
            3,
            "关联任务不存在或已失效",
            relay="task_not_found",
            relay_code=4,
            http_status=404 if self.family == "trueai" else 200,
        )

    def envelope(
        self, code: int, description: str, result: Any, properties: dict[str, Any]
    ) -> Reply:
        """A successful submit envelope."""
        self.emu.stats.submits_by_code[code] += 1
        if self.profile.result_as_number and isinstance(result, str) and result.isdigit():
            result = int(result)
        return _http.json_reply(
            {"code": code, "description": description, "result": result, "properties": properties}
        )

    def _base_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {"discordInstanceId": self.emu.instance_id}
        if self.family == "trueai":
            props["discordChannelId"] = self.emu.instance_id
        return props

    def accepted(self, task: EmuTask) -> Reply:
        """Admit a freshly created task and answer code 1 or 22 (new-api: always 1)."""
        admission, ahead = self.emu.admit(task)
        props = self._base_properties()
        if admission == "queued":
            code, description = 22, f"排队中，前面还有{ahead}个任务"
            props["numberOfQueues"] = ahead
        else:
            code = 1
            description = "提交成功" if self.family == "java" else "Submit success"
        if self.family == "new-api":
            code = 1  # new-api rewrites 22 to 1: queueing shows only in the task status
        return self.envelope(code, description, task.id, props)

    def queue_full(self) -> Reply:
        """The profile's answer when the wait queue is full."""
        return self.error(self.profile.queue_full_code, self.profile.queue_full_description)

    def banned(self, prompt: str) -> Reply | None:
        """Code 24 (new-api: HTTP 400) when ``prompt`` has a banned word."""
        word = self.emu.rules.banned_word(prompt)
        if word is None:
            return None
        return self.error(
            24, "可能包含敏感词", properties={"promptEn": prompt, "bannedWord": word}
        )

    def _description(self, java_text: str) -> str:
        return java_text if self.family == "java" else "Submit success"

    def _mode(self, call: Call, prompt: str, default: str = "FAST") -> str:
        if call.mode is not None and call.mode in ("FAST", "RELAX", "TURBO"):
            return call.mode
        return prompt_mode(prompt, default)

    def _hook(self, body: dict[str, Any]) -> str | None:
        hook = body.get("notifyHook")
        return hook if isinstance(hook, str) and hook else None

    def _state(self, body: dict[str, Any]) -> str:
        state = body.get("state")
        return state if isinstance(state, str) else ""

    def _prompt(self, body: dict[str, Any]) -> str | None:
        prompt = body.get("prompt")
        return prompt.strip() if isinstance(prompt, str) and prompt.strip() else None

    def _prompted(
        self, call: Call, *, screen: bool = True, body: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], str] | Reply:
        """The body (read now unless given) and its required prompt, or the error reply.

        ``screen=False`` leaves :meth:`_screen` to a handler that must validate other
        fields first, so that a request refused for them does not count as an attempt.
        """
        if body is None:
            read = self._body(call)
            if isinstance(read, Reply):
                return read
            body = read
        prompt = self._prompt(body)
        if prompt is None:
            return self.error(4, "prompt不能为空", relay="prompt_is_required")
        if screen:
            refused = self._screen(prompt)
            if refused is not None:
                return refused
        return body, prompt

    def _screen(self, prompt: str) -> Reply | None:
        """Count a submit attempt for ``prompt``, then refuse it if it is banned."""
        self.emu.stats.submit_attempts_by_prompt[prompt] += 1
        return self.banned(prompt)

    def _prompt_submit(
        self, call: Call, body: dict[str, Any], prompt: str, command: str, output: str,
        **kwargs: Any,
    ) -> Reply:
        """Submit ``/<command> <prompt>``; ``kwargs`` add to or override the task arguments."""
        task_kwargs = prompt_task_kwargs(command, prompt, output)
        task_kwargs.update(
            description=self._description(f"/{command} {prompt}"),
            state=self._state(body),
            notify_hook=self._hook(body),
            mode=self._mode(call, prompt),
        )
        task_kwargs.update(kwargs)
        return self._submit(**task_kwargs)

    def _submit(
        self, *, image_url: str | None = None, extra: dict[str, Any] | None = None, **kwargs: Any
    ) -> Reply:
        refused = self._choose_account()
        if refused is not None:
            return refused
        if not self.emu.can_admit():
            return self.queue_full()
        task = self.emu.create_task(**kwargs)
        self._note_client_fields(task)
        if image_url is not None:
            task.image_url = image_url
        if extra:
            task.extra.update(extra)
        return self.accepted(task)

    def _image_input(
        self, data: Any, link: Any = None, *, data_may_be_url: bool = False
    ) -> tuple[str | None, str]:
        """The served URL and a content key of an image given as base64 or an http(s) link.

        ``data_may_be_url``: the same field takes a URL, a data URL or bare base64 (edits,
        video); otherwise ``data`` must be base64 and ``link`` is the separate URL field.
        """
        if data_may_be_url and isinstance(data, str) and data.startswith(_HTTP):
            link = data
        elif isinstance(data, str) and data:
            decoded = decode_data_url(data)
            if decoded is None:
                return None, ""
            url = self.emu.store_upload(decoded[1], decoded[0])
            return url, hashlib.sha256(decoded[1]).hexdigest()[:16]
        if isinstance(link, str) and link.startswith(_HTTP):
            return link, hashlib.sha256(link.encode()).hexdigest()[:16]
        return None, ""

    def _task_missing(self) -> Reply:
        match self.family:
            case "java":
                return _http.empty_reply(200)
            case "trueai":
                return _http.empty_reply(204)
            case _:
                return _http.json_reply(
                    {"code": 4, "description": "task_no_found", "type": "upstream_error"}, 400
                )


def _model_name(route: str, body: dict[str, Any]) -> str:
    """The model new-api bills a submit as (``mj_imagine``, ``mj_upscale``...)."""
    if route == "submit/action":
        custom_id = body.get("customId")
        action = relay_action(parse_custom_id(custom_id if isinstance(custom_id, str) else ""))
        if action:
            return f"mj_{action.lower()}"
    if route == "submit/change" and isinstance(body.get("action"), str):
        return f"mj_{body['action'].lower()}"
    return "mj_" + route.rsplit("/", 1)[-1].replace("-", "_")
