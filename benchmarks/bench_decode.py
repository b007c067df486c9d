"""Decoding a 100-task list-by-condition body and one fetch body, side by side.

Candidates: our decoders (msgspec straight into ``Task``), a bare msgspec
Struct decoder with the same fields and no normalisation, pydantic v2, and
json.loads + dataclasses. Rounds are interleaved; the figures are ratios.

    python benchmarks/bench_decode.py [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Row, interleaved, report

from midjourney_async._dialects.proxy import decode_task, decode_task_list

SAMPLE = Path(__file__).resolve().parent.parent / "tests" / "samples"


def bodies() -> tuple[bytes, bytes]:
    one = json.loads((SAMPLE / "proxy-fetch-imagine-success.json").read_text())
    many = []
    for i in range(100):
        task = copy.deepcopy(one)
        task["id"] = str(1730621826053000 + i)
        task["status"] = "IN_PROGRESS" if i % 3 else "SUCCESS"
        task["progress"] = f"{(i * 7) % 100}%"
        many.append(task)
    return json.dumps(many).encode(), json.dumps(one).encode()


class BareButton(msgspec.Struct, rename="camel"):
    custom_id: str
    emoji: str = ""
    label: str = ""
    type: int = 2
    style: int = 2


class BareTask(msgspec.Struct, rename="camel"):
    id: str
    status: str = ""
    action: str | None = None
    progress: str | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    description: str | None = None
    state: str | None = None
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    image_url: str | None = None
    image_urls: list[Any] | None = None
    video_url: str | None = None
    video_urls: list[Any] | None = None
    buttons: list[BareButton] = []
    fail_reason: str | None = None
    parent_id: str | None = None
    properties: dict[str, Any] = {}


@dataclass
class DCButton:
    custom_id: str
    emoji: str = ""
    label: str = ""
    type: int = 2
    style: int = 2


@dataclass
class DCTask:
    id: str
    status: str = ""
    action: str | None = None
    progress: str | None = None
    prompt: str | None = None
    prompt_en: str | None = None
    description: str | None = None
    state: str | None = None
    submit_time: int | None = None
    start_time: int | None = None
    finish_time: int | None = None
    image_url: str | None = None
    fail_reason: str | None = None
    buttons: list[DCButton] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)


def dc_task(d: dict[str, Any]) -> DCTask:
    return DCTask(
        id=str(d["id"]),
        status=d.get("status") or "",
        action=d.get("action"),
        progress=d.get("progress"),
        prompt=d.get("prompt"),
        prompt_en=d.get("promptEn"),
        description=d.get("description"),
        state=d.get("state"),
        submit_time=d.get("submitTime"),
        start_time=d.get("startTime"),
        finish_time=d.get("finishTime"),
        image_url=d.get("imageUrl"),
        fail_reason=d.get("failReason"),
        buttons=[
            DCButton(b["customId"], b.get("emoji", ""), b.get("label", ""), b.get("type", 2),
                     b.get("style", 2))
            for b in d.get("buttons") or ()
        ],
        properties=d.get("properties") or {},
    )


def pydantic_decoders() -> tuple[Any, Any] | None:
    try:
        from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
    except ImportError:
        return None

    class PButton(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        custom_id: str = Field(alias="customId")
        emoji: str = ""
        label: str = ""
        type: int = 2
        style: int = 2

    class PTask(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        id: str
        status: str = ""
        action: str | None = None
        progress: str | None = None
        prompt: str | None = None
        prompt_en: str | None = Field(None, alias="promptEn")
        description: str | None = None
        state: str | None = None
        submit_time: int | None = Field(None, alias="submitTime")
        start_time: int | None = Field(None, alias="startTime")
        finish_time: int | None = Field(None, alias="finishTime")
        image_url: str | None = Field(None, alias="imageUrl")
        image_urls: list[Any] | None = Field(None, alias="imageUrls")
        video_urls: list[Any] | None = Field(None, alias="videoUrls")
        fail_reason: str | None = Field(None, alias="failReason")
        buttons: list[PButton] = []
        properties: dict[str, Any] = {}

    return TypeAdapter(list[PTask]), TypeAdapter(PTask)


def main() -> list[Row]:
    many, one = bodies()
    bare_many = msgspec.json.Decoder(list[BareTask])
    bare_one = msgspec.json.Decoder(BareTask)
    cands_many: dict[str, Any] = {
        "ours": lambda: decode_task_list(many),
        "bare msgspec": lambda: bare_many.decode(many),
        "json+dataclasses": lambda: [dc_task(d) for d in json.loads(many)],
    }
    cands_one: dict[str, Any] = {
        "ours": lambda: decode_task(one),
        "bare msgspec": lambda: bare_one.decode(one),
        "json+dataclasses": lambda: dc_task(json.loads(one)),
    }
    pyd = pydantic_decoders()
    if pyd is not None:
        cands_many["pydantic v2"] = lambda: pyd[0].validate_json(many)
        cands_one["pydantic v2"] = lambda: pyd[1].validate_json(one)
    t_many = interleaved(cands_many, rounds=15, number=20)
    t_one = interleaved(cands_one, rounds=15, number=500)
    rows = []
    for name, sec in t_many.items():
        rows.append(Row("decode", f"list of 100, {name}", sec * 1e6 / 100, "us/task"))
    for name, sec in t_one.items():
        rows.append(Row("decode", f"one fetch, {name}", sec * 1e6, "us/task"))
    vs_bare = t_many["ours"] / t_many["bare msgspec"]
    rows.append(Row("decode", "ours / bare msgspec (list)", vs_bare, "x", "<= 1.2", vs_bare <= 1.2))
    if pyd is not None:
        speedup = t_many["pydantic v2"] / t_many["ours"]
        rows.append(
            Row("decode", "pydantic v2 / ours (list)", speedup, "x", ">= 4", speedup >= 4.0)
        )
    dc = t_many["json+dataclasses"] / t_many["ours"]
    rows.append(Row("decode", "json+dataclasses / ours (list)", dc, "x"))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    report(main(), parser.parse_args().json)
