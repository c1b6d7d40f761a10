"""Immediate variables drawn once per batch instead of once per image (the rules' `variables: batch`).

By default `${name=!value}` is drawn per image, from that image's seed (sd-dynamic-prompts froze it per
batch, and its users asked for years for it not to: DP#395, #544). Some want exactly that freeze: one
character for a whole run while the rest varies (DP#642). `batch_template` gives it them without a second
sampler: it draws the template's immediate variables for the batch's FIRST image and returns the template
with those values written after their assignments, as text, so every image of the batch reads them while
every other choice still comes from the image's own seed.

What a batch is: every image of one Forge generation (one click of Generate: n_iter × batch_size images,
whatever Orchestrator splits them into), or one run of the CLI's `prompts` / `compose`. Image k's prompt in
per-batch mode depends on the template, the files, the batch's first seed and k's own seed, nothing else.

Which variables: those assigned at the top level of the template (not inside `{…}`, `%{…}`, a wildcard's
parameters or a wildcard file, where an assignment belongs to that one choice and the sampler scopes it to
it). `${name?=!value}` counts when nothing before it set `name`. Lazy `${name=value}` is re-drawn on each
use by definition and stays so; an immediate value that reads a lazy one is fixed like any other. A
template file used as `__templates/noir__` is a wildcard: to share its character across a batch, set it in
the prompt (`${c=!__character__} __templates/noir__`) and let the file take it with `${c?=!…}`.

The original assignment is kept and the fixed value written after it (`${c=!__character__}${c=!Alice}`):
the image still draws the original value, so its seed's stream is consumed as in per-image mode, and the
fixed one replaces it. So the batch's first image is the same in both modes, and the other images differ
from per-image mode only in the variables and in what depends on them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import Location, OrchestratorError, TemplateError
from .ast import AnyNode, Seq, Text, Variant, VarSet, static_text
from .parser import parse

if TYPE_CHECKING:  # the engine imports the samplers: this module needs only its methods
    from .engine import PromptEngine

MODES = ("random", "cyclical")  # combinatorial mode lists every value of a variable: there is no "first"

# Markers around each probed value: private-use characters, which no template syntax gives a meaning and
# no prompt has reason to hold (a value that held one would be refused, not misread: see _captured)
_OPEN, _MID, _CLOSE = "\ue000", "\ue001", "\ue002"
_PROBE = "-orchestrator-batch-"  # the copies' names: a name may start with '-', and nobody's does
_ESCAPES = str.maketrans({c: "\\" + c for c in "{}|$#%_"})
# The parser reads backslashes in pairs: `\\` is two backslashes, `\{` a brace. An odd run of them before a
# character it unescapes, or at the very end (before the closing `}`), cannot be written as text: its last
# backslash would pair with the escape written for that character (or with the `}`).
_UNWRITABLE_BACKSLASH = re.compile(r"(?<!\\)(?:\\\\)*\\(?=[{}|$#%_]|\Z)")


@dataclass(frozen=True)
class FixedVariable:
    """One immediate variable as the batch fixed it."""

    name: str
    value: str
    location: Optional[Location]  # where the assignment is written in the template


@dataclass(frozen=True)
class BatchTemplate:
    """The template every image of a batch expands, and what was fixed in it."""

    text: str
    fixed: Tuple[FixedVariable, ...] = ()
    notes: Tuple[str, ...] = ()  # values that could not be written as text: those stay per image


def batch_template(engine: "PromptEngine", template: str, first_seed: int, mode: str = "random",
                   source: str = "<template>") -> str:
    """`template` with its top-level immediate variables fixed to the values the batch's first image
    (seed `first_seed`) draws; expand it with each image's own seed."""
    return fix_variables(engine, template, first_seed, mode, source).text


