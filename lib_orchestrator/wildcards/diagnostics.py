"""A finding about a template or wildcard file, printed as `path:line:col: severity: message`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import Location, OrchestratorError

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    location: Optional[Location]
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.severity}: {self.message}"

    @classmethod
    def from_error(cls, exc: OrchestratorError) -> "Finding":
        hint = f" ({exc.hint})" if exc.hint else ""
        return cls(exc.location, ERROR, exc.message + hint)
