"""From a wildcard reference to its parsed options: shared by every sampler and the linter."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import Location, TemplateError
from .ast import AnyNode, Node, Text
from .diagnostics import WARNING, Finding
from .files import Entry
from .parser import needs_parsing, parse
from .store import WildcardStore, bad_name_reason

MAX_WILDCARD_DEPTH = 64
ON_MISSING = ("error", "keep")


@dataclass(frozen=True)
class Choice:
    """One option a sampler may pick: the parsed body and its weight."""

    node: AnyNode
    weight: float
    entry: Optional[Entry] = None


@dataclass(frozen=True)
class Resolved:
    pattern: str
    choices: Tuple[Choice, ...]  # empty when the wildcard is missing and on_missing == "keep"
    note: str = ""


# A LoRA name -> "" when the LoRA can be used, else why not ("does not load on a Pony checkpoint").
LoraGate = Callable[[str], str]
# `<lora:NAME>`, `<lora:NAME:0.8>`, `<lyco:NAME>`: the name only (the composer reads the rest).
LORA_NAME = re.compile(r"<(?:lora|lyco):([^:>]+)", re.IGNORECASE)


class Resolver:
    def __init__(self, store: WildcardStore, on_missing: str = "error", lora_gate: Optional[LoraGate] = None) -> None:
        if on_missing not in ON_MISSING:
            raise ValueError(f"on_missing must be one of {ON_MISSING}")
        self.store = store
        self.on_missing = on_missing
        self.lora_gate = lora_gate  # set when prompts are made for a checkpoint whose LoRAs are known
        self.notes: List[Finding] = []  # warnings met while resolving, for the CLI and the linter
        self._parsed: Dict[Tuple[str, str, int], AnyNode] = {}
        self._resolved: Dict[str, Resolved] = {}
        self._lock = threading.RLock()  # samplers in several threads resolve names as they first meet them

    def entry_node(self, entry: Entry) -> AnyNode:
        if not needs_parsing(entry.text):
            return Text(entry.text)
        key = (entry.text, entry.source, entry.line)
        node = self._parsed.get(key)
        if node is None:
            with self._lock:  # one node per line, whichever thread parses it first
                node = self._parsed.get(key)
                if node is None:
                    node = parse(entry.text, entry.source or "<wildcard>", entry.line or 1)
                    self._parsed[key] = node
        return node

    def resolve(self, pattern: str, at: Node) -> Resolved:
        found = self._resolved.get(pattern)
        if found is not None:
            return found
        with self._lock:
            return self._resolve(pattern, at)

    def _resolve(self, pattern: str, at: Node) -> Resolved:
        found = self._resolved.get(pattern)
        if found is not None:
            return found
        reason = bad_name_reason(pattern)
        if reason:
            raise TemplateError(f"refused wildcard name {pattern!r}: {reason}", at.location(),
                                "name wildcards by their path below a wildcard folder")
        lookup = self.store.lookup(pattern)
        if not lookup.entries:
            if self.on_missing == "error":
                if lookup.names:
                    raise TemplateError(f"wildcard '{pattern}' is empty", at.location(),
                                        f"add lines to {lookup.names[0]}")
                close = self.store.suggestions(pattern)
                hint = f"did you mean {', '.join('__' + c + '__' for c in close)}?" if close else \
                    f"no such file under {', '.join(self.store.roots) or 'any wildcard folder'}"
                if lookup.skipped:
                    first = lookup.skipped[0].location
                    more = f" and {len(lookup.skipped) - 1} more" if len(lookup.skipped) > 1 else ""
                    hint += f"; {first.source if first else 'a file'}{more} could not be read: run lint"
                raise TemplateError(f"wildcard '{pattern}' not found", at.location(), hint)
            self.notes.append(Finding(at.location(), WARNING, f"wildcard '{pattern}' not found; kept as text"))
        for skipped in lookup.skipped:  # it might have held lines of this wildcard: say so, never silently
            self.notes.append(Finding(skipped.location, WARNING,
                                      f"{skipped.message}; any lines this file has for __{pattern}__ are left out"))
        if lookup.note:
            self.notes.append(Finding(at.location(), WARNING, f"wildcard '{pattern}': {lookup.note}"))
        entries = self._usable(lookup.entries, pattern, at)
        if entries and not any(e.weight > 0 for e in entries):
            raise TemplateError(f"every line of wildcard '{pattern}' has weight 0", at.location(),
                                "give one line a weight above 0")
        choices = tuple(Choice(self.entry_node(e), e.weight, e) for e in entries)
        found = Resolved(pattern, choices, lookup.note)
        self._resolved[pattern] = found
        return found

    def _usable(self, entries: Tuple[Entry, ...], pattern: str, at: Node) -> Tuple[Entry, ...]:
        """The entries whose LoRAs load on the checkpoint: an entry that carries a LoRA the checkpoint
        cannot use is left out with a note (kept as text with `keep`), so the draw goes to the others."""
        gate = self.lora_gate
        if gate is None or not any("<l" in e.text.lower() for e in entries):
            return entries
        kept: List[Entry] = []
        for entry in entries:
            refused = next(((m, why) for m in LORA_NAME.finditer(entry.text) for why in [gate(m.group(1).strip())]
                            if why), None)
            if refused is None:
                kept.append(entry)
                continue
            match, why = refused
            where = Location(entry.source or "<wildcard>", entry.line or 1, entry.column + match.start())
            if self.on_missing == "keep":
                self.notes.append(Finding(where, WARNING, f"<lora:{match.group(1).strip()}> {why}; entry kept as text"))
                kept.append(entry)
            else:
                self.notes.append(Finding(where, WARNING, f"<lora:{match.group(1).strip()}> {why}; entry left out of "
                                                          f"__{pattern}__"))
        if entries and not kept:
            raise TemplateError(f"no entry of wildcard '{pattern}' can be used: each carries a LoRA that "
                                "this checkpoint cannot use", at.location(),
                                "add entries without LoRAs, use another checkpoint, or --on-missing keep")
        return tuple(kept)


MAX_PROMPT_CHARS = 1_000_000


def too_deep(at: Node) -> TemplateError:
    return TemplateError(f"wildcards nest deeper than {MAX_WILDCARD_DEPTH} levels", at.location(),
                         "a wildcard probably refers to itself through a variable; else flatten the files")


def too_long(at: Node) -> TemplateError:
    return TemplateError(f"prompt grew over {MAX_PROMPT_CHARS:,} characters", at.location(),
                         "variables or wildcards multiply each other")


def undefined_variable(name: str, at: Node) -> TemplateError:
    return TemplateError(f"variable '{name}' is not defined", at.location(),
                         f"set it first with ${{{name}=...}} or give a default: ${{{name}:default}}")


def self_referencing_variable(name: str, at: Node) -> TemplateError:
    return TemplateError(f"variable '{name}' refers to itself", at.location(),
                         "a variable's value may not use the variable")


def cycle_error(chain: List[str], at: Node) -> TemplateError:
    return TemplateError("wildcard refers to itself: " + " → ".join(f"__{c}__" for c in chain),
                         at.location(), "a wildcard may not use itself, directly or through others")
