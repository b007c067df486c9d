"""Task JSON in each dialect: Java proxy, trueai, new-api relay, OhMyGPT.

Field sets follow ``reference/proxy-api.md`` section 3 and the payloads in
``reference/samples``: Java and trueai report null times and progress before a task starts and
``""`` progress on FAILURE; new-api reports Go zero values (``0``, ``""``), ``"100%"`` on
FAILURE, its own action labels and a ``/mj/image/{id}`` image URL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._profiles import Profile
from ._task import FAILURE, NOT_START, SUCCESS, EmuTask


def _progress(task: EmuTask) -> str | None:
    if task.status == FAILURE:
        return ""
    if task.status == NOT_START:
        return None
    return task.progress


def _snowflake(task: EmuTask, part: int) -> str:
    # Discord-style numeric ids derived from the job hash: deterministic, stored nowhere.
    digits = task.job_hash.replace("-", "")
    return str(int(digits[part * 15 : part * 15 + 15], 16))


def _properties(task: EmuTask, profile: Profile, instance_id: str) -> dict[str, Any]:
    message_id = _snowflake(task, 0)
    props: dict[str, Any] = {
        "notifyHook": task.notify_hook or "",
        "finalPrompt": task.final_prompt,
        "finalZhPrompt": "",
        "messageId": message_id,
        "messageHash": task.job_hash if task.status == SUCCESS else "",
        "progressMessageId": message_id,
        "nonce": _snowflake(task, 1),
        "flags": 0,
        "discordInstanceId": instance_id,
    }
    if profile.family == "trueai":
        props["discordChannelId"] = instance_id
        props["botType"] = task.bot_type
        if task.custom_id:
            props["custom_id"] = task.custom_id
    props.update(task.properties)
    return props


def proxy_dict(task: EmuTask, profile: Profile, instance_id: str) -> dict[str, Any]:
    """Task JSON as the Java proxy (open: no buttons; plus: buttons) or trueai serves it."""
    out: dict[str, Any] = {
        "id": task.id,
        "action": task.action,
        "customId": task.custom_id,
        "prompt": task.prompt,
        "promptEn": task.prompt_en,
        "description": task.description,
        "state": task.state,
        "submitTime": task.submit_time,
        "startTime": task.start_time,
        "finishTime": task.finish_time,
        "imageUrl": task.image_url,
        "status": task.status,
        "progress": _progress(task),
        "failReason": task.fail_reason,
        "buttons": [b.to_json() for b in task.buttons],
        "properties": _properties(task, profile, instance_id),
    }
    if profile.open_edition:
        del out["buttons"]  # novicezk's open Task has no buttons (support/Task.java)
    if profile.family == "trueai":
        out["botType"] = task.bot_type
        out["mode"] = task.mode
        out["parentId"] = task.parent_id
        out["imageUrls"] = [{"url": u} for u in task.image_urls] if task.image_urls else None
        out["videoUrl"] = task.video_urls[0] if task.video_urls else None
        out["videoUrls"] = [{"url": u} for u in task.video_urls] if task.video_urls else None
    return out


RELAY_TIMEOUT_REASON = "上游任务超时（超过1小时）"
"""new-api's failReason for a task its upstream did not finish within an hour."""


def relay_dict(
    task: EmuTask, base_url: str, profile: Profile, *, refreshed: bool
) -> dict[str, Any]:
    """Task JSON as a new-api relay serves it from its database.

    ``refreshed=False`` is the row as inserted at submit time, before the relay's first
    poll of the upstream: status and progress are still empty strings. A task the relay gave
    up on after an hour (``task.extra["relay_timeout"]``) reads FAILURE from then on.
    """
    out: dict[str, Any] = {
        "id": task.id,
        "action": task.relay_action,
        "customId": "",
        "botType": "",
        "prompt": task.prompt,
        "promptEn": "",
        "description": task.description,
        "state": task.state,
        "submitTime": task.submit_time,
        "startTime": 0,
        "finishTime": 0,
        "imageUrl": "",
        **({} if profile.relay_drops_image_urls else {"imageUrls": None}),
        "videoUrl": "",
        "videoUrls": None,
        "status": "",
        "progress": "",
        "failReason": "",
        "buttons": None,
        "maskBase64": "",
        "properties": None,
    }
    if not refreshed:
        return out
    timed_out = task.extra.get("relay_timeout")
    status = FAILURE if timed_out else task.status
    out["promptEn"] = task.prompt_en
    out["startTime"] = task.start_time or 0
    out["finishTime"] = task.finish_time or 0
    out["status"] = status
    out["progress"] = "100%" if status == FAILURE else (task.progress or "")
    out["failReason"] = RELAY_TIMEOUT_REASON if timed_out else (task.fail_reason or "")
    if task.image_url:
        if profile.relay_rewrites_image_url:
            # new-api rewrites upstream image URLs to its own proxy route, cache-busted
            # until done.
            url = f"{base_url}/mj/image/{task.id}"
            out["imageUrl"] = url if status == SUCCESS else f"{url}?rand={task.version}"
        else:
            out["imageUrl"] = task.image_url
    if task.image_urls and not profile.relay_drops_image_urls:
        out["imageUrls"] = [{"url": u} for u in task.image_urls]
    if task.video_urls:
        out["videoUrls"] = [{"url": u} for u in task.video_urls]
    if status == SUCCESS:
        out["buttons"] = [b.to_json() for b in task.buttons]
    if status != NOT_START:
        out["properties"] = {"finalPrompt": task.final_prompt, "finalZhPrompt": ""}
    return out


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as OhMyGPT writes times: ``2023-08-31T13:59:14.000Z``."""
    if ms is None:
        return None
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def ohmygpt_dict(task: EmuTask) -> dict[str, Any]:
    """The ``data`` object of OhMyGPT's ``/query`` answer (and of its webhooks)."""
    return {
        "taskId": task.int_id,
        "taskType": "NORMAL" if task.mode == "RELAX" else "FAST",
        "status": task.status,
        "action": task.action,
        "progress": _progress(task),
        "description": task.description,
        "prompt": task.prompt,
        "failReason": task.fail_reason,
        "submitTime": iso_ms(task.submit_time),
        "startTime": iso_ms(task.start_time),
        "finishTime": iso_ms(task.finish_time),
        "webhookUrl": task.notify_hook,
        "imageDcUrl": task.image_url,
        "imageS3Url": None,
        "actions": [b.to_ohmygpt() for b in task.buttons],
    }
