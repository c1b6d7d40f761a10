"""The embeddings client against fake LM Studio, Ollama and llama.cpp servers (real HTTP servers on 127.0.0.1,
tests/enhance/fake_servers.py) that answer with the bodies the real ones send: every failure becomes an
EmbedError that says what to do, never with the address or the key, and a server that is off costs one
timeout, not one per chunk."""
from __future__ import annotations

import math
import socket
import threading

import pytest

np = pytest.importorskip("numpy")

from lib_orchestrator.embeddings.base import EmbedError  # noqa: E402
from lib_orchestrator.embeddings.remote import RemoteEmbedder, embedder_for  # noqa: E402
from lib_orchestrator.enhance.breaker import Breaker  # noqa: E402
from lib_orchestrator.enhance.client import Server  # noqa: E402


def vector(text, dim=8):
    """The fake model's vector for a text, not normalised (the client must do it): worked out here."""
    return [float(len(text) + k) if k % 2 else float(ord(text[0]) - k) for k in range(dim)]


def unit(values):
    v = np.asarray(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def answer(texts, model, dim=8, shuffle=False):
    """An OpenAI-style list, as LM Studio, Ollama and llama.cpp send it (the `index` of each vector)."""
    data = [{"object": "embedding", "embedding": vector(t, dim), "index": i} for i, t in enumerate(texts)]
    if shuffle:
        data.reverse()
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": 0, "total_tokens": 0}}


# --- the three servers, as their sources and their users' reports show them ------------------------------
# LM Studio's /v1/models lists chat and embedding models alike (ids as LM Studio names them); its embeddings
# answer is the OpenAI list with usage zeros (lmstudio-ai/lmstudio-bug-tracker#1546, cheshire-cat-ai/core#1014).
# No embedding model loaded: {"error": "No models loaded. Please load a model in the developer page or use the
# 'lms load' command."} (lmstudio-ai/lmstudio-bug-tracker#1908, LM Studio 0.4; the status is not in the
# report: 400, as our chat fakes have it). A chat model named for embeddings (lmstudio-ai/lms#205, LM Studio
# 0.3.14): {"error": {"message": "Failed to load model \"...\". Error: Model is not embedding.", "type":
# "invalid_request_error", "param": "model", "code": "model_not_found"}} (status not in the report: 404).
LM_STUDIO_NOT_LOADED = (400, {"error": "No models loaded. Please load a model in the developer page or use the "
                                       "'lms load' command."})


def lm_studio_not_embedding(model):
    return 404, {"error": {"message": f'Failed to load model "{model}". Error: Model is not embedding.',
                           "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}


# Ollama (ollama/ollama at fb307609, server/routes.go EmbedHandler behind middleware/openai.go's
# EmbeddingsMiddleware, which wraps every error with openai.NewError): a model not pulled is 404 "model 'x' not
# found" (older releases: `model "x" not found, try pulling it first`); a chat model is run by llama-server
# without --embedding, whose 501 Ollama relays (llm/llama_server.go normalizeEmbeddingError; seen by users of
# Ollama 0.32: 501 "This server does not support embeddings. Start it with `--embeddings`").
def ollama_error(status, message):
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    return status, {"error": {"message": message, "type": kind, "param": None, "code": None}}


# llama.cpp's server (tools/server: handle_embeddings_impl, format_error_response): started without
# --embeddings it answers 501 not_supported_error; with --pooling none, 400 for the OAI route; while loading, 503.
LLAMA_CPP_NO_EMBEDDINGS = (501, {"error": {"code": 501, "message": "This server does not support embeddings. "
                                           "Start it with `--embeddings`", "type": "not_supported_error"}})
LLAMA_CPP_POOLING_NONE = (400, {"error": {"code": 400, "message": "Pooling type 'none' is not OAI compatible. "
                                          "Please use a different pooling type", "type": "invalid_request_error"}})
LLAMA_CPP_LOADING = (503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})


def embedding_server(kind, models, embed_models, failure=None, dim=8):
    """A behaviour for FakeServer: `kind` lists `models`; embeddings work for `embed_models` (llama.cpp: any
    name, it serves one model); `failure` (status, body) answers every embeddings request instead."""
    def behaviour(method, path, body):
        if path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}
        assert path.endswith("/embeddings") and method == "POST"
        if failure is not None:
            return failure
        if kind != "llamacpp" and body["model"] not in embed_models:
            if kind == "ollama":
                return (ollama_error(404, f"model '{body['model']}' not found") if body["model"] not in models
                        else LLAMA_CPP_NO_EMBEDDINGS)
            return lm_studio_not_embedding(body["model"])
        return 200, answer(body["input"], body["model"], dim, shuffle=kind == "ollama")
    return behaviour


def fresh(url, model="", **kw):
    """An embedder with a breaker of its own (the shared one would carry failures from test to test)."""
    return RemoteEmbedder(Server(url, **kw), model, breaker=Breaker(failures_to_open=1, open_seconds=60))


@pytest.mark.parametrize("kind, models, embed_models, picked", [
    ("lmstudio", ["qwen2.5-7b-instruct", "text-embedding-nomic-embed-text-v1.5"],
     ["text-embedding-nomic-embed-text-v1.5"], "text-embedding-nomic-embed-text-v1.5"),
    ("ollama", ["llama3.2:latest", "nomic-embed-text:latest"], ["nomic-embed-text:latest"],
     "nomic-embed-text:latest"),
    ("llamacpp", ["bge-m3-Q8_0.gguf"], [], "bge-m3-Q8_0.gguf"),  # one model, whatever its name
])
def test_vectors_come_back_normalised_in_order_from_each_server(serve, kind, models, embed_models, picked):
    fake = serve(embedding_server(kind, models, embed_models))
    embedder = fresh(fake.url)
    assert embedder.kind == "url" and embedder.model == ""  # not asked before the first call
    texts = ["god rays", "", "a red fox", "  ", "qipao dress"]
    vectors = embedder.embed(texts)
    assert embedder.model == picked
    assert vectors.shape == (5, 8) and vectors.dtype == np.float32
    for i in (0, 2, 4):
        assert np.allclose(vectors[i], unit(vector(texts[i])), atol=1e-6)
    assert not vectors[1].any() and not vectors[3].any()  # no words: not sent, a zero row
    sent = [body for method, path, body, _ in fake.requests if path.endswith("/embeddings")]
    assert sent == [{"model": picked, "input": ["god rays", "a red fox", "qipao dress"]}]  # no base64 asked


def test_texts_go_in_batches_and_a_named_model_is_not_looked_up(serve):
    fake = serve(embedding_server("lmstudio", ["m-embed"], ["m-embed"]))
    embedder = RemoteEmbedder(Server(fake.url), "m-embed", batch=2, breaker=Breaker(1, 60))
    vectors = embedder.embed([f"text {i}" for i in range(5)])
    assert [len(body["input"]) for _, _, body, _ in fake.requests] == [2, 2, 1]
    assert all(path.endswith("/embeddings") for _, path, _, _ in fake.requests)
    assert np.allclose(vectors[4], unit(vector("text 4")), atol=1e-6)
    assert embedder.embed(["", " "]).shape == (2, 8)  # all empty: zero rows of the size seen


@pytest.mark.parametrize("kind, models, embed_models, model, failure, says", [
    ("lmstudio", ["qwen2.5-7b-instruct"], [], "text-embedding-nomic-embed-text-v1.5", LM_STUDIO_NOT_LOADED,
     "LM Studio has no embedding model loaded: load one"),
    ("lmstudio", ["qwen2.5-7b-instruct"], [], "qwen2.5-7b-instruct", None,
     "LM Studio: that model is not an embedding model: name one"),
    ("ollama", ["llama3.2:latest"], [], "llama3.2:latest", None, "`ollama pull nomic-embed-text`"),
    ("ollama", ["llama3.2:latest"], [], "nomic-embed-text", None,
     "the server does not have that model (model 'nomic-embed-text' not found): pull or download it"),
    ("ollama", [], [], "nomic-embed-text",
     ollama_error(404, 'model "nomic-embed-text" not found, try pulling it first'), "`ollama pull <model>`"),
    ("llamacpp", ["qwen2.5-7b-instruct-q4_k_m.gguf"], [], "", LLAMA_CPP_NO_EMBEDDINGS,
     "start llama.cpp's server with --embeddings"),
    ("llamacpp", ["bge-m3.gguf"], [], "", LLAMA_CPP_POOLING_NONE, "restart it with --pooling mean"),
    ("llamacpp", ["bge-m3.gguf"], [], "", LLAMA_CPP_LOADING, "still loading its model"),
])
def test_each_servers_own_refusal_says_what_to_do(serve, kind, models, embed_models, model, failure, says):
    fake = serve(embedding_server(kind, models, embed_models, failure))
    with pytest.raises(EmbedError) as caught:
        fresh(fake.url, model).embed(["a fox"])
    assert says in caught.value.message
    assert "127.0.0.1" not in str(caught.value) and str(fake.httpd.server_address[1]) not in str(caught.value)


@pytest.mark.parametrize("models, says", [
    ([], "the embedding server has no model"),
    (["qwen2.5-7b-instruct", "llama3.2"], "none of the server's models has `embed` in its name"),
])
def test_no_model_to_pick_says_which_to_name(serve, models, says):
    fake = serve(embedding_server("lmstudio", models, []))
    with pytest.raises(EmbedError) as caught:
        fresh(fake.url).embed(["a fox"])
    assert says in caught.value.message and "text-embedding-nomic-embed-text-v1.5" in caught.value.hint


def nan_answer(texts):
    data = answer(texts, "m")
    data["data"][0]["embedding"][3] = math.nan  # json.dumps writes NaN, which Python's reader takes
    return data


@pytest.mark.parametrize("reply, says", [
    (lambda texts: (200, "<html>not json</html>"), "not JSON"),
    (lambda texts: (200, {"object": "list"}), "without a `data` list"),
    (lambda texts: (200, {"data": answer(texts, "m")["data"][:-1]}), "returned 1 vectors for 2 texts"),
    (lambda texts: (200, {"data": [answer(texts[:1], "m", dim=8)["data"][0],
                                   dict(answer(texts[1:], "m", dim=4)["data"][0], index=1)]}),
     "vectors of different sizes"),
    (lambda texts: (200, nan_answer(texts)), "NaN or infinity"),
    (lambda texts: (200, {"data": [{"embedding": "AACAPwAAAEA=", "index": i} for i in range(2)]}), "base64"),
    (lambda texts: (200, {"data": [{"embedding": ["0.1", "0.2"], "index": i} for i in range(2)]}),
     "not a list of numbers"),
    (lambda texts: (200, {"data": [{"embedding": [0.1, 0.2], "index": 0}] * 2}), "numbers its vectors wrongly"),
    (lambda texts: (500, {"error": "boom"}), "HTTP 500: boom"),
])
def test_an_answer_that_is_not_vectors_is_refused(serve, reply, says):
    fake = serve(lambda method, path, body: reply(body["input"]))
    with pytest.raises(EmbedError) as caught:
        fresh(fake.url, "m").embed(["a fox", "god rays"])
    assert says in caught.value.message


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once the socket closes


def test_a_server_that_is_off_or_slow_says_so(serve):
    with pytest.raises(EmbedError, match="cannot connect to the LLM server: start it"):
        fresh(f"http://127.0.0.1:{free_port()}/v1", "m").embed(["a fox"])
    slow = serve(lambda method, path, body: (200, answer(body["input"], "m")), delay=1.0)
    with pytest.raises(EmbedError, match="took longer than 0.2 s"):
        fresh(slow.url, "m", read_timeout=0.2).embed(["a fox"])


def test_a_dead_server_costs_one_try_then_is_skipped_for_a_while(serve):
    now = [0.0]
    fake = serve(lambda method, path, body: LLAMA_CPP_LOADING)
    embedder = RemoteEmbedder(Server(fake.url), "m", batch=1,
                              breaker=Breaker(failures_to_open=1, open_seconds=60, clock=lambda: now[0]))
    with pytest.raises(EmbedError, match="still loading"):
        embedder.embed(["a", "b", "c"])  # three batches: the first fails, the call stops there
    for _ in range(5):  # every LoRA chunk that follows: no request at all
        with pytest.raises(EmbedError, match="skipped for 60 s"):
            embedder.embed(["d"])
    assert len(fake.requests) == 1
    now[0] = 61.0
    with pytest.raises(EmbedError, match="still loading"):
        embedder.embed(["e"])
    assert len(fake.requests) == 2


def test_one_breaker_per_address_for_every_embedder_of_it():
    a = RemoteEmbedder(Server("http://127.0.0.1:9/v1"), "m")
    b = RemoteEmbedder(Server("http://127.0.0.1:9/v1/"), "other")
    assert a._breaker is b._breaker
    assert RemoteEmbedder(Server("http://127.0.0.1:10/v1"), "m")._breaker is not a._breaker


def test_the_model_is_looked_up_once_whatever_the_threads(serve):
    fake = serve(embedding_server("lmstudio", ["chat", "text-embedding-x"], ["text-embedding-x"]), delay=0.05)
    embedder = fresh(fake.url)
    threads = [threading.Thread(target=embedder.embed, args=(["a fox"],)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(path.endswith("/models") for _, path, _, _ in fake.requests) == 1


def test_the_key_is_sent_and_never_shown(serve, monkeypatch):
    fake = serve(lambda method, path, body: (401, {"error": {"message": "Incorrect API key: sk-secret-123456"}}))
    monkeypatch.setenv("ORCH_LLM_API_KEY", "sk-secret-123456")
    embedder = embedder_for(fake.url, "m")
    embedder._breaker = Breaker(1, 60)
    with pytest.raises(EmbedError) as caught:
        embedder.embed(["a fox"])
    assert "check the API key" in caught.value.message and "sk-secret" not in str(caught.value)
    assert fake.requests[0][3]["Authorization"] == "Bearer sk-secret-123456"
    assert "sk-secret" not in repr(embedder) and "127.0.0.1" not in repr(embedder)


def test_embedder_for_builtin_presets_and_addresses(monkeypatch):
    sentinel = object()
    monkeypatch.setattr("lib_orchestrator.embeddings.builtin.builtin_embedder", lambda: sentinel)
    assert embedder_for("builtin") is sentinel and embedder_for(" ") is sentinel and embedder_for("BUILTIN") is sentinel
    ollama = embedder_for("ollama", "nomic-embed-text", timeout=5)
    assert isinstance(ollama, RemoteEmbedder) and ollama.model == "nomic-embed-text"
    assert ollama.server.base_url == "http://localhost:11434/v1" and ollama.server.read_timeout == 5
    assert embedder_for("http://gpu-box:1234/v1").server.base_url == "http://gpu-box:1234/v1"
    for bad in (0, -1, float("nan"), float("inf"), "soon"):
        with pytest.raises(EmbedError, match="positive number of seconds"):
            embedder_for("lmstudio", timeout=bad)
