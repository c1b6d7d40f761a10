"""Protected spans: the parts of a prompt an LLM must not rewrite, taken out before the call and put
back after it.

Extra networks (`<lora:…>` and kin) and family prefixes (`score_9`, `source_anime`, `rating_safe`) are
removed and re-attached (prefixes in front, networks at the end, each in its original order). Bracket
groups (weights, emphasis, prompt editing, alternation), `BREAK`, `AND` and embedding names stay where
they are as placeholders `⟦n⟧` that the model is told to copy, with what each means. A placeholder the
model dropped is appended; one it duplicated or invented makes the answer unusable, and the caller falls
back to the original prompt.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

_NETWORK = r"<(?:lora|lyco|hypernet|lbw)[^>]*>"
_PREFIX = r"\b(?:score_\w+|source_\w+|rating_\w+)\b"


def _nested(open_: str, close: str, depth: int = 3) -> str:
    """A bracket group nested up to `depth` deep. `\\(` is a literal bracket (booru tags such as
    `ganyu \\(genshin impact\\)`), never a group's start or end."""
    o, c = re.escape(open_), re.escape(close)
    inner = rf"(?:\\.|[^{o}{c}\\])*"
    for _ in range(depth - 1):
        inner = rf"(?:\\.|[^{o}{c}\\]|{o}{inner}{c})*"
    return rf"(?<!\\){o}{inner}{c}"


# Any bracket group: weights `(a:1.2)`, plain emphasis `((a))`, `[a]`, prompt editing `[a:b:0.5]`,
# alternation `[a|b]`. In a Forge prompt every unescaped bracket is syntax, never prose.
_PAREN = _nested("(", ")")
_SQUARE = _nested("[", "]")
_KEYWORD = r"\b(?:BREAK|AND)\b"
_PLACEHOLDER = re.compile(r"⟦(\d+)⟧")


@dataclass(frozen=True)
class Protected:
    text: str  # what the LLM sees
    inline: Tuple[str, ...]  # placeholder n stands for inline[n]
    prefixes: Tuple[str, ...]
    networks: Tuple[str, ...]


def protect(prompt: str, embeddings: Iterable[str] = ()) -> Protected:
    names = sorted({e for e in embeddings if e}, key=len, reverse=True)
    # Forge matches embedding names without regard to case
    inline_patterns = [_PAREN, _SQUARE, _KEYWORD] + [rf"(?i:(?<![\w]){re.escape(n)}(?![\w]))" for n in names]
    networks = tuple(m.group() for m in re.finditer(_NETWORK, prompt, re.IGNORECASE))
    text = re.sub(_NETWORK, " ", prompt, flags=re.IGNORECASE)
    prefixes = tuple(m.group() for m in re.finditer(_PREFIX, text))
    text = re.sub(_PREFIX, " ", text)
    inline: List[str] = []

    def hold(match: "re.Match[str]") -> str:
        inline.append(match.group())
        return f"⟦{len(inline) - 1}⟧"

    text = re.sub("|".join(f"(?:{p})" for p in inline_patterns), hold, text)
    return Protected(_tidy(text), tuple(inline), prefixes, networks)


def restore(protected: Protected, answer: str) -> Tuple[Optional[str], str]:
    """(the prompt with every protected span back, a note) or (None, why it cannot be trusted)."""
    found = Counter(int(n) for n in _PLACEHOLDER.findall(answer))
    invented = sorted(n for n in found if n >= len(protected.inline))
    if invented:
        return None, f"the model invented placeholders {invented}"
    repeated = sorted(n for n, times in found.items() if times > 1)
    if repeated:
        return None, f"the model repeated placeholders {repeated}"
    missing = [n for n in range(len(protected.inline)) if n not in found]
    lost = sorted({protected.inline[n] for n in missing if protected.inline[n] in ("BREAK", "AND")})
    if lost:  # appended at the end they would split or mix the prompt somewhere the user did not
        return None, f"the model dropped {' and '.join(lost)}"
    # networks and prefixes come only from the user: any the model wrote itself are made up
    text = re.sub(_PREFIX, " ", re.sub(_NETWORK, " ", answer, flags=re.IGNORECASE))
    for n, span in enumerate(protected.inline):  # the model's own BREAK next to the user's is one too many
        if span == "BREAK":
            text = re.sub(rf"\bBREAK\b[\s,]*(⟦{n}⟧)|(⟦{n}⟧)[\s,]*\bBREAK\b", lambda m: m.group(1) or m.group(2), text)
    text = text + "".join(f", ⟦{n}⟧" for n in missing)
    text = _PLACEHOLDER.sub(lambda m: protected.inline[int(m.group(1))], text)
    body = ", ".join(p for p in (", ".join(protected.prefixes), _tidy(text)) if p)
    networks = " ".join(protected.networks)
    note = f"{len(missing)} protected spans re-appended" if missing else ""
    return _tidy(f"{body} {networks}" if networks else body), note


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\s*,[\s,]*", ", ", text)
    return text.strip(" ,")


def meaning(span: str) -> str:
    """What a protected span says, for the model: `(red:1.2)` is "red", `[day:night:0.5]` "day then night"."""
    text = re.sub(r":\s*[0-9.]+\s*(?=[)\]])", "", span)
    text = re.sub(r"[()\[\]]", "", text).replace("|", " or ").replace(":", " then ")
    return " ".join(text.split()) or span
