"""Deterministic text for describe and shorten results."""

from __future__ import annotations

import random

_DIGITS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣")
_SUBJECTS = (
    "a red fox in fresh snow",
    "a lighthouse on a basalt cliff",
    "an astronaut tending a rooftop garden",
    "a paper boat on a rain puddle",
    "a tabby cat asleep on old books",
    "a neon street market at night",
    "a glass greenhouse in a pine forest",
    "a koi pond under cherry blossoms",
)
_STYLES = (
    "in the style of soft watercolor",
    "cinematic lighting, 35mm film grain",
    "isometric low-poly render",
    "ukiyo-e woodblock print",
    "hyperdetailed digital painting",
    "muted pastel palette, gouache",
    "studio ghibli inspired",
    "high contrast black and white photography",
)
_ARS = ("--ar 1:1", "--ar 3:2", "--ar 2:3", "--ar 16:9")


def describe_prompts(key: str) -> str:
    """Four numbered prompt suggestions, as Midjourney's /describe answers."""
    rng = random.Random(f"describe:{key}")
    lines = []
    for i in range(4):
        subject = rng.choice(_SUBJECTS)
        style = rng.choice(_STYLES)
        lines.append(f"{_DIGITS[i]} {subject}, {style} {rng.choice(_ARS)}")
    return "\n\n".join(lines)


def shorten_prompts(prompt: str) -> str:
    """Five progressively shorter versions of ``prompt``, numbered as /shorten answers."""
    text, _, params = prompt.partition(" --")
    words = [w.strip(",.") for w in text.split() if w.strip(",.")] or ["image"]
    suffix = f" --{params}" if params else ""
    lines = []
    for i in range(5):
        keep = max(1, round(len(words) * (5 - i) / 5))
        lines.append(f"{_DIGITS[i]} {' '.join(words[:keep])}{suffix}")
    return "\n".join(lines)
