"""How close each LoRA's meaning is to a prompt's: one vector per LoRA, one per prompt, a dot product.

The LoRA vectors are made once per library (and kept in the library cache by text hash, so a rescan
embeds only what changed); a prompt's vector is made per image and remembered for the next images of a
job, whose prompts often repeat. numpy is imported here only: keyword matching never needs it.
"""
from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import TYPE_CHECKING, Callable, FrozenSet, Optional, Sequence

import numpy as np

from ..embeddings.texts import lora_fields, prompt_text

if TYPE_CHECKING:
    from ..embeddings.base import Embedder
    from ..embeddings.library import EmbedStats
    from ..library import LoraRecord
    from ..library.cache import VectorCache

_PROMPTS_KEPT = 256  # prompt vectors remembered: a batch of 200 images over a dozen templates asks once each
COMMON_SHARE, COMMON_LEAST = 0.05, 10  # a tag on more than this share of the library, and this many LoRAs…


def common_tags(records: Sequence["LoraRecord"]) -> FrozenSet[str]:
    """…says nothing of any one of them: `sexy`, `base model`, `1girl`, `simple background`. Lower case."""
    counts: Counter = Counter()
    for r in records:
        counts.update({t.strip().lower() for t in (*r.tags, *r.suggested_tags[:5])})
    most = max(COMMON_LEAST, int(len(records) * COMMON_SHARE))
    return frozenset(t for t, n in counts.items() if n > most)


class SemanticIndex:
    """LoRA vectors in the order of `LoraIndex.records`, and the embedder that made them (prompts must be
    embedded by the same one: vectors of two models are not comparable)."""

    def __init__(self, vectors: np.ndarray, embedder: "Embedder", stats: Optional["EmbedStats"] = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.embedder = embedder
        self.stats = stats
        self._prompts: "OrderedDict[str, np.ndarray]" = OrderedDict()
        self._lock = threading.Lock()  # Forge's generation and the tab's previews share one index

    @classmethod
    def build(cls, records: Sequence["LoraRecord"], embedder: "Embedder", cache: Optional["VectorCache"] = None,
              notes: Callable[["LoraRecord"], str] = lambda record: "") -> "SemanticIndex":
        """Vectors for these records (a LoraIndex's, in its order; the whole library, so the cache forgets the
        vectors of texts no record has any more). Raises EmbedError.

        Each field of a LoRA (name, triggers, tags, category, description, notes) is embedded on its own and
        the LoRA's vector is the mean of its fields' directions: a mean over all its words together lets
        the longest field (a page of description, a list of tags) outvote the name. The fields' texts are
        what the cache keeps; a category or a tag list many LoRAs share is embedded once."""
        from ..embeddings.library import embed_texts

        common = common_tags(records)
        fields = [lora_fields(r, notes(r), common) for r in records]
        texts = list(dict.fromkeys(text for f in fields for text in f))
        at = {text: k for k, text in enumerate(texts)}
        matrix, stats = embed_texts(texts, embedder, cache, prune=True)
        vectors = np.zeros((len(records), matrix.shape[1] if matrix.ndim == 2 else 0), np.float32)
        for i, f in enumerate(fields):
            if f:
                vectors[i] = matrix[[at[text] for text in f]].sum(axis=0)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        np.divide(vectors, norms, out=vectors, where=norms > 0)
        return cls(vectors, embedder, stats)

    @property
    def label(self) -> str:
        """Which embedder made the vectors, for people: `builtin wordllama-…`, `url nomic-embed-text`."""
        return f"{self.embedder.kind} {self.embedder.model}"

    def similarities(self, prompt: str) -> Optional[np.ndarray]:
        """Cosine similarity of every LoRA to the prompt, or None for a prompt with nothing to embed (only
        LoRA tags and weights). Raises EmbedError (a remote embedder that stopped answering)."""
        text = prompt_text(prompt)
        if not text:
            return None
        with self._lock:
            query = self._prompts.get(text)
            if query is not None:
                self._prompts.move_to_end(text)
        if query is None:
            query = self.embedder.embed([text])[0]
            with self._lock:
                self._prompts[text] = query
                while len(self._prompts) > _PROMPTS_KEPT:
                    self._prompts.popitem(last=False)
        if not np.any(query):
            return None
        if query.shape[0] != self.vectors.shape[1]:  # a server that swapped the model behind the same name
            from ..embeddings.base import EmbedError

            raise EmbedError(f"the embedder now answers in {query.shape[0]} dimensions, the library's vectors have "
                             f"{self.vectors.shape[1]}", hint="rescan the library (Refresh) to embed it again")
        return self.vectors @ query
