"""OhMyGPT's dialect: ``POST /api/v1/ai/draw/mj/{imagine,action,blend,describe,query}``.

Form-urlencoded bodies (JSON accepted too), ``model=midjourney`` on every call, integer task
ids, and an envelope ``{statusCode, message, data}`` whose errors still travel as HTTP 200.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec

from . import _http
from ._buttons import parse_custom_id
from ._http import Call, Reply
from ._media import decode_data_url
from ._proxy_base import (
    blend_task_kwargs,
    click_task_kwargs,
    describe_task_kwargs,
    prompt_size,
    prompt_task_kwargs,
)
from ._task import SUCCESS

if TYPE_CHECKING:
    from aiohttp import web

    from ._emulator import Emulator

PREFIX = "/api/v1/ai/draw/mj/"
_BLEND_ERRORS = {
    "base64Array": "base64Array must hold 2 to 5 images",
    "dimensions": "dimensions must be PORTRAIT, SQUARE or LANDSCAPE",
}


class OhmygptApi:
    """Route resolution and handlers for the ``ohmygpt`` profile."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._routes: dict[str, tuple[str, _http.Handler]] = {
            "imagine": ("submit/imagine", self.imagine),
            "action": ("submit/action", self.action),
            "blend": ("submit/blend", self.blend),
            "describe": ("submit/describe", self.describe),
            "query": ("task/fetch", self.query),
        }

    def resolve(self, request: web.Request) -> Call | None:
        """Map a request to a :class:`Call`, or ``None`` for a path OhMyGPT lacks."""
        if request.method != "POST" or not request.path.startswith(PREFIX):
            return None
        hit = self._routes.get(request.path.removeprefix(PREFIX))
        return Call(hit[0], hit[1], request) if hit else None

    # -- helpers ------------------------------------------------------------------------

    def _form(self, call: Call) -> dict[str, Any] | None:
        content_type = call.request.content_type
        text = call.body.decode("utf-8", "replace")
        if content_type == "application/json" or text.lstrip().startswith("{"):
            try:
                obj = msgspec.json.decode(call.body)
            except msgspec.DecodeError:
                return None
            return obj if isinstance(obj, dict) else None
        out: dict[str, Any] = {}
        for key, value in parse_qsl(text, keep_blank_values=True):
            if key in ("base64Array", "base64Array[]"):
                out.setdefault("base64Array", []).append(value)
            else:
                out[key] = value
        images = out.get("base64Array")
        if isinstance(images, list) and len(images) == 1 and images[0].startswith("["):
            try:
                out["base64Array"] = msgspec.json.decode(images[0])
            except msgspec.DecodeError:
                return None
        return out

    def fail(self, message: str) -> Reply:
        """An envelope error: ``statusCode`` 400, HTTP 200."""
        self.emu.stats.submits_by_code[400] += 1
        return _http.ohmygpt_envelope(400, message)

    def _checked(self, call: Call, *, typed: bool = True) -> dict[str, Any] | Reply:
        # typed=False is for /query: it has no speed, so a stray ``type`` is not an error.
        form = self._form(call)
        if form is None:
            return _http.ohmygpt_envelope(400, "Invalid request body")
        if form.get("model") != "midjourney":
            return _http.ohmygpt_envelope(400, "model is required and must be 'midjourney'")
        if typed and (form.get("type", "FAST") or "FAST") not in ("NORMAL", "FAST"):
            return _http.ohmygpt_envelope(400, "type must be NORMAL or FAST")
        return form

    def _mode(self, form: dict[str, Any]) -> str:
        return "RELAX" if form.get("type") == "NORMAL" else "FAST"

    def _hook(self, form: dict[str, Any]) -> str | None:
        hook = form.get("webhook")
        return hook if isinstance(hook, str) and hook else None

    def _submit(self, *, upload: tuple[str, bytes] | None = None, **kwargs: Any) -> Reply:
        """Create and admit a task; ``upload`` (type, data) is stored only once admissible."""
        if not self.emu.can_admit():
            return self.fail(self.emu.profile_info.queue_full_description)
        url = self.emu.store_upload(upload[1], upload[0]) if upload is not None else None
        task = self.emu.create_task(**kwargs)
        if url is not None:
            task.image_url = url
        self.emu.admit(task)
        self.emu.stats.submits_by_code[200] += 1
        return _http.ohmygpt_envelope(200, "Success", task.int_id)

    # -- endpoints ----------------------------------------------------------------------

    async def imagine(self, call: Call) -> Reply:
        """``/imagine``: prompt, type, base64Array, webhook."""
        form = self._checked(call)
        if isinstance(form, Reply):
            return form
        prompt = form.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return self.fail("prompt is required")
        prompt = prompt.strip()
        self.emu.stats.submit_attempts_by_prompt[prompt] += 1
        word = self.emu.rules.banned_word(prompt)
        if word is not None:
            return self.fail(f"Banned prompt detected: {word}")
        return self._submit(
            **prompt_task_kwargs("imagine", prompt, "grid"),
            description=f"/imagine {prompt}",
            notify_hook=self._hook(form),
            mode=self._mode(form),
            size=prompt_size(prompt),
        )

    async def action(self, call: Call) -> Reply:
        """``/action``: taskId, customId, type, webhook."""
        form = self._checked(call)
        if isinstance(form, Reply):
            return form
        raw_id = form.get("taskId")
        parent = self.emu.lookup(raw_id if isinstance(raw_id, (int, str)) else None)
        if parent is None:
            return self.fail("Task not found")
        if parent.status != SUCCESS:
            return self.fail("Task is not finished")
        custom_id = form.get("customId")
        if not isinstance(custom_id, str) or custom_id not in {b.custom_id for b in parent.buttons}:
            return self.fail("Invalid customId")
        click = parse_custom_id(custom_id)
        kwargs = click_task_kwargs(self.emu, parent, click, custom_id, self._mode(form))
        kwargs.update(notify_hook=self._hook(form), description=f"/action {custom_id}")
        return self._submit(**kwargs)

    async def blend(self, call: Call) -> Reply:
        """``/blend``: base64Array (2-5), dimensions."""
        form = self._checked(call)
        if isinstance(form, Reply):
            return form
        kwargs = blend_task_kwargs(self.emu, form)
        if isinstance(kwargs, str):
            return self.fail(_BLEND_ERRORS[kwargs])
        return self._submit(
            **kwargs, description="/blend", notify_hook=self._hook(form), mode=self._mode(form)
        )

    async def describe(self, call: Call) -> Reply:
        """``/describe``: base64."""
        form = self._checked(call)
        if isinstance(form, Reply):
            return form
        data = form.get("base64")
        decoded = decode_data_url(data) if isinstance(data, str) and data else None
        if decoded is None:
            return self.fail("base64 is required")
        return self._submit(
            **describe_task_kwargs(hashlib.sha256(decoded[1]).hexdigest()[:16]),
            description="/describe",
            notify_hook=self._hook(form),
            mode=self._mode(form),
            upload=decoded,
        )

    async def query(self, call: Call) -> Reply:
        """``/query``: taskId -> the task in OhMyGPT's shape."""
        form = self._checked(call, typed=False)
        if isinstance(form, Reply):
            return form
        self.emu.stats.fetch_ids += 1
        raw_id = form.get("taskId")
        task = self.emu.lookup(raw_id if isinstance(raw_id, (int, str)) else None)
        if task is None:
            return _http.ohmygpt_envelope(400, "Task not found")
        data = self.emu.fetch_json(task)
        return _http.raw_json(b'{"statusCode":200,"message":"Success","data":' + data + b"}")
