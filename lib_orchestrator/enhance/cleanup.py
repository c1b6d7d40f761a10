"""Cleaning what a small local model says into a prompt: no thinking, no fences, no quotes, no
"Here is your prompt:", one line; and telling a refusal from a prompt."""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[\w-]*\n?(.*?)(?:```|$)", re.DOTALL)
_LABEL = re.compile(r"^(?:here(?: is|'s)[^:\n]*|(?:enhanced |improved |final )?prompt)\s*:\s*", re.IGNORECASE)
_REFUSAL = re.compile(
    r"\b(?:I can(?:no|')t|I cannot|I'm sorry|I am sorry|I apologi[sz]e|as an AI|I'm not able to|"
    r"I am not able to|I won't|I will not|beyond my scope)\b", re.IGNORECASE)


def clean_output(text: str) -> str:
    text = _THINK.sub("", text)
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    lines = [line.strip() for line in text.strip().splitlines()]
    while lines and (not lines[0] or lines[0].endswith(":")):  # "Sure! Here is the enhanced prompt:"
        lines.pop(0)
    if "" in lines:  # what follows the first blank line is commentary
        lines = lines[:lines.index("")]
    text = ", ".join(lines)
    text = _LABEL.sub("", text.replace("**", ""))
    text = text.strip().strip("\"'“”‘’`").strip()
    text = re.sub(r"\s*,[\s,]*", ", ", text)
    return re.sub(r"[ \t]+", " ", text).strip(" ,")


def is_refusal(text: str, original: str = "") -> bool:
    """A refusal phrase the model wrote: not one the prompt itself holds ("I cannot sleep" lettering)."""
    said = original.lower()
    return any(m.group().lower() not in said for m in _REFUSAL.finditer(text))


def json_object(answer: str) -> Optional[Dict[str, Any]]:
    """The JSON object in an answer, also when thinking or chatter surrounds it; None if there is none."""
    text = _THINK.sub("", answer).strip()
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(data, dict):
            return data
    return None
