"""What a finished task produces: image and video URLs, buttons, describe/shorten text."""

from __future__ import annotations

import random
import re

from ._buttons import describe_buttons, grid_buttons, shorten_buttons, upscale_buttons
from ._content import describe_prompts, shorten_prompts
from ._files import FileSpec, FileStore
from ._profiles import Family
from ._task import EmuTask

_SLUG = re.compile(r"[^a-z0-9]+")


def slug(prompt: str) -> str:
    """File-name words of a prompt, the way Discord attachment names look."""
    words = prompt.split(" --", 1)[0].lower()
    return _SLUG.sub("_", words).strip("_")[:40] or "image"


def echoed_prompt(prompt: str) -> str:
    """The prompt as Midjourney echoes it: its default version flag appended."""
    if not prompt or "--v " in prompt or "--niji" in prompt:
        return prompt
    return f"{prompt} --v 6.1"


def _file_name(task: EmuTask) -> str:
    return f"attachments/{task.id}/emulator_{slug(task.prompt)}_{task.job_hash}.png"


def grid_url(files: FileStore, task: EmuTask) -> str:
    """The URL of the task's grid image (registered on first use; bytes made on download)."""
    url: str | None = task.extra.get("grid_url")
    if url is None:
        w, h = task.size
        url = files.add(_file_name(task), FileSpec("grid", task.image_key, 0, w, h))
        task.extra["grid_url"] = url
    return url


def finish_outputs(files: FileStore, task: EmuTask, *, seed: int, family: Family) -> None:
    """Fill in a SUCCESS task's outputs according to what kind of job it was."""
    h = task.job_hash
    w, ht = task.size
    task.seed_digits = str(random.Random(f"{seed}:seed:{h}").randrange(10**9, 10**10))
    match task.output:
        case "grid" | "edits":
            task.image_url = grid_url(files, task)
            if family == "trueai" or task.output == "edits":
                # The four full-size images as Midjourney's CDN serves them one by one.
                task.image_urls = [
                    files.add(f"{h}/0_{i}.png", FileSpec("tile", task.image_key, i + 1, w, ht))
                    for i in range(4)
                ]
            task.buttons = grid_buttons(h) if task.output == "grid" else []
        case "upscale":
            spec = FileSpec("tile", task.image_key, task.tile_index or 1, w, ht)
            task.image_url = files.add(_file_name(task), spec)
            task.buttons = upscale_buttons(h, hd=task.plan_kind != "upscale_hd")
        case "single":
            spec = FileSpec("single", task.image_key, 0, w, ht)
            task.image_url = files.add(_file_name(task), spec)
        case "describe":
            text = describe_prompts(task.image_key)
            task.prompt = task.prompt_en = task.final_prompt = text
            task.buttons = describe_buttons()
        case "shorten":
            text = shorten_prompts(task.prompt)
            task.final_prompt = text
            if family == "trueai":
                task.description = text  # trueai reports the shorten output here
            task.buttons = shorten_buttons()
        case "video":
            frame = task.extra.get("first_frame")
            if not frame:
                frame = files.add(_file_name(task), FileSpec("single", task.image_key, 0, w, ht))
            task.image_url = frame
            task.video_urls = [
                files.add(f"video/{h}/0_{i}.mp4", FileSpec("mp4", f"{task.image_key}#{i}"))
                for i in range(4)
            ]
