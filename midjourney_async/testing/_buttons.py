"""Midjourney buttons: what a finished task offers and what pressing a customId means.

The customId grammar follows ``reference/proxy-api.md`` section 4; labels and emoji are the
ones Midjourney shows in Discord.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ClickKind = Literal[
    "upscale",
    "variation",
    "low_variation",
    "high_variation",
    "inpaint",
    "outpaint",
    "custom_zoom",
    "pan",
    "reroll",
    "upscale_hd",
    "animate",
    "pic_reader",
    "picread_retry",
    "prompt_analyzer",
    "bookmark",
    "unknown",
]


@dataclass(frozen=True, slots=True)
class Button:
    """One Discord button as proxies report it (``type`` 2, ``style`` 2)."""

    custom_id: str
    label: str = ""
    emoji: str = ""

    def to_json(self) -> dict[str, object]:
        """The proxy wire shape."""
        return {
            "customId": self.custom_id,
            "emoji": self.emoji,
            "label": self.label,
            "type": 2,
            "style": 2,
        }

    def to_ohmygpt(self) -> dict[str, object]:
        """OhMyGPT's ``actions`` entry shape."""
        return {"customId": self.custom_id, "emoji": self.emoji, "label": self.label}


def grid_buttons(h: str) -> list[Button]:
    """U1-U4, reroll, V1-V4: what a 2x2 grid (imagine, variation, blend, zoom, pan) offers."""
    buttons = [Button(f"MJ::JOB::upsample::{i}::{h}", f"U{i}") for i in range(1, 5)]
    buttons.append(Button(f"MJ::JOB::reroll::0::{h}::SOLO", "", "🔄"))
    buttons += [Button(f"MJ::JOB::variation::{i}::{h}", f"V{i}") for i in range(1, 5)]
    return buttons


def upscale_buttons(h: str, *, hd: bool = True) -> list[Button]:
    """The buttons under a single upscaled image (Midjourney v6 layout)."""
    buttons: list[Button] = []
    if hd:
        buttons += [
            Button(f"MJ::JOB::upsample_v6_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)"),
            Button(f"MJ::JOB::upsample_v6_2x_creative::1::{h}::SOLO", "Upscale (Creative)"),
        ]
    buttons += [
        Button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)", "🪄"),
        Button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)", "🪄"),
        Button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)", "🖌️"),
        Button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x", "🔍"),
        Button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x", "🔍"),
        Button(f"MJ::CustomZoom::{h}", "Custom Zoom", "🔍"),
        Button(f"MJ::JOB::pan_left::1::{h}::SOLO", "", "⬅️"),
        Button(f"MJ::JOB::pan_right::1::{h}::SOLO", "", "➡️"),
        Button(f"MJ::JOB::pan_up::1::{h}::SOLO", "", "⬆️"),
        Button(f"MJ::JOB::pan_down::1::{h}::SOLO", "", "⬇️"),
    ]
    return buttons


_DIGITS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")


def describe_buttons() -> list[Button]:
    """Describe offers one imagine button per suggested prompt, all four, and a retry."""
    buttons = [Button(f"MJ::Job::PicReader::{i}", "", _DIGITS[i - 1]) for i in range(1, 5)]
    buttons.append(Button("MJ::Picread::Retry", "", "🔄"))
    buttons.append(Button("MJ::Job::PicReader::all", "Imagine all", "🎉"))
    return buttons


def shorten_buttons() -> list[Button]:
    """Shorten offers one imagine button per shortened prompt."""
    return [Button(f"MJ::Job::PromptAnalyzer::{i}", "", _DIGITS[i - 1]) for i in range(1, 6)]


