"""What every embedder is: a kind, a model name, and `embed(texts)` giving one unit vector per text.

No numpy here: the protocol is imported by code that only names it."""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence

from ..errors import OrchestratorError

if TYPE_CHECKING:  # numpy is imported only by the embedders themselves
    import numpy

__all__ = ["EmbedError", "Embedder"]


class EmbedError(OrchestratorError):
    """No vectors: the embedder is not installed, its files are not the expected ones, or its server failed.
    The message says what to do; it never holds a server's address or API key (it ends up in the UI and in
    logs), and semantic matching falls back to keywords."""


class Embedder(Protocol):
    kind: str  # "builtin" | "url": with `model`, the cache key of every vector it made
    model: str  # builtin: "wordllama-l2_supercat-256@64b47a2d"; url: the server's model id ("" until known)

    def embed(self, texts: Sequence[str]) -> "numpy.ndarray":
        """float32 (len(texts), dim), each row L2-normalised; an all-zero row for a text with no tokens.
        Raises EmbedError."""
