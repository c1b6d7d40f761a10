"""One OpenAI-compatible chat client for local servers (LM Studio, Ollama, llama.cpp's server, or any
URL). Every failure becomes an LlmError whose message says what to do. Messages end up in infotexts, so
they never hold the server's address, the API key or more than a short excerpt of what the server said;
the key is sent only as a header and is kept out of reprs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

import requests

from .errors import LlmError

API_KEY_ENV = "ORCH_LLM_API_KEY"  # the key lives in the environment: not in Forge's settings, not on a command line

__all__ = ["API_KEY_ENV", "PRESETS", "LlmError", "Server", "chat", "chat_models", "list_models", "post_json",
           "readiness", "server_url"]

# What a caller adds to the reasons for an HTTP error: (status, what the server said, already cut short and
# cleaned of the key and address) -> its own reason, or None for the common ones.
Explain = Callable[[int, str], Optional[str]]

PRESETS = {
    "lmstudio": "http://localhost:1234/v1",
    "ollama": "http://localhost:11434/v1",
    "llamacpp": "http://localhost:8080/v1",
}


@dataclass(frozen=True)
class Server:
    base_url: str = PRESETS["lmstudio"]
    api_key: Optional[str] = field(default=None, repr=False)
    connect_timeout: float = 3.0  # a server that is off answers at once; one that is not there should not stall
    read_timeout: float = 60.0  # the first request may load the model

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def server_url(text: str) -> str:
    """A preset's name (lmstudio, ollama, llamacpp) or an address, as the address."""
    text = (text or "").strip()
    return PRESETS.get(text.lower(), text) or PRESETS["lmstudio"]


def list_models(server: Server, session: Optional[requests.Session] = None) -> List[str]:
    data = _request(server, "GET", "/models", None, session)
    try:
        return [str(m["id"]) for m in data["data"]]
    except (KeyError, TypeError):
        raise LlmError("the server's /models answered without a model list") from None


def chat_models(models: Sequence[str]) -> List[str]:
    """The models that can chat: LM Studio lists its embedding models too."""
    return [m for m in models if "embed" not in m.lower()]


def readiness(server: Server, session: Optional[requests.Session] = None) -> str:
    """A one-line answer to "can I enhance now?" for the UI's check button; LlmError says why not."""
    models = chat_models(list_models(server, session))
    if not models:
        raise LlmError("the server has no chat model: load or pull one")
    shown = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
    return f"ready: {server.base_url} offers {shown}"


def chat(server: Server, model: str, messages: Sequence[Dict[str, str]], seed: int, temperature: float = 0.7,
         top_p: float = 0.9, max_tokens: int = 300, schema: Optional[Dict[str, Any]] = None,
         session: Optional[requests.Session] = None) -> str:
    """The answer's text. With `schema`, structured output is asked for; a server that rejects it is
    asked again in plain text (the caller validates either way: small models ignore schemas)."""
    body: Dict[str, Any] = {"model": model, "messages": list(messages), "seed": seed, "temperature": temperature,
                            "top_p": top_p, "max_tokens": max_tokens, "stream": False}
    if schema is not None:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "prompt", "strict": True, "schema": schema}}
    try:
        data = _request(server, "POST", "/chat/completions", body, session)
    except LlmError as exc:
        if schema is None or "response_format" not in str(exc):
            raise
        body.pop("response_format")
        data = _request(server, "POST", "/chat/completions", body, session)
    try:
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        finish = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LlmError("the server answered without a chat message") from None
    if finish == "length":  # cut off: a half sentence or half a JSON object is no prompt
        raise LlmError(f"the answer was cut off at {max_tokens} tokens: raise max_tokens in the template")
    if isinstance(content, list):  # content as parts: [{"type": "text", "text": …}]
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def post_json(server: Server, path: str, body: Dict[str, Any], session: Optional[requests.Session] = None,
              explain: Optional[Explain] = None) -> Any:
    """POST `body` and return the JSON answer, with this client's connection handling, timeouts and reasons
    (the embeddings client, lib_orchestrator/embeddings/remote.py, shares them); LlmError on any failure."""
    return _request(server, "POST", path, body, session, explain)


def _request(server: Server, method: str, path: str, body: Optional[Dict[str, Any]],
             session: Optional[requests.Session], explain: Optional[Explain] = None) -> Any:
    http = session or requests
    try:
        response = http.request(method, server.url(path), json=body, headers=server.headers(),
                                timeout=(server.connect_timeout, server.read_timeout))
    except requests.exceptions.ConnectTimeout:
        raise LlmError(f"no answer from the server within {server.connect_timeout:g} s: is it running?") from None
    except requests.exceptions.ReadTimeout:
        raise LlmError(f"the server took longer than {server.read_timeout:g} s: "
                       "raise the timeout, or pick a smaller model") from None
    except requests.exceptions.ConnectionError:
        raise LlmError("cannot connect to the LLM server: start it "
                       "(LM Studio: Developer → Start server; Ollama: `ollama serve`) or check its address") from None
    except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL):
        raise LlmError("the LLM server's address is not a URL: write it as http://host:port/v1, "
                       "or lmstudio, ollama, llamacpp") from None
    except (requests.exceptions.InvalidHeader, UnicodeError):  # the exception's text would show the key
        raise LlmError("the API key cannot be sent: it must be one line of plain ASCII") from None
    except (requests.RequestException, ValueError) as exc:
        raise LlmError(f"the request failed ({type(exc).__name__})") from None
    if response.status_code >= 400:
        raise LlmError(_http_error(server, response, explain))
    try:
        return response.json()
    except (ValueError, RecursionError):
        raise LlmError("the server answered with something that is not JSON") from None


def _http_error(server: Server, response: requests.Response, explain: Optional[Explain] = None) -> str:
    try:
        data = response.json()
    except (ValueError, RecursionError):
        data = response.text
    detail = data.get("error", data.get("message", "")) if isinstance(data, dict) else data
    if isinstance(detail, dict):
        detail = detail.get("message", "")
    detail = " ".join(str(detail).split())
    said = explain(response.status_code, _excerpt(detail, server)) if explain is not None else None
    if said:
        return said
    if "No models loaded" in detail:
        return "LM Studio has no model loaded: load one, or turn on JIT loading"
    if "try pulling it first" in detail:
        return f"Ollama does not have that model: {_excerpt(detail, server)} (run `ollama pull <model>`)"
    if response.status_code == 503 and "Loading model" in detail:
        return "llama.cpp's server is still loading its model: try again in a moment"
    if response.status_code in (401, 403):  # servers quote the key they were sent
        return f"the server refused the request (HTTP {response.status_code}): check the API key"
    return f"the server answered HTTP {response.status_code}: {_excerpt(detail, server) or response.reason}"


def _excerpt(detail: str, server: Server) -> str:
    """What the server said, short, with no key in it."""
    if server.api_key:
        detail = detail.replace(server.api_key, "***")
    host = urlsplit(server.base_url).hostname
    detail = detail.replace(server.base_url, "the server")
    if host:
        detail = detail.replace(host, "the server")
    detail = re.sub(r"\b(?:sk|pk|key|token)[-_][\w-]{6,}", "***", detail)
    return detail[:160] + ("…" if len(detail) > 160 else "")