@dataclass(frozen=True)
class Click:
    """A parsed customId: what pressing the button asks for."""

    kind: ClickKind
    index: int = 0
    """U/V tile 1-4, describe/shorten prompt number (0 = all), zoom percentage for Outpaint."""
    direction: str = ""
    """Pan direction: left, right, up, down."""
    hd_type: str = ""
    """Upscale HD flavour, e.g. ``v6_2x_subtle``."""

    @property
    def makes_grid(self) -> bool:
        """True when the result is a new 2x2 grid."""
        return self.kind in {
            "variation",
            "low_variation",
            "high_variation",
            "inpaint",
            "outpaint",
            "custom_zoom",
            "pan",
            "reroll",
            "pic_reader",
            "prompt_analyzer",
        }


def parse_custom_id(custom_id: str) -> Click:
    """Parse a customId into a :class:`Click` (kind ``unknown`` when not understood)."""
    parts = custom_id.split("::")
    if len(parts) < 2 or parts[0] != "MJ":
        return Click("unknown")
    head = parts[1]
    if head == "JOB" and len(parts) >= 3:
        return _parse_job(parts[2], parts[3:])
    if head == "Inpaint":
        return Click("inpaint")
    if head == "Outpaint":
        return Click("outpaint", index=_int(parts[2] if len(parts) > 2 else "", 50))
    if head == "CustomZoom":
        return Click("custom_zoom")
    if head == "Job" and len(parts) >= 4 and parts[2] in {"PicReader", "PromptAnalyzer"}:
        kind: ClickKind = "pic_reader" if parts[2] == "PicReader" else "prompt_analyzer"
        return Click(kind, index=0 if parts[3] == "all" else _int(parts[3], -1))
    if head == "Picread" and len(parts) >= 3 and parts[2] == "Retry":
        return Click("picread_retry")
    if head == "BOOKMARK":
        return Click("bookmark")
    return Click("unknown")


def _parse_job(verb: str, rest: list[str]) -> Click:
    index = _int(rest[0], 0) if rest else 0
    if verb == "upsample":
        return Click("upscale", index=index)
    if verb.startswith("upsample_"):
        return Click("upscale_hd", index=index, hd_type=verb.removeprefix("upsample_"))
    if verb in {"variation", "low_variation", "high_variation", "reroll"}:
        return Click(verb, index=index)  # type: ignore[arg-type]  # the four names are kinds
    if verb.startswith("pan_"):
        return Click("pan", index=index, direction=verb.removeprefix("pan_"))
    if verb.endswith("_pan_variation"):
        return Click("pan", index=index, direction=verb.removesuffix("_pan_variation"))
    if verb.startswith("animate_"):
        return Click("animate", index=index)
    return Click("unknown")


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def proxy_action(click: Click, parent_action: str, *, hd_action: str = "UPSCALE_HD") -> str:
    """The task action a proxy (Java plus / trueai) records for a click."""
    match click.kind:
        case "upscale":
            return "UPSCALE"
        case "upscale_hd":
            return hd_action
        case "variation" | "low_variation" | "high_variation" | "inpaint":
            return "VARIATION"
        case "outpaint" | "custom_zoom":
            return "ZOOM"
        case "pan":
            return "PAN"
        case "reroll":
            return "IMAGINE" if parent_action in {"UPSCALE", "UPSCALE_HD"} else parent_action
        case "animate":
            return "VIDEO"
        case "picread_retry":
            return "DESCRIBE"
        case _:
            return "IMAGINE"


_RELAY_ACTIONS: dict[str, str] = {
    "upscale": "UPSCALE",
    "upscale_hd": "UPSCALE",
    "variation": "VARIATION",
    "low_variation": "LOW_VARIATION",
    "high_variation": "HIGH_VARIATION",
    "pan": "PAN",
    "reroll": "REROLL",
    "outpaint": "ZOOM",
    "custom_zoom": "CUSTOM_ZOOM",
    "inpaint": "INPAINT",
}


def relay_action(click: Click) -> str | None:
    """new-api's label for a click, or ``None`` when new-api rejects it as unknown_action."""
    return _RELAY_ACTIONS.get(click.kind)
