"""Embeddings from an OpenAI-compatible server: LM Studio, Ollama, llama.cpp's server (`--embeddings`), or
any URL. The enhancement client's connection handling, timeouts and reasons are shared (enhance.client), so
a failure reads the same and never holds the server's address or API key; a breaker per server address
makes a server that is off cost one timeout, not one per chunk of LoRAs.

The answer is checked before it is used: one vector per text, in the order of `index`, all of one size,
finite numbers only. Rows are L2-normalised here: not every server does it.
"""
from __future__ import annotations

import os
import threading
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, TypeVar

import numpy
import requests

from ..enhance.breaker import Breaker
from ..enhance.client import API_KEY_ENV, LlmError, Server, list_models, post_json, server_url
from .base import Embedder, EmbedError
from .texts import encodable

__all__ = ["BATCH", "RemoteEmbedder", "embedder_for", "pick_model", "vectors_of"]

BATCH = 64  # texts per request: small enough for a server's batch and read timeout, big enough to be quick
BUILTIN_NAMES = ("", "builtin")
# A server that failed is skipped for this long, after one failure: a dead one costs one timeout per minute,
# whatever the library's size. Shared by every embedder of one address in the process.
BREAKER_SECONDS = 60.0
_EXAMPLES = "LM Studio: text-embedding-nomic-embed-text-v1.5; Ollama: nomic-embed-text"

_breakers: Dict[str, Breaker] = {}
_breakers_lock = threading.Lock()
T = TypeVar("T")


def breaker_for(base_url: str) -> Breaker:
    with _breakers_lock:
        return _breakers.setdefault(base_url.rstrip("/"), Breaker(failures_to_open=1, open_seconds=BREAKER_SECONDS))


class RemoteEmbedder:
    """`model` "" means the first model the server lists with `embed` in its id (or its only model); it is
    looked up on the first call and kept in `model`, which is "" until then. `dim` is the size of the last
    vectors received (0 before any): the width of the zero rows of a call whose texts are all empty."""

    kind = "url"

    def __init__(self, server: Server, model: str = "", session: Optional[requests.Session] = None,
                 batch: int = BATCH, breaker: Optional[Breaker] = None) -> None:
        self.server = server
        self.model = (model or "").strip()
        self.batch = max(1, int(batch))
        self.dim = 0
        self._session = session
        self._breaker = breaker if breaker is not None else breaker_for(server.base_url)
        self._lock = threading.Lock()  # one model lookup, however many threads ask at once

    def __repr__(self) -> str:  # the address may hold a password (http://user:pass@host): never shown
        return f"RemoteEmbedder(model={self.model!r})"

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        texts = [encodable(str(t)) for t in texts]  # a lone surrogate is no JSON a server reads
        # Servers refuse or vary on empty input; a text with no words has no tokens: its row is zero.
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        if not wanted:
            return numpy.zeros((len(texts), self.dim), numpy.float32)
        model = self._model()
        parts: List[numpy.ndarray] = []
        for start in range(0, len(wanted), self.batch):
            matrix = self._guarded(partial(self._ask, model, [texts[i] for i in wanted[start:start + self.batch]]))
            if parts and matrix.shape[1] != parts[0].shape[1]:
                raise EmbedError(f"the server answered with {matrix.shape[1]}-d vectors after "
                                 f"{parts[0].shape[1]}-d ones", hint="keep one embedding model loaded under this name")
            parts.append(matrix)
        self.dim = parts[0].shape[1]
        out = numpy.zeros((len(texts), self.dim), numpy.float32)
        out[wanted] = numpy.concatenate(parts)
        return out

    def _ask(self, model: str, texts: List[str]) -> numpy.ndarray:
        body = {"model": model, "input": texts}  # floats, the default: base64 is never asked for
        return vectors_of(post_json(self.server, "/embeddings", body, self._session, _explain), len(texts))

    def _model(self) -> str:
        with self._lock:
            if not self.model:
                self.model = self._guarded(lambda: pick_model(list_models(self.server, self._session)))
            return self.model

    def _guarded(self, call: Callable[[], T]) -> T:
        """`call()` unless the breaker says the server failed a moment ago; each failure, LlmError or a bad
        answer alike, opens it (a server that answers nonsense answers it every time)."""
        blocked = self._breaker.blocked()
        if blocked:
            raise EmbedError(f"embedding server: {blocked}", hint="semantic matching uses keywords meanwhile")
        try:
            result = call()
        except LlmError as exc:
            self._breaker.failed(str(exc))
            raise EmbedError(f"embedding server: {exc}") from None
        except EmbedError as exc:
            self._breaker.failed(exc.message)
            raise
        self._breaker.succeeded()
        return result


