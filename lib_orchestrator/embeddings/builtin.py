"""The offline embedder: WordLlama's bundled `l2_supercat` 256-d static token embeddings, read from the
files of the installed `wordllama` distribution. Nothing is downloaded, ever.

`wordllama` is installed with `--no-deps` (its metadata asks for numpy>=2, which would replace Forge's 1.26)
and is never imported: its own imports may be missing and its compiled parts were built against numpy 2.
Its two data files are found through the distribution's metadata and read here: the weights (one float16
safetensors tensor, 32000x256) with a reader of our own, checked against their sha256 so that vectors made
from other weights never mix with cached ones; the tokenizer (LLaMA 2's) with `tokenizers`. A text's vector
is the mean of its tokens' vectors, L2-normalised (docs/embeddings.md has the measurements behind the choice).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import threading
from typing import Any, Optional, Sequence, Tuple

import numpy

from .base import EmbedError
from .texts import encodable

__all__ = ["DISTRIBUTION", "INSTALL", "MODEL", "WEIGHTS_SHA256", "BuiltinEmbedder", "builtin_embedder",
           "builtin_status", "load_builtin"]

DISTRIBUTION = "wordllama"
VERSION = "0.4.0.post1"
INSTALL = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"  # never without --no-deps: see the docstring
WEIGHTS_FILE = "wordllama/weights/l2_supercat_256.safetensors"
TOKENIZER_FILE = "wordllama/tokenizers/l2_supercat_tokenizer_config.json"
# The same bytes in every wheel of 0.4.0.post1 (Linux, Windows, macOS) and in 0.3.9. The tokenizer file is
# not pinned by hash: the Windows wheel has it with CRLF line ends. CANARY checks that it splits as LLaMA 2's.
WEIGHTS_SHA256 = "64b47a2dc493cb8e85944076601189739852d7b64e0e1eedcb1937a251cd9fd5"
TENSOR, ROWS, DIM = "embedding.weight", 32000, 256
MODEL = f"wordllama-l2_supercat-{DIM}@{WEIGHTS_SHA256[:8]}"
CANARY = ("a qipao dress", [263, 3855, 666, 6241, 10714])
GATHER_TOKENS = 4096  # token rows gathered at a time (2 MiB of float16, cache-sized): fastest, and small


class BuiltinEmbedder:
    """Immutable once made: the weights are a read-only view of the verified file's bytes, so threads share it."""

    kind = "builtin"
    model = MODEL

    def __init__(self, weights: numpy.ndarray, tokenizer: Any) -> None:
        self._weights = weights  # float16 (ROWS, DIM): rows gathered per call are summed in float32
        self._tokenizer = tokenizer
        self.dim = int(weights.shape[1])

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        texts = [encodable(str(t)) for t in texts]
        out = numpy.zeros((len(texts), self.dim), numpy.float32)
        if not texts:
            return out
        try:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        except Exception as exc:  # tokenizers raises plain Exception and TypeError: nothing known reaches here
            raise EmbedError(f"the built-in embedder cannot tokenize a text ({type(exc).__name__})",
                             hint="report it with the LoRA's name") from None
        start = 0
        while start < len(encodings):  # texts in groups of about GATHER_TOKENS tokens
            end, tokens = start, 0
            while end < len(encodings) and (end == start or tokens + len(encodings[end].ids) <= GATHER_TOKENS):
                tokens += len(encodings[end].ids)
                end += 1
            out[start:end] = self._sums(encodings[start:end], tokens)
            start = end
        norms = numpy.linalg.norm(out, axis=1, keepdims=True)
        numpy.divide(out, norms, out=out, where=norms > 0)  # the mean's direction: no need to divide by length
        return out

    def _sums(self, encodings: Sequence[Any], tokens: int) -> numpy.ndarray:
        """Per text, the sum of its token vectors (zeros for a text with no tokens)."""
        lengths = numpy.fromiter((len(e.ids) for e in encodings), numpy.int64, len(encodings))
        sums = numpy.zeros((len(encodings), self.dim), numpy.float32)
        if tokens == 0:
            return sums
        ids = numpy.fromiter(itertools.chain.from_iterable(e.ids for e in encodings), numpy.int64, tokens)
        nonempty = lengths > 0
        starts = (numpy.cumsum(lengths) - lengths)[nonempty]  # each text's first row; empty texts have none
        # Summed in float32 straight from the float16 rows: no float32 copy of them (twice as fast).
        sums[nonempty] = numpy.add.reduceat(self._weights[ids], starts, axis=0, dtype=numpy.float32)
        return sums


