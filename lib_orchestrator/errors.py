"""The error types of the core: each carries where it happened and what to do about it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Type


@dataclass(frozen=True)
class Location:
    """A place in a file or template, 1-based, with the text of its line for a caret excerpt."""

    source: str
    line: int
    column: int
    line_text: str = ""

    def __str__(self) -> str:
        if self.line <= 0:  # a folder or a whole file: no position inside it
            return self.source
        return f"{self.source}:{self.line}:{self.column}"

    def excerpt(self) -> str:
        if not self.line_text:
            return ""
        shown = self.line_text.replace("\t", " ")
        return f"  {shown}\n  {' ' * (self.column - 1)}^"


class OrchestratorError(Exception):
    """Base of every error the core raises on bad input."""

    def __init__(self, message: str, location: Optional[Location] = None, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def one_line(self) -> str:
        """`path:line:col: error: message (hint)`: the CLI's format."""
        where = f"{self.location}: " if self.location else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}error: {self.message}{hint}"

    def __str__(self) -> str:
        parts = [self.one_line()]
        if self.location and self.location.excerpt():
            parts.append(self.location.excerpt())
        return "\n".join(parts)


class TemplateError(OrchestratorError):
    """A template or wildcard file that cannot be parsed or sampled."""


class WildcardFileError(OrchestratorError):
    """A wildcard file that cannot be read (encoding, YAML/JSON syntax, size)."""


def yaml_error(exc: Exception, source: str, hint: str,
               kind: Type[OrchestratorError] = OrchestratorError) -> OrchestratorError:
    """A YAML parser's error as ours: where its problem mark is (else line 1), what it says, the hint."""
    mark = getattr(exc, "problem_mark", None)
    where = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source, 1, 1)
    return kind(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", where, hint)