def fix_variables(engine: "PromptEngine", template: str, first_seed: int, mode: str = "random",
                  source: str = "<template>") -> BatchTemplate:
    """batch_template() with the values it fixed and the notes on those it could not."""
    if mode not in MODES:
        raise OrchestratorError(f"variables per batch need random or cyclical mode, not {mode}", None,
                                "combinatorial mode lists every value of a variable: draw them per image")
    sets = _top_level_sets(engine.parse(template, source), template, source)
    if not sets:
        return BatchTemplate(template)
    values = _first_image_values(engine, template, sets, first_seed, mode, source)
    inserts: List[Tuple[int, str]] = []
    fixed: List[FixedVariable] = []
    notes: List[str] = []
    for (node, at), value in zip(sets, values):
        written = literal(value)
        where = node.location()
        if written is None:
            notes.append(f"{where or source}: the value {value!r} of ${{{node.name}}} cannot be written as text "
                         "(a backslash before a special character, or a leading // or /*): drawn per image")
            continue
        inserts.append((at, f"${{{node.name}=!{written}}}"))
        fixed.append(FixedVariable(node.name, value, where))
    text = _insert(template, inserts)
    _check(template, text, source, fixed)
    return BatchTemplate(text, tuple(fixed), tuple(notes))


class BatchExpander:
    """`expand(template, seed) -> prompt` for every image of one batch (Forge's `plan_job` callback): each
    distinct template (prompt, negative, hires prompt) is fixed once, from the batch's first seed; `notes`
    gathers what could not be fixed."""

    def __init__(self, engine: "PromptEngine", first_seed: int) -> None:
        self.engine = engine
        self.first_seed = first_seed
        self.notes: List[str] = []
        self._fixed: Dict[str, str] = {}

    def __call__(self, template: str, seed: int) -> str:
        return self.engine.prompt(self.template(template), seed) if template else template

    def template(self, template: str) -> str:
        """`template` with the batch's variables written in, worked out once per template (ADetailer's
        prompts read the ones the plan fixed)."""
        text = self._fixed.get(template)
        if text is None:
            batch = fix_variables(self.engine, template, self.first_seed)
            self.notes.extend(n for n in batch.notes if n not in self.notes)
            text = self._fixed[template] = batch.text
        return text


def expander(engine: "PromptEngine", first_seed: int, scope: str) -> Callable[[str, int], str]:
    """plan_job's `expand(template, seed)`: each image from its own seed, or, for `scope` "batch", a
    BatchExpander giving every image the first seed's variables."""
    if scope == "batch":
        return BatchExpander(engine, first_seed)
    return lambda template, seed: engine.prompt(template, seed) if template else template


def literal(value: str) -> Optional[str]:
    """Template text that reads back as exactly `value` where a variable's value is written (after
    `${name=!`), or None where the syntax has no way to write it."""
    if _UNWRITABLE_BACKSLASH.search(value) or value.lstrip(" \t\r\n").startswith(("//", "/*")):
        return None
    written = value.translate(_ESCAPES)
    if value[:1] in (" ", "\t", "\r", "\n"):
        # the parser skips the blanks after `=!`, but not after a construct: an empty variant keeps them
        written = "{}" + written
    return written


# -- inside ----------------------------------------------------------------------------------------
def _top_level_sets(node: AnyNode, template: str, source: str) -> List[Tuple[VarSet, int]]:
    """The template's top-level immediate assignments that take effect, each with the position where it
    ends (where a value written after it goes). Top-level assignments are unconditional, so whether
    `${v?=!…}` takes effect is known from the assignments before it."""
    items: Sequence[AnyNode] = node.items if isinstance(node, Seq) else (node,)
    assigned: set = set()
    found: List[Tuple[VarSet, int]] = []
    for item in items:
        if isinstance(item, VarSet):
            takes_effect = not (item.keep_existing and item.name in assigned)
            assigned.add(item.name)
            if item.immediate and takes_effect:
                found.append((item, _end(template, item, source)))
    return found