_lock = threading.Lock()
_loaded: Optional[BuiltinEmbedder] = None
_failure: Optional[EmbedError] = None


def builtin_embedder() -> BuiltinEmbedder:
    """The built-in embedder, loaded once per process (under a lock: Forge asks from several threads). A failure
    is kept too, so a missing package costs one look, not one per call: install, then restart."""
    global _loaded, _failure
    with _lock:
        if _loaded is None and _failure is None:
            try:
                _loaded = load_builtin()
            except EmbedError as exc:
                _failure = exc
        if _loaded is None:
            assert _failure is not None
            raise EmbedError(_failure.message, hint=_failure.hint)
        return _loaded


def builtin_status() -> Optional[str]:
    """None when the built-in embedder works, else one line why not (for the UI and the CLI)."""
    try:
        builtin_embedder()
    except EmbedError as exc:
        return exc.message + (f" ({exc.hint})" if exc.hint else "")
    return None


def load_builtin(weights_path: Optional[str] = None, tokenizer_path: Optional[str] = None) -> BuiltinEmbedder:
    """Read and check the files (those of the installed distribution unless given). Uncached: use
    builtin_embedder()."""
    if weights_path is None or tokenizer_path is None:
        found_weights, found_tokenizer = distribution_files()
        weights_path = weights_path or found_weights
        tokenizer_path = tokenizer_path or found_tokenizer
    weights = read_weights(weights_path)
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise EmbedError("the built-in embedder needs the tokenizers package, which is missing",
                         hint='pip install "tokenizers>=0.13"') from None
    try:
        tokenizer = Tokenizer.from_file(tokenizer_path)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        canary = tokenizer.encode(CANARY[0], add_special_tokens=False).ids
        size = tokenizer.get_vocab_size()
    except Exception as exc:  # a missing, unreadable or foreign file: tokenizers raises Exception itself
        raise EmbedError(f"the built-in embedder's tokenizer cannot be read ({type(exc).__name__})",
                         hint=f"reinstall it: {INSTALL} --force-reinstall") from None
    if size != ROWS or list(canary) != CANARY[1]:
        raise EmbedError("the built-in embedder's tokenizer is not the one its weights were trained with",
                         hint=f"reinstall it: {INSTALL} --force-reinstall")
    return BuiltinEmbedder(weights, tokenizer)


def distribution_files() -> Tuple[str, str]:
    """Where the installed wordllama keeps the weights and the tokenizer, found through its metadata: its
    package is never imported (importlib.resources would import it)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise EmbedError("the built-in embedder is not installed", hint=INSTALL) from None
    return str(dist.locate_file(WEIGHTS_FILE)), str(dist.locate_file(TOKENIZER_FILE))


def read_weights(path: str) -> numpy.ndarray:
    """The token embedding matrix, float16 (ROWS, DIM), read-only, from a file whose sha256 is WEIGHTS_SHA256.
    The file is read whole (16 MiB), hashed, and the tensor is a view of those same bytes: what was checked
    is what is used. safetensors layout: an 8-byte little-endian header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the data."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise EmbedError(f"the built-in embedder's weights cannot be read ({exc.strerror or type(exc).__name__})",
                         hint=f"reinstall it: {INSTALL} --force-reinstall") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise EmbedError(f"the built-in embedder's weights file differs (sha256 {digest[:12]}…, expected "
                         f"{WEIGHTS_SHA256[:12]}…)", hint=f"reinstall it: {INSTALL} --force-reinstall")
    try:  # the hash fixes the bytes, so this holds; checked anyway rather than trusted blindly
        size = int.from_bytes(data[:8], "little")
        entry = json.loads(data[8:8 + size])[TENSOR]
        begin, end = entry["data_offsets"]
        if entry["dtype"] != "F16" or entry["shape"] != [ROWS, DIM] or end - begin != ROWS * DIM * 2:
            raise ValueError(entry)
        return numpy.frombuffer(data, dtype="<f2", count=ROWS * DIM, offset=8 + size + begin).reshape(ROWS, DIM)
    except (ValueError, KeyError, TypeError) as exc:
        raise EmbedError(f"the built-in embedder's weights are not laid out as expected ({type(exc).__name__})",
                         hint="report it") from None
