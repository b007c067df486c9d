"""The ``/mj`` API of the proxy family: Java midjourney-proxy, trueai, new-api relays."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import _http, _relay
from ._buttons import Click, parse_custom_id, relay_action
from ._http import Call, Reply
from ._media import decode_data_url
from ._proxy_base import (
    ProxyBase,
    blend_task_kwargs,
    click_task_kwargs,
    describe_task_kwargs,
    prompt_size,
)
from ._quirks import LINK_GONE, NO_REMIX
from ._render import relay_dict
from ._task import MODAL, NOT_START, SUCCESS, EmuTask

if TYPE_CHECKING:
    from aiohttp import web

    from ._emulator import Emulator

_BLEND_ERRORS = {"base64Array": "base64List参数错误", "dimensions": "dimensions参数错误"}
_GRID_PARENTS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "PAN"})
# novicezk v2.6.3 SubmitController.change: the only parents a change may start from.
_OPEN_CHANGE_PARENTS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND"})
_SIMPLE_CHANGE = re.compile(r"^(\S+)\s+(U[1-4]|V[1-4]|R)$", re.IGNORECASE)
_ZOOM = re.compile(r"--zoom\s+(\d+(?:\.\d+)?)(?!\S)")
_HAS_AR = re.compile(r"--(?:ar|aspect)\s+\d+:\d+")
_REMIX_KINDS = frozenset({"variation", "low_variation", "high_variation", "pan", "reroll"})
# new-api rewrites the MODAL answer (code 21) to 1 except for these two windows.
_RELAY_KEEPS_21 = frozenset({"inpaint", "custom_zoom"})


class ProxyApi(ProxyBase):
    """Route resolution and handlers for one proxy-family profile."""

    def __init__(self, emu: Emulator) -> None:
        super().__init__(emu)
        self._static: dict[tuple[str, str], tuple[str, _http.Handler]] = {
            ("POST", "submit/imagine"): ("submit/imagine", self.imagine),
            ("POST", "submit/blend"): ("submit/blend", self.blend),
            ("POST", "submit/describe"): ("submit/describe", self.describe),
            ("POST", "task/list-by-condition"): ("task/list-by-condition", self.list_by_condition),
        }
        if self.profile.open_edition:
            # novicezk v2.6.3 serves nothing else but its queue view (Spring 404 otherwise).
            self._static[("GET", "task/queue")] = ("task/queue", self.task_queue)
        else:
            self._static.update({
                ("POST", "submit/action"): ("submit/action", self.action),
                ("POST", "submit/modal"): ("submit/modal", self.modal),
                ("POST", "submit/shorten"): ("submit/shorten", self.shorten),
                ("POST", "insight-face/swap"): ("insight-face/swap", self.swap),
            })
        if self.family != "trueai":
            # trueai v10+ (the profile models HEAD) removed /change and /simple-change.
            self._static[("POST", "submit/change")] = ("submit/change", self.change)
            self._static[("POST", "submit/simple-change")] = (
                "submit/simple-change",
                self.simple_change,
            )
        if self.family != "java":
            # The open Java proxy has none of these; Spring answers 404 for them.
            self._static[("POST", "submit/upload-discord-images")] = (
                "submit/upload-discord-images",
                self.upload,
            )
            self._static[("POST", "submit/video")] = ("submit/video", self.video)
            self._static[("POST", "submit/edits")] = ("submit/edits", self.edits)
        if self.family == "trueai":
            self._static[("POST", "submit/edit")] = ("submit/edits", self.edits)
            self._static[("POST", "task/list-by-ids")] = (
                "task/list-by-condition",
                self.list_by_condition,
            )
        if self.family in ("java", "trueai"):
            self._static[("GET", "task/list")] = ("task/list", self.task_list)

    # -- routing ------------------------------------------------------------------------

    def resolve(self, request: web.Request) -> Call | None:
        """Map a request to a :class:`Call`, or ``None`` for a path this server lacks."""
        segs = request.path.split("/")[1:]
        mode: str | None = None
        if len(segs) >= 2 and segs[0] != "mj" and segs[1] == "mj":
            prefixes = self.profile.mode_prefixes
            if "*" in prefixes:
                mode = segs[0].upper()
            elif segs[0] in prefixes:
                mode = prefixes[segs[0]]
            else:
                return None
            segs = segs[1:]
        if len(segs) < 2 or segs[0] != "mj":
            return None
        rest = segs[1:]
        method = request.method
        hit = self._static.get((method, "/".join(rest)))
        if hit is not None:
            return Call(hit[0], hit[1], request, mode=mode)
        if len(rest) == 3 and rest[0] == "task":
            task_id, verb = rest[1], rest[2]
            table: dict[tuple[str, str], tuple[str, _http.Handler]] = {
                ("GET", "fetch"): ("task/fetch", self.fetch),
            }
            if not self.profile.open_edition:
                table[("GET", "image-seed")] = ("task/image-seed", self.image_seed)
            if self.family == "trueai":
                table[("POST", "cancel")] = ("task/cancel", self.cancel)
            found = table.get((method, verb))
            if found is not None:
                return Call(found[0], found[1], request, {"id": task_id}, mode)
        if self.family == "new-api" and method == "GET" and len(rest) == 2 and rest[0] == "image":
            return Call("image", self.image, request, {"id": rest[1]}, mode, needs_auth=False)
        return None

    # -- submits ------------------------------------------------------------------------

    async def imagine(self, call: Call) -> Reply:
        """POST /mj/submit/imagine."""
        parsed = self._prompted(call)
        if isinstance(parsed, Reply):
            return parsed
        body, prompt = parsed
        images = body.get("base64Array")
        if images is not None and (
            not isinstance(images, list)
            or not all(isinstance(i, str) and decode_data_url(i) for i in images)
        ):
            return self.error(4, "base64格式错误")
        return self._prompt_submit(call, body, prompt, "imagine", "grid", size=prompt_size(prompt))

    async def action(self, call: Call) -> Reply:
        """POST /mj/submit/action: press a button of a finished task."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        custom_id = body.get("customId")
        custom_id = custom_id if isinstance(custom_id, str) else ""
        click = parse_custom_id(custom_id)
        if self.family == "new-api" and relay_action(click) is None:
            # new-api's distributor maps the customId to a model before anything else and
            # refuses in its own (OpenAI) shape.
            self.emu.stats.submits_by_code[400] += 1
            return _relay.refusal(self.emu.quirks, f"unknown_action:{custom_id}")
        task_id = body.get("taskId")
        if not task_id:
            return self.error(4, "taskId不能为空", relay="task_id_is_required")
        if not custom_id:
            return self.error(4, "customId不能为空")
        parent = self.emu.lookup(task_id)
        if parent is None:
            return self.not_found_parent()
        if self.emu.in_save_race(parent):
            return self._save_race()
        if parent.status != SUCCESS:
            return self.error(4, "关联任务状态错误", relay="task_status_not_success")
        if custom_id not in {b.custom_id for b in parent.buttons}:
            return self.error(4, f"customId无效: {custom_id}")
        if click.kind == "bookmark":
            return self.envelope(1, "Success", parent.id, self._base_properties())
        if self.family == "trueai" and click.kind == "pic_reader" and click.index == 0:
            return self._pic_reader_all(call, body, parent, custom_id)
        asked = body.get("enableRemix") is True
        if self.family == "java":
            remix = click.kind in _REMIX_KINDS and self.emu.account_remix
        else:
            # trueai opens the remix window only when asked (TaskService.SubmitAction) and
            # refuses the flag on an account without remix; new-api passes the flag on.
            remix = click.kind in _REMIX_KINDS and asked
            if remix and not self.emu.account_remix:
                return self.error(4, NO_REMIX)
        modal = click.kind in {"inpaint", "custom_zoom"} or remix or (
            self.family == "trueai" and click.kind in {"pic_reader", "prompt_analyzer"}
        )
        kwargs = click_task_kwargs(self.emu, parent, click, custom_id, call.mode)
        kwargs.update(state=self._state(body), notify_hook=self._hook(body))
        if modal:
            refused = self._choose_account()
            if refused is not None:
                return refused
            kwargs.update(status=MODAL, description="Waiting for window confirm")
            task = self.emu.create_task(**kwargs)
            self._note_client_fields(task)
            task.modal_kind = click.kind
            task.properties["remix"] = True
            props = self._base_properties()
            props.update(finalPrompt=task.final_prompt, remix=True)
            code = 21
            if self.family == "new-api" and click.kind not in _RELAY_KEEPS_21:
                code = 1  # MODAL shows only in the task status
            return self.envelope(code, "Waiting for window confirm", task.id, props)
        return self._submit(**kwargs)

    def _pic_reader_all(
        self, call: Call, body: dict[str, Any], parent: EmuTask, custom_id: str
    ) -> Reply:
        """trueai's ``MJ::Job::PicReader::all``: four imagines, ids joined by commas."""
        if not self.emu.can_admit():
            return self.queue_full()
        ids: list[str] = []
        first_queued = False
        for index in range(1, 5):
            if not self.emu.can_admit():
                break
            kwargs = click_task_kwargs(
                self.emu, parent, Click("pic_reader", index), custom_id, call.mode
            )
            kwargs.update(state=self._state(body), notify_hook=self._hook(body))
            task = self.emu.create_task(**kwargs)
            admission, _ = self.emu.admit(task)
            first_queued = first_queued or (not ids and admission == "queued")
            ids.append(task.id)
        code = 22 if first_queued else 1
        return self.envelope(code, "Submit success", ",".join(ids), self._base_properties())

    async def modal(self, call: Call) -> Reply:
        """POST /mj/submit/modal: confirm a task waiting in MODAL."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        task_id = body.get("taskId")
        if not task_id:
            return self.error(4, "taskId不能为空", relay="task_id_is_required")
        task = self.emu.lookup(task_id)
        if task is None:
            return self.not_found_parent()
        if task.status != MODAL:
            return self.error(4, f"任务状态错误: {task.status}")
        if task.modal_kind == "inpaint":
            mask = body.get("maskBase64")
            if not isinstance(mask, str) or decode_data_url(mask) is None:
                return self.error(4, "maskBase64不能为空")
        prompt = self._prompt(body) or task.final_prompt or task.prompt
        if task.modal_kind == "custom_zoom" and not _custom_zoom_ok(prompt):
            # Plus docs: the Custom Zoom prompt must carry --zoom (1-2) and --ar.
            return self.error(4, "prompt参数错误: 自定义变焦需要 --zoom (1-2) 和 --ar 参数")
        refused = self.banned(prompt)
        if refused is not None:
            return refused
        if not self.emu.can_admit():
            return self.queue_full()
        if self.family == "new-api":
            self._split_relay_row(task)
        self.emu.leave_modal(task, prompt)
        return self.accepted(task)

    def _split_relay_row(self, task: EmuTask) -> None:
        """new-api inserts a second row for the modal submit; the first stays MODAL."""
        profile = self.profile
        task.extra["relay_stale_row"] = _http.encode(
            relay_dict(task, self.emu.relay_base(), profile, refreshed=True)
        )
        task.relay_action = "MODAL"
        task.extra["relay_json"] = _http.encode(
            relay_dict(task, self.emu.relay_base(), profile, refreshed=False)
        )

    async def blend(self, call: Call) -> Reply:
        """POST /mj/submit/blend: 2-5 images into one grid."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        kwargs = blend_task_kwargs(self.emu, body)
        if isinstance(kwargs, str):
            return self.error(4, _BLEND_ERRORS[kwargs])
        return self._submit(
            **kwargs,
            description=self._description("/blend"),
            state=self._state(body),
            notify_hook=self._hook(body),
            mode=self._mode(call, ""),
        )

    async def describe(self, call: Call) -> Reply:
        """POST /mj/submit/describe: four prompts for an image (base64 or link)."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        # The open Java proxy takes base64 only; trueai and new-api also take a link.
        link = body.get("link") if self.family != "java" else None
        image_url, key = self._image_input(body.get("base64"), link)
        if image_url is None:
            return self.error(4, "base64不能为空")
        return self._submit(
            **describe_task_kwargs(key),
            description=self._description("/describe"),
            state=self._state(body),
            notify_hook=self._hook(body),
            mode=self._mode(call, ""),
            image_url=image_url,
        )

    async def shorten(self, call: Call) -> Reply:
        """POST /mj/submit/shorten."""
        parsed = self._prompted(call)
        if isinstance(parsed, Reply):
            return parsed
        body, prompt = parsed
        return self._prompt_submit(call, body, prompt, "shorten", "shorten")

    async def change(self, call: Call) -> Reply:
        """POST /mj/submit/change: U/V/R by action name and index."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        action = body.get("action")
        index = body.get("index")
        if not body.get("taskId"):
            return self.error(4, "taskId不能为空", relay="task_id_is_required")
        if action not in ("UPSCALE", "VARIATION", "REROLL"):
            return self.error(4, "action参数错误", relay="action_is_required")
        # new-api wants a non-zero index for every action, REROLL included; the Java proxy
        # ignores the index of a REROLL.
        needs_index = action != "REROLL" or self.family == "new-api"
        if needs_index and (not isinstance(index, int) or not 1 <= index <= 4):
            return self.error(4, "index参数错误", relay="index_is_required")
        index = index if isinstance(index, int) and action != "REROLL" else 0
        return self._change(call, body, body["taskId"], action, index)

    async def simple_change(self, call: Call) -> Reply:
        """POST /mj/submit/simple-change: ``content`` like ``"<id> U2"``."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        content = body.get("content")
        m = _SIMPLE_CHANGE.match(content.strip()) if isinstance(content, str) else None
        if m is None:
            return self.error(4, "content参数错误", relay="content_parse_failed")
        op = m.group(2).upper()
        action = {"U": "UPSCALE", "V": "VARIATION", "R": "REROLL"}[op[0]]
        index = int(op[1]) if len(op) > 1 else 0
        return self._change(call, body, m.group(1), action, index)

    def _change(
        self, call: Call, body: dict[str, Any], task_id: Any, action: str, index: int
    ) -> Reply:
        parent = self.emu.lookup(task_id)
        if parent is None:
            return self.not_found_parent()
        if self.emu.in_save_race(parent):
            return self._save_race()
        if self.profile.open_edition:
            if parent.status != SUCCESS:
                return self.error(4, "关联任务状态错误")
            if parent.action not in _OPEN_CHANGE_PARENTS:
                return self.error(4, "关联任务不允许执行变化")
        elif parent.status != SUCCESS or parent.action not in _GRID_PARENTS:
            return self.error(4, "关联任务状态错误", relay="task_status_not_success")
        h = parent.job_hash
        if action == "UPSCALE":
            custom_id = f"MJ::JOB::upsample::{index}::{h}"
            click = Click("upscale", index)
        elif action == "VARIATION":
            custom_id = f"MJ::JOB::variation::{index}::{h}"
            click = Click("variation", index)
        else:
            custom_id, click = f"MJ::JOB::reroll::0::{h}::SOLO", Click("reroll")
        kwargs = click_task_kwargs(self.emu, parent, click, custom_id, call.mode)
        # The Java proxy describes every change as "/up <id> U1", "/up <id> V2", "/up <id> R".
        label = f"{action[0]}{index}" if action != "REROLL" else "R"
        kwargs.update(
            action=action,
            relay_action=action,
            description=self._description(f"/up {parent.id} {label}"),
            state=self._state(body),
            notify_hook=self._hook(body),
        )
        return self._submit(**kwargs)

    def _save_race(self) -> Reply:
        """novicezk's answer while its Redis store still holds the unfinished parent."""
        if self.emu.quirks.save_race_code == 3:
            return self.not_found_parent()
        return self.error(4, "关联任务状态错误")

    async def upload(self, call: Call) -> Reply:
        """POST /mj/submit/upload-discord-images: returns URLs, creates no task."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        images = body.get("base64Array")
        decoded = (
            [decode_data_url(i) if isinstance(i, str) else None for i in images]
            if isinstance(images, list) and images
            else [None]
        )
        if any(d is None for d in decoded):
            return self.error(4, "base64List参数错误")
        urls = [self.emu.store_upload(d[1], d[0]) for d in decoded if d is not None]
        return self.envelope(1, "上传成功", urls, {})

    async def video(self, call: Call) -> Reply:
        """POST /mj/submit/video: four short videos (or ``action: extend`` of one)."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        if self.family == "trueai" and self._prompt(body) is None:
            # trueai wants a prompt even to extend a video (SubmitController.Video).
            return self.error(4, "Prompt 不能为空")
        if body.get("action") == "extend" and self.emu.lookup(body.get("taskId")) is None:
            return self.not_found_parent()
        parsed = self._prompted(call, body=body)
        if isinstance(parsed, Reply):
            return parsed
        body, prompt = parsed
        image = body.get("image")
        frame_url: str | None = None
        if isinstance(image, str) and image:
            frame_url, _ = self._image_input(image, data_may_be_url=True)
            if frame_url is None:
                return self.error(4, "image参数错误")
        return self._prompt_submit(
            call, body, prompt, "video", "video", extra={"first_frame": frame_url}
        )

    async def edits(self, call: Call) -> Reply:
        """POST /mj/submit/edits: edit an image by prompt; four images."""
        parsed = self._prompted(call, screen=False)
        if isinstance(parsed, Reply):
            return parsed
        body, prompt = parsed
        image = body.get("image")
        url, key = (
            self._image_input(image, data_may_be_url=True)
            if isinstance(image, str)
            else (None, "")
        )
        if url is None:
            return self.error(4, "image不能为空")
        refused = self._screen(prompt)
        if refused is not None:
            return refused
        return self._prompt_submit(
            call,
            body,
            prompt,
            "edits",
            "edits",
            action="EDIT" if self.family == "trueai" else "EDITS",
            image_key=f"{self.emu.seed}:edits:{key}:{prompt}",
        )

    async def swap(self, call: Call) -> Reply:
        """POST /mj/insight-face/swap."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        allow_urls = self.family == "trueai"
        src, src_key = self._image_input(
            body.get("sourceBase64"), body.get("sourceUrl") if allow_urls else None
        )
        dst, dst_key = self._image_input(
            body.get("targetBase64"), body.get("targetUrl") if allow_urls else None
        )
        if src is None or dst is None:
            return self.error(
                4, "sourceBase64和targetBase64不能为空",
                relay="sour_base64_and_target_base64_is_required",
            )
        return self._submit(
            action="SWAP_FACE",
            relay_action="SWAP_FACE",
            plan_kind="swap",
            output="single",
            prompt="InsightFace",
            description=self._description("/swap"),
            state=self._state(body),
            notify_hook=self._hook(body),
            image_key=f"{self.emu.seed}:swap:{src_key}:{dst_key}",
            count_prompt=False,
        )

    # -- queries ------------------------------------------------------------------------

    async def fetch(self, call: Call) -> Reply:
        """GET /mj/task/{id}/fetch."""
        self.emu.stats.fetch_ids += 1
        task = self.emu.lookup(call.params["id"])
        if task is None:
            return self._task_missing()
        if self.family == "new-api" and (stale := _relay.stale_row(task)) is not None:
            # Two rows share the id: GORM's First() gives the older, frozen one; newer
            # new-api refuses to pick.
            if self.emu.quirks.relay_duplicate_fetch == "not_found":
                return self._task_missing()
            return self._one_task(stale)
        if self.family != "new-api":
            self.emu.renew_links(task)
        return self._one_task(self.emu.fetch_json(task))

    def _one_task(self, row: bytes) -> Reply:
        if self.emu.quirks.fetch_as_list:
            return _http.raw_json(b"[" + row + b"]")
        return _http.raw_json(row)

    async def list_by_condition(self, call: Call) -> Reply:
        """POST /mj/task/list-by-condition: known ids only, in no particular order."""
        body = self._body(call)
        if isinstance(body, Reply):
            return body
        ids = body.get("ids")
        if not isinstance(ids, list):
            ids = []
        self.emu.stats.list_ids += len(ids)
        seen: dict[str, EmuTask] = {}
        for raw in ids:
            task = self.emu.lookup(raw if isinstance(raw, str) else str(raw))
            if task is not None:
                seen[task.id] = task
        tasks = list(seen.values())
        self.emu.shuffle_rng.shuffle(tasks)
        rows: list[bytes] = []
        for task in tasks:
            if self.family != "new-api":
                self.emu.renew_links(task)
            elif (stale := _relay.stale_row(task)) is not None:
                rows.append(stale)  # the older row comes first, in primary-key order
            rows.append(self.emu.fetch_json(task))
        return _http.raw_json(b"[" + b",".join(rows) + b"]")

    async def task_queue(self, call: Call) -> Reply:
        """GET /mj/task/queue (open Java proxy): the tasks waiting for a slot."""
        waiting = [t for t in self.emu.tasks.values() if t.status == NOT_START]
        return _http.raw_json(b"[" + b",".join(self.emu.fetch_json(t) for t in waiting) + b"]")

    async def task_list(self, call: Call) -> Reply:
        """GET /mj/task/list: Java lists every task, trueai the newest 100."""
        tasks = list(self.emu.tasks.values())[::-1]
        if self.family == "trueai":
            tasks = tasks[:100]
        return _http.raw_json(b"[" + b",".join(self.emu.fetch_json(t) for t in tasks) + b"]")

    async def image_seed(self, call: Call) -> Reply:
        """GET /mj/task/{id}/image-seed."""
        task = self.emu.lookup(call.params["id"])
        if task is None:
            if self.family == "new-api":
                return self._task_missing()
            status = 404 if self.family == "trueai" else 200
            return _http.json_reply(
                {"code": 3, "description": "任务不存在", "result": None, "properties": {}}, status
            )
        if task.status != SUCCESS or not task.seed_digits:
            status = 200 if self.family == "java" else 400
            body: dict[str, Any] = {"code": 4, "description": "任务未完成", "result": None}
            if self.family == "new-api":
                body = {"code": 4, "description": "任务未完成", "type": "upstream_error"}
            return _http.json_reply(body, status)
        failure = self.emu.quirks.image_seed_failure
        if failure is not None and self.family != "java":
            # trueai's seed lookup on Discord failed although the task exists.
            return _http.json_reply(
                {"code": 3, "description": failure, "result": None, "properties": {}}
            )
        return _http.json_reply(
            {"code": 1, "description": "成功", "result": task.seed_digits, "properties": {}}
        )

    async def cancel(self, call: Call) -> Reply:
        """POST /mj/task/{id}/cancel (trueai): FAILURE "取消任务", empty 200."""
        task = self.emu.lookup(call.params["id"])
        if task is None:
            return _http.empty_reply(404)
        self.emu.cancel(task.id)
        return _http.empty_reply(200)

    async def image(self, call: Call) -> Reply:
        """GET /mj/image/{id} (new-api): the task's image through the relay."""
        task = self.emu.lookup(call.params["id"])
        if task is not None and self.emu.link_gone(_link_token(task.image_url)):
            # The relay streams the link it stored; an expired one stays dead here.
            return _http.text_reply(LINK_GONE, self.emu.quirks.image_link_status)
        found = self.emu.task_image(task) if task is not None else None
        if found is None:
            return _http.json_reply({"error": "midjourney_task_not_found"}, 400)
        data, content_type = found
        return Reply(200, data, content_type)



def _custom_zoom_ok(prompt: str) -> bool:
    """Whether a Custom Zoom prompt has ``--zoom`` between 1 and 2 and an ``--ar``."""
    m = _ZOOM.search(prompt)
    return m is not None and 1.0 <= float(m.group(1)) <= 2.0 and bool(_HAS_AR.search(prompt))


def _link_token(url: str | None) -> str | None:
    return url.split("?ex=", 1)[1] if url and "?ex=" in url else None
