"""Shared pieces of the proxy-family API: request helpers and reply shapes per family."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import msgspec

from . import _http
from ._buttons import Click, proxy_action, relay_action
from ._http import Call, Reply
from ._media import aspect_size, decode_data_url
from ._task import EmuTask

if TYPE_CHECKING:
    from ._emulator import Emulator

_AR = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")
_MODE_FLAGS = (("--relax", "RELAX"), ("--turbo", "TURBO"), ("--fast", "FAST"))
_KEYCAP = re.compile(r"^\d\ufe0f?\u20e3\s*")


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

    # -- reply helpers ------------------------------------------------------------------

    def _body(self, call: Call) -> dict[str, Any] | Reply:
        try:
            obj = call.json()
        except msgspec.DecodeError:
            return _http.bad_json(self.profile, call.request.path)
        if not isinstance(obj, dict):
            return _http.bad_json(self.profile, call.request.path)
        return obj

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

    def _submit(self, **kwargs: Any) -> Reply:
        if not self.emu.can_admit():
            return self.queue_full()
        return self.accepted(self.emu.create_task(**kwargs))

    def _image_input(self, data: Any, link: Any = None) -> tuple[str | None, str]:
        if isinstance(data, str) and data:
            decoded = decode_data_url(data)
            if decoded is None:
                return None, ""
            url = self.emu.store_upload(decoded[1], decoded[0])
            return url, hashlib.sha256(decoded[1]).hexdigest()[:16]
        if isinstance(link, str) and link.startswith(("http://", "https://")):
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
