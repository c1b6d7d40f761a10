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


_REFUSAL_AND_NEXT_WORD = re.compile(_REFUSAL.pattern + r"(?: [\w']+)?", re.IGNORECASE)


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
    """A refusal phrase the model wrote: not one the prompt itself holds with the words that follow
    it there ("I cannot sleep" lettering is no refusal; "I cannot help" still is)."""
    said = " ".join(re.findall(r"[\w']+", original.lower()))
    words = " ".join(re.findall(r"[\w']+", text.lower()))
    return any(m.group() not in said for m in _REFUSAL_AND_NEXT_WORD.finditer(words))


def json_object(answer: str) -> Optional[Dict[str, Any]]:
    """The first JSON object in an answer, also when thinking, fences or chatter surround it; None if
    there is none."""
    text = _THINK.sub("", answer)
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(50):  # an answer full of braces is no JSON answer: do not try every one
        if start < 0:
            return None
        try:
            data, _end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict):
            return data
        start = text.find("{", start + 1)
    return None