def pick_model(models: Sequence[str]) -> str:
    """The model to ask when none is named: the first with `embed` in its id, else the server's only one."""
    found = [m for m in models if "embed" in m.lower()]
    if found:
        return found[0]
    if len(models) == 1:  # llama.cpp serves one model, whatever its name
        return models[0]
    if not models:
        raise EmbedError("the embedding server has no model", hint=f"load or pull an embedding model ({_EXAMPLES})")
    shown = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
    raise EmbedError(f"none of the server's models has `embed` in its name ({shown})",
                     hint=f"name the embedding model to use, or load one ({_EXAMPLES})")


def vectors_of(answer: Any, count: int) -> numpy.ndarray:
    """An /embeddings answer as float32 (count, dim), rows L2-normalised, in the order of `index`."""
    items = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise EmbedError("the embedding server answered without a `data` list",
                         hint="is the address an OpenAI-compatible /v1 endpoint?")
    if len(items) != count:
        raise EmbedError(f"the embedding server returned {len(items)} vectors for {count} texts",
                         hint="try another embedding model or server")
    ordered: List[Any] = [None] * count
    for position, item in enumerate(items):
        vector = item.get("embedding") if isinstance(item, dict) else None
        index = item.get("index", position) if isinstance(item, dict) else None
        if isinstance(vector, str):
            raise EmbedError("the embedding server sent its vectors as base64, which was not asked for",
                             hint="use a server that follows the OpenAI API")
        if not isinstance(vector, list) or not vector:
            raise EmbedError("the embedding server sent something that is not a list of numbers as a vector")
        if type(index) is not int or not 0 <= index < count or ordered[index] is not None:
            raise EmbedError("the embedding server's answer numbers its vectors wrongly (`index`)")
        ordered[index] = vector
    if len({len(v) for v in ordered}) != 1:
        raise EmbedError("the embedding server sent vectors of different sizes in one answer",
                         hint="try another embedding model")
    matrix = numpy.array(ordered)
    if matrix.ndim != 2 or matrix.dtype.kind not in "fi":  # strings, nulls, nested lists, booleans
        raise EmbedError("the embedding server sent something that is not a list of numbers as a vector")
    matrix = matrix.astype(numpy.float64)
    if not numpy.isfinite(matrix).all():
        raise EmbedError("the embedding server sent vectors holding NaN or infinity",
                         hint="the model does not suit embeddings: load an embedding model")
    norms = numpy.linalg.norm(matrix, axis=1, keepdims=True)
    numpy.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix.astype(numpy.float32)


def _explain(status: int, said: str) -> Optional[str]:
    """What the embeddings' own failures mean, in words that say what to do (the chat reasons cover the rest).
    `said` is the server's message, already cut short and cleaned of the address and key."""
    low = said.lower()
    if "does not support embeddings" in low:  # llama.cpp without --embeddings; Ollama relays it for a chat model
        return ("the server's model cannot make embeddings: with Ollama, name an embedding model "
                "(`ollama pull nomic-embed-text`); start llama.cpp's server with --embeddings and an embedding model")
    if "model is not embedding" in low:  # LM Studio, asked for embeddings from a chat model
        return ("LM Studio: that model is not an embedding model: name one "
                "(e.g. text-embedding-nomic-embed-text-v1.5), or leave the model empty to use the first listed")
    if "no models loaded" in low:  # LM Studio with no embedding model loaded (a chat model does not count)
        return "LM Studio has no embedding model loaded: load one (e.g. nomic-embed-text-v1.5), or turn on JIT loading"
    if "pooling type 'none'" in low:
        return "llama.cpp's server runs with --pooling none: restart it with --pooling mean (or cls, last)"
    if "physical batch size" in low or "too large to process" in low:
        return "a text is longer than llama.cpp's batch: restart its server with a larger --ubatch-size (-ub)"
    if status == 404 and "model" in low and "not found" in low:  # Ollama (old and new wording), LM Studio
        return f"the server does not have that model ({said}): pull or download it (`ollama pull <model>`), " \
               "or leave the model empty to use the first embedding model listed"
    return None


def embedder_for(spec: str, model: str = "", timeout: float = 60.0) -> Embedder:
    """`builtin` (or empty): the offline embedder; else a server's address or preset name (lmstudio, ollama,
    llamacpp), whose API key comes from ORCH_LLM_API_KEY as the enhancement's does. EmbedError when the
    built-in one is not usable or `timeout` is not a positive number; a server is only asked on first use."""
    text = (spec or "").strip()
    if text.lower() in BUILTIN_NAMES:
        from .builtin import builtin_embedder

        return builtin_embedder()
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise EmbedError("the embedding timeout must be a positive number of seconds")
    server = Server(server_url(text), api_key=os.environ.get(API_KEY_ENV) or None, read_timeout=seconds)
    return RemoteEmbedder(server, model)
