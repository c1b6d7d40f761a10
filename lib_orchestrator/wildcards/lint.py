"""The linter: everything that would go wrong at generation time, found before it, with locations.

Checks: file encoding and structure, template syntax of every line, missing wildcards (with a
"did you mean"), cycles, empty lists, duplicate lines, and variables that are set but never read.
"""
from __future__ import annotations

import difflib
from typing import Collection, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union

from ..errors import Location, OrchestratorError
from .ast import AnyNode, Seq, Text, VarGet, Variant, VarSet, Wildcard, Wrap
from .diagnostics import WARNING, Finding
from .files import Entry
from .parser import parse
from .random_sampler import RandomCompiler
from .resolve import LORA_NAME, Resolver
from .store import WildcardStore


def lint(roots: Sequence[str], templates: Sequence[Union[str, Tuple[str, str]]] = (),
         lora_names: Optional[Collection[str]] = None) -> List[Finding]:
    """`lora_names`: the LoRA library's names, lowercase; entries carrying another LoRA are flagged."""
    store = WildcardStore(roots)
    resolver = Resolver(store, on_missing="error")
    compiler = RandomCompiler(resolver)
    findings: List[Finding] = []
    parsed_ok: List[str] = []
    for name in store.names():
        try:
            entries = store.entries_of(name)
        except OrchestratorError as exc:
            findings.append(Finding.from_error(exc))
            continue
        if not entries:
            holder = store.index()[name][0][1]
            findings.append(Finding(Location(holder, 1, 1), WARNING, f"wildcard '{name}' has no entries"))
            continue
        first_seen: Dict[str, int] = {}
        clean = True
        for entry in entries:
            where = Location(entry.source, entry.line or 1, 1)
            if entry.text in first_seen:
                first = first_seen[entry.text]
                findings.append(Finding(where, WARNING, f"duplicate entry {entry.text[:60]!r} (first on line {first})"))
            else:
                first_seen[entry.text] = entry.line
            try:
                node = resolver.entry_node(entry)
            except OrchestratorError as exc:
                findings.append(Finding.from_error(exc))
                clean = False
                continue
            findings.extend(_unused_variables(node, resolver))
            if lora_names is not None and "<l" in entry.text.lower():
                findings.extend(_unknown_loras(entry, lora_names))
        if clean:
            parsed_ok.append(name)
    findings.extend(store.file_warnings())
    findings.extend(Finding.from_error(exc) for exc in store.unreadable.values())
    findings.extend(Finding(Location(path, 1, 1), WARNING, "defines no wildcards") for path in store.empty_files)
    for name in parsed_ok:
        try:
            compiler.wildcard(name, Text(name))
        except OrchestratorError as exc:
            findings.append(Finding.from_error(exc))
    for number, given in enumerate(templates, 1):
        # a template with its source (a template file), or template text, named by its place
        template, source = given if isinstance(given, tuple) else \
            (given, f"<template {number}>" if len(templates) > 1 else "<template>")
        try:
            node = parse(template, source)
            findings.extend(_unused_variables(node, resolver))
            compiler.compile(node)
        except OrchestratorError as exc:
            findings.append(Finding.from_error(exc))
    unreadable = store.unreadable
    # A lookup notes each unreadable file it had to skip; here each is an error of its own already.
    findings.extend(n for n in resolver.notes if not (n.location and n.location.source in unreadable))
    return _unique(findings)


def _unknown_loras(entry: Entry, lora_names: Collection[str]) -> Iterator[Finding]:
    for match in LORA_NAME.finditer(entry.text):
        name = match.group(1).strip()
        if name.lower() not in lora_names:
            close = difflib.get_close_matches(name.lower(), list(lora_names), n=1, cutoff=0.75)
            hint = f" (did you mean <lora:{close[0]}>?)" if close else \
                " (at generation this entry is left out; add the LoRA or fix the name)"
            yield Finding(Location(entry.source, entry.line or 1, entry.column + match.start()), WARNING,
                          f"<lora:{name}> is not in the LoRA library{hint}")


def _unique(findings: List[Finding]) -> List[Finding]:
    seen: Set[str] = set()
    out = []
    for f in findings:
        if str(f) not in seen:
            seen.add(str(f))
            out.append(f)
    return out


def _unused_variables(node: AnyNode, resolver: Resolver) -> Iterator[Finding]:
    """Variables set in `node` that neither it nor any wildcard it reaches ever reads."""
    sets = [n for n in _walk(node) if isinstance(n, VarSet)]
    if not sets:
        return
    read = _reads(node, resolver, set())
    for vs in sets:
        if vs.name not in read:
            yield Finding(vs.location(), WARNING, f"variable '{vs.name}' is set but never used")


def _reads(node: AnyNode, resolver: Resolver, visited: Set[str]) -> Set[str]:
    """Variables read by the node or any wildcard it reaches; "*" when a computed wildcard name may
    reach anything. A work list, not a recursion: wildcards may nest 64 deep."""
    names: Set[str] = set()
    todo = [node]
    while todo:
        for n in _walk(todo.pop()):
            if isinstance(n, VarGet):
                names.add(n.name)
            elif isinstance(n, Wildcard) and isinstance(n.path, Text) and n.path.text not in visited:
                visited.add(n.path.text)
                try:
                    choices = resolver.resolve(n.path.text, n).choices
                except OrchestratorError:
                    continue
                todo.extend(choice.node for choice in choices)
            elif isinstance(n, Wildcard):
                names.add("*")  # a dynamic path may reach anything
    if "*" in names:
        names |= {vs.name for vs in _walk(node) if isinstance(vs, VarSet)}
    return names


def _walk(root: Optional[AnyNode]) -> Iterator[AnyNode]:
    """Every node below root, root first, in the order written; with a stack of its own."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        yield node
        if isinstance(node, Seq):
            stack.extend(reversed(node.items))
        elif isinstance(node, Variant):
            stack.extend(reversed([option.body for option in node.options]))
        elif isinstance(node, Wildcard):
            stack.extend(reversed([node.path] + [value for _, value in node.params]))
        elif isinstance(node, VarSet):
            stack.append(node.value)
        elif isinstance(node, VarGet):
            stack.append(node.default)
        elif isinstance(node, Wrap):
            stack.extend((node.inner, node.wrapper))
