"""How deep a template nests, through every wildcard it names: measured before any sampler runs.

The samplers, the counter and the linter walk templates recursively, a few Python frames per
construct, and a construct may hold a wildcard whose lines hold more constructs. Python stops a
recursion at sys.getrecursionlimit() frames (1,000 by default), so this measure comes first, in every
mode: it walks with a stack of its own, never recursing, and refuses

- a wildcard that uses itself, directly or through others (a cycle);
- wildcards nested more than MAX_WILDCARD_DEPTH (64) levels;
- nesting of more than MAX_NESTING levels in all: every `{…}`, `__…__`, `${…}` and `%{…}` inside
  another counts one, wherever it is written (template or file).

Past this check a walk is at most MAX_NESTING constructs deep. What cannot be known before sampling —
a variable's value read somewhere else than where it is set, a wildcard whose name is computed
(`__${x}__`) — is added as the samplers enter it: `#h` in their scopes starts at the template's height
and grows by the height of each such value or wildcard, and past MAX_NESTING it is the same error. So
no walk, static or not, goes deeper than MAX_NESTING levels.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from ..errors import TemplateError
from .ast import AnyNode, Seq, Text, VarGet, Variant, VarSet, Wildcard, Wrap
from .resolve import MAX_WILDCARD_DEPTH, Resolver, cycle_error, too_deep

# 100 levels: the parser's limit for one text, now for a template and its wildcards together. A
# 64-deep chain of plain wildcard lines fits, and real packs nest a few levels. The walks spend at most
# about 6 Python frames a level (3.10; fewer on 3.13), so 100 levels stay within 700 frames of Python's
# default 1,000, leaving the caller 300 (tests/wildcards/test_nesting.py holds every mode to that).
MAX_NESTING = 100


def too_nested(at: AnyNode, path: Tuple[str, ...] = ()) -> TemplateError:
    through = f" (through {' → '.join('__' + p + '__' for p in path)})" if path else ""
    return TemplateError(f"template and wildcards nest deeper than {MAX_NESTING} levels{through}", at.location(),
                         "flatten the wildcard files or the template: fewer {…} inside {…} inside __…__")


class Nesting:
    """Heights (the deepest nesting below a node, through wildcards) and wildcard depths, memoised
    per node and per wildcard name for the life of one resolver."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._nodes: Dict[int, Tuple[int, int, AnyNode]] = {}  # id -> (height, wildcard depth, node)
        self._patterns: Dict[str, Tuple[int, int]] = {}  # name -> (height of its lines, wildcard depth)

    # -- public ------------------------------------------------------------------------------------
    def check(self, root: AnyNode) -> List[Tuple[str, AnyNode]]:
        """Raise the first cycle, too-deep or too-nested error of `root`; else the wildcards it reaches
        that were not measured before, deepest first (so they can be compiled bottom-up)."""
        done: List[Tuple[str, AnyNode]] = []
        found = self._nodes.get(id(root))
        height = found[0] if found is not None else 0 if root.__class__ is Text else self._measure(root, done)
        if height > MAX_NESTING:
            raise self._where_too_nested(root)
        return done

    def height(self, node: AnyNode) -> int:
        """The node's height; measured now if it was not (a variable's value met while sampling)."""
        if node.__class__ is Text:
            return 0
        found = self._nodes.get(id(node))
        return found[0] if found is not None else self._measure(node, [])

    def pattern_height(self, pattern: str, at: AnyNode) -> int:
        """Height of a wildcard reached by a computed name: 1 for itself, plus its tallest line."""
        found = self._patterns.get(pattern)
        if found is None:
            self._measure(Wildcard(Text(pattern), src=at.src, pos=at.pos), [])
            found = self._patterns[pattern]
        return 1 + found[0]

    # -- the walk --------------------------------------------------------------------------------------
    def _measure(self, root: AnyNode, done: List[Tuple[str, AnyNode]]) -> int:
        """Post-order over the AST and the wildcards it names, with an explicit stack. A frame is
        [node, children still to visit, tallest child so far, deepest wildcard chain so far, the
        wildcard name it stands for or None]."""
        chain: List[str] = []
        stack: List[list] = []
        result: Optional[Tuple[int, int]] = None

        def push(node: AnyNode, pattern: Optional[str] = None, choices: Optional[List[AnyNode]] = None) -> None:
            kids = choices if choices is not None else self._children(node)
            stack.append([node, kids, 0, 0, pattern])

        push(root)
        while stack:
            frame = stack[-1]
            node, kids = frame[0], frame[1]
            if result is not None:  # a child just finished: fold it in
                frame[2] = max(frame[2], result[0])
                frame[3] = max(frame[3], result[1])
                result = None
            if kids:
                child = kids.pop()
                if isinstance(child, tuple):  # ("wildcard", pattern, at): a name to enter
                    result = self._enter(child[1], child[2], chain, done, push)
                elif child.__class__ is Text:
                    result = (0, 0)
                else:
                    found = self._nodes.get(id(child))
                    if found is not None:
                        result = found[:2]
                    else:
                        push(child)
                continue
            stack.pop()
            pattern = frame[4]
            if pattern is not None:  # the lines of a wildcard: the name itself is one level more
                chain.pop()
                self._patterns[pattern] = (frame[2], frame[3])
                done.append((pattern, node))
                result = (frame[2], frame[3] + 1)
            else:
                own = 0 if isinstance(node, Seq) else 1
                result = (frame[2] + own, frame[3])
                self._nodes[id(node)] = (result[0], result[1], node)
        assert result is not None
        return result[0]

    def _enter(self, pattern: str, at: AnyNode, chain: List[str], done: List[Tuple[str, AnyNode]],
               push) -> Optional[Tuple[int, int]]:
        """A static wildcard name met on the walk: its measure if known, else its lines are pushed."""
        found = self._patterns.get(pattern)
        if found is not None:
            if len(chain) + found[1] + 1 > MAX_WILDCARD_DEPTH:
                raise too_deep(at)
            return found[0], found[1] + 1
        if pattern in chain:
            raise cycle_error(chain[chain.index(pattern):] + [pattern], at)
        if len(chain) >= MAX_WILDCARD_DEPTH:
            raise too_deep(at)
        choices = [c.node for c in self.resolver.resolve(pattern, at).choices]
        chain.append(pattern)
        push(at, pattern, choices[::-1])  # popped from the end: first choice first
        return None

    @staticmethod
    def _children(node: AnyNode) -> list:
        """What a node holds, last to be visited first; a static wildcard name as ("wildcard", name, node).
        The order is the compiler's: a sequence's assignments, then the rest; parameters before the name."""
        if isinstance(node, Seq):
            sets = [i for i in node.items if isinstance(i, VarSet)]
            rest = [i for i in node.items if not isinstance(i, VarSet)]
            return (sets + rest)[::-1]
        if isinstance(node, Variant):
            return [o.body for o in node.options][::-1]
        if isinstance(node, Wildcard):
            kids: list = [value for _, value in node.params]
            if isinstance(node.path, Text):
                kids.append(("wildcard", node.path.text, node))
            else:
                kids.append(node.path)
            return kids[::-1]
        if isinstance(node, VarSet):
            return [node.value]
        if isinstance(node, VarGet):
            return [node.default] if node.default is not None else []
        if isinstance(node, Wrap):
            return [node.inner, node.wrapper]
        return []

    def _where_too_nested(self, root: AnyNode) -> TemplateError:
        """The construct at level MAX_NESTING + 1 on the tallest path, and the wildcards on the way."""
        node, level, path = root, 0, []
        via = ""
        while True:
            if not isinstance(node, Seq):
                level += 1
                if level > MAX_NESTING:
                    return too_nested(node, tuple(path))
            best: Optional[AnyNode] = None
            best_h = -1
            for kid in self._children(node)[::-1]:
                if isinstance(kid, tuple):
                    for choice in self.resolver.resolve(kid[1], kid[2]).choices:
                        h = self.height(choice.node)
                        if h > best_h:
                            best, best_h, via = choice.node, h, kid[1]
                    continue
                h = self.height(kid)
                if h > best_h:
                    best, best_h, via = kid, h, ""
            if best is None:  # pragma: no cover - the heights say there is a taller child
                return too_nested(node, tuple(path))
            if via:  # the wildcard node itself was this level; its line is the next
                path.append(via)
            node = best
