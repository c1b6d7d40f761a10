"""Embedding the library's texts through the cache: a text whose vector is cached under (embedder kind,
model, text hash) is never sent to the embedder again, so a rescan embeds only new or changed LoRAs.

Imported only where embeddings are used, so numpy is imported at the top.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy

from .texts import text_hash

if TYPE_CHECKING:
    from ..library.cache import VectorCache
    from .base import Embedder

# Texts per call to the embedder: a remote server gets requests it can answer within its timeout (it may cut
# them smaller again), and the vectors of each chunk are kept as soon as they come, so an embedder that fails
# half-way through a large library leaves what it did in the cache for the next try.
CHUNK = 512


@dataclass(frozen=True)
class EmbedStats:
    total: int  # distinct texts (texts that are equal are embedded once and counted once)
    from_cache: int
    embedded: int  # sent to the embedder; total == from_cache + embedded
    seconds: float


def embed_texts(texts: Sequence[str], embedder: "Embedder", cache: Optional["VectorCache"],
                prune: bool = False) -> Tuple[numpy.ndarray, EmbedStats]:
    """One float32 row per text, in the order of `texts`, from the cache where it holds the text's vector
    under the embedder's kind and model, else from `embedder.embed` (cache misses only, each distinct text
    once, CHUNK at a time); new vectors go into the cache. `prune`: `texts` are the whole library, so the
    cached vectors of this kind and model for any other text are deleted.

    The cache never makes this fail (a locked or damaged one only costs time). EmbedError from the
    embedder propagates (the caller falls back to keywords), as does one for an answer of the wrong shape."""
    start = time.perf_counter()
    hashes = [text_hash(text) for text in texts]
    unique: Dict[bytes, str] = dict(zip(hashes, texts))  # each hash once, in order of first appearance
    if not unique:
        return numpy.zeros((0, 0), numpy.float32), EmbedStats(0, 0, 0, time.perf_counter() - start)
    kind = embedder.kind
    vectors: Dict[bytes, numpy.ndarray] = {}
    dim = embedded = 0  # the size of the vectors the embedder gives now, and how many it gave

    def embed(part: List[bytes]) -> None:
        nonlocal dim, embedded
        for i in range(0, len(part), CHUNK):
            chunk = part[i:i + CHUNK]
            matrix = _checked(embedder.embed([unique[h] for h in chunk]), len(chunk))
            if dim and matrix.shape[1] != dim:
                raise _embed_error(f"the embedder returned {matrix.shape[1]}-d vectors after {dim}-d ones for the "
                                   "same model", "check that the server keeps one model loaded under this name")
            dim = matrix.shape[1]
            finite = numpy.isfinite(matrix).all(axis=1)
            matrix[~finite] = 0.0  # a row of NaN would make every score NaN: this text gets no semantic match
            vectors.update(zip(chunk, matrix))
            embedded += len(chunk)
            if cache is not None and embedder.model:  # as each chunk comes; one not finite is asked again
                cache.put(kind, embedder.model, [(h, row) for h, row, ok in zip(chunk, matrix, finite) if ok])

    missing = list(unique)
    if cache is not None and not embedder.model:
        # A remote embedder that asks the server for its model on its first request: one text first, so the
        # model is known and the rest can be looked up (else each start would embed the whole library again).
        embed(missing[:1])
        missing = missing[1:]
    cached = _one_size(cache.get(kind, embedder.model, missing)) if cache is not None and embedder.model else {}
    vectors.update(cached)
    embed([h for h in missing if h not in cached])
    # Cached vectors of another size than the embedder's now are another model's (a server swapped the model
    # behind this name), not comparable with the new ones: embedded again. With nothing new embedded, the
    # cache's are the answer, unchecked: a swap then shows when the first prompt is embedded.
    embed([h for h, vector in vectors.items() if dim and vector.shape[0] != dim])
    if prune and cache is not None and embedder.model:
        cache.keep(kind, embedder.model, list(unique))
    table = numpy.stack([vectors[h] for h in unique]).astype(numpy.float32, copy=False)
    if len(unique) < len(hashes):  # equal texts share one vector: spread it to each of their rows
        position = {h: k for k, h in enumerate(unique)}
        table = table[numpy.fromiter((position[h] for h in hashes), dtype=numpy.intp, count=len(hashes))]
    return table, EmbedStats(len(unique), len(unique) - embedded, embedded, time.perf_counter() - start)


def _one_size(cached: Dict[bytes, numpy.ndarray]) -> Dict[bytes, numpy.ndarray]:
    """The cached vectors of the most common size, should the cache hold several for one model (a server
    that swapped the model behind a name): the others are treated as missing."""
    sizes = Counter(vector.shape[0] for vector in cached.values())
    if len(sizes) <= 1:
        return cached
    size = sizes.most_common(1)[0][0]
    return {h: vector for h, vector in cached.items() if vector.shape[0] == size}


def _checked(answer: object, count: int) -> numpy.ndarray:
    """The embedder's answer as a new float32 matrix of `count` rows (a copy: rows that are not finite are
    zeroed in it), or EmbedError when it is not one."""
    try:
        matrix = numpy.array(answer, dtype=numpy.float32)
    except (TypeError, ValueError) as exc:
        raise _embed_error(f"the embedder's answer is not a matrix of numbers ({exc})",
                           "check the embedding server's model, or use the builtin embedder") from None
    if matrix.ndim != 2 or matrix.shape[0] != count or not matrix.shape[1]:
        raise _embed_error(f"the embedder returned vectors of shape {matrix.shape} for {count} texts",
                           "check the embedding server's model, or use the builtin embedder")
    return matrix


def _embed_error(message: str, hint: str) -> Exception:
    from .base import EmbedError

    return EmbedError(message, hint=hint)