def _end(template: str, node: VarSet, source: str) -> int:
    """Where the assignment `node` ends in the template. The AST keeps starts only, and the next item's
    start is no end: a `// comment` may stand between. An assignment ends with `}`, reads the same
    whatever follows it, and no shorter piece of it parses as it: its end is the first `}` up to which
    the text from its start parses to an equal node (the `}` inside it are few)."""
    end = template.find("}", node.pos)
    while end >= 0:
        if _reads_as(template[node.pos:end + 1], node, source):
            return end + 1
        end = template.find("}", end + 1)
    raise TemplateError(f"the end of ${{{node.name}=!…}} was not found", node.location(),  # pragma: no cover
                        "draw variables per image, and report this template")


def _reads_as(text: str, node: VarSet, source: str) -> bool:
    try:
        parsed = parse(text, source)
    except TemplateError:
        return False
    return parsed == node


def _first_image_values(engine: "PromptEngine", template: str, sets: List[Tuple[VarSet, int]], first_seed: int,
                        mode: str, source: str) -> List[str]:
    """The value each assignment gives in the first image: the template is expanded once with a copy of the
    variable taken right after each assignment and shown between markers. A sequence makes all its
    assignments before its text, so the text shows a variable's last value only: the copy, itself an
    assignment, sees the value of its moment. Reading an immediate variable draws nothing, so every choice
    of that image is the one the template alone makes."""
    probe = _insert(template, [(at, f"${{{_PROBE}{k}=!${{{node.name}}}}}{_OPEN}{k}{_MID}${{{_PROBE}{k}}}{_CLOSE}")
                               for k, (node, at) in enumerate(sets)])
    try:
        text = engine.prompt(probe, first_seed, mode, source)
    except TemplateError:
        engine.prompt(template, first_seed, mode, source)  # the same error, placed in the user's own text
        raise
    return _captured(text, len(sets), sets[0][0])


def _captured(text: str, count: int, at: VarSet) -> List[str]:
    found = re.findall(f"{_OPEN}(\\d+){_MID}([^{_OPEN}{_MID}{_CLOSE}]*){_CLOSE}", text)
    if [int(k) for k, _ in found] != list(range(count)) or text.count(_OPEN) != count:
        raise TemplateError("the template's variables could not be fixed for the batch", at.location(),
                            "a wildcard holds the private-use characters U+E000-U+E002: remove them, "
                            "or draw variables per image")
    return [value for _, value in found]


def _insert(text: str, inserts: List[Tuple[int, str]]) -> str:
    pieces, start = [], 0
    for at, piece in inserts:  # in template order
        pieces += [text[start:at], piece]
        start = at
    return "".join(pieces) + text[start:]


def _check(template: str, text: str, source: str, fixed: List[FixedVariable]) -> None:
    """The fixed template reads as the user's with one assignment of each fixed value added, and nothing
    else changed: a value written wrong would otherwise go unnoticed into every image of the batch."""
    if text == template:
        return
    original = parse(template, source)
    before = list(original.items) if isinstance(original, Seq) else [original]
    after = parse(text, source)
    items = list(after.items) if isinstance(after, Seq) else [after]
    added = [i for i in items if isinstance(i, VarSet) and i.immediate and _written_value(i.value) is not None]
    kept = list(items)
    for expected in fixed:
        match = next((i for i in added if i.name == expected.name and _written_value(i.value) == expected.value),
                     None)
        if match is None:
            break
        added.remove(match)
        kept.remove(match)
    else:
        if kept == before:
            return
    raise TemplateError("the variables' values could not be written back into the template", None,
                        "draw variables per image, and report this template")


def _written_value(node: AnyNode) -> Optional[str]:
    """The text a value written by literal() reads as: plain text, or an empty variant and text."""
    text = static_text(node)
    if text is not None:
        return text
    if isinstance(node, Seq) and len(node.items) == 2 and isinstance(node.items[0], Variant) \
            and isinstance(node.items[1], Text):
        options = node.items[0].options
        if len(options) == 1 and options[0].body == Text("") and (node.items[0].lo, node.items[0].hi) == (1, 1):
            return node.items[1].text
    return None
