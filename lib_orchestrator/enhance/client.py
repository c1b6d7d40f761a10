"""One OpenAI-compatible chat client for local servers (LM Studio, Ollama, llama.cpp's server, or any
URL). Every failure becomes an LlmError whose message says what to do; the API key is sent as a
header and never appears in a message, a repr or a record."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import requests

PRESETS = {
    "lmstudio": "http://localhost:1234/v1",
    "ollama": "http://localhost:11434/v1",
    "llamacpp": "http://localhost:8080/v1",
}


class LlmError(Exception):
    """A call that gave no usable answer; str() is the reason, recorded with the fallback."""


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


def list_models(server: Server, session: Optional[requests.Session] = None) -> List[str]:
    data = _request(server, "GET", "/models", None, session)
    try:
        return [str(m["id"]) for m in data["data"]]
    except (KeyError, TypeError) as exc:
        raise LlmError(f"{server.base_url}/models answered without a model list ({exc})") from None


def readiness(server: Server, session: Optional[requests.Session] = None) -> str:
    """A one-line answer to "can I enhance now?" for the UI's check button; LlmError says why not."""
    models = list_models(server, session)
    if not models:
        raise LlmError(f"{server.base_url} has no models: load or pull one")
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
        message = data["choices"][0]["message"]
        return str(message.get("content") or "")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise LlmError(f"{server.base_url} answered without a chat message") from None


def _request(server: Server, method: str, path: str, body: Optional[Dict[str, Any]],
             session: Optional[requests.Session]) -> Any:
    http = session or requests
    try:
        response = http.request(method, server.url(path), json=body, headers=server.headers(),
                                timeout=(server.connect_timeout, server.read_timeout))
    except requests.exceptions.ConnectTimeout:
        raise LlmError(f"no answer from {server.base_url} within {server.connect_timeout:g} s: "
                       "is the server running?") from None
    except requests.exceptions.ReadTimeout:
        raise LlmError(f"{server.base_url} took longer than {server.read_timeout:g} s: "
                       "raise the timeout, or pick a smaller model") from None
    except requests.exceptions.ConnectionError:
        raise LlmError(f"cannot connect to {server.base_url}: start the server "
                       "(LM Studio: Developer → Start server; Ollama: `ollama serve`)") from None
    if response.status_code >= 400:
        raise LlmError(_http_error(server, response))
    try:
        return response.json()
    except ValueError:
        raise LlmError(f"{server.base_url} answered with something that is not JSON") from None


def _http_error(server: Server, response: requests.Response) -> str:
    try:
        detail = response.json().get("error", "")
        if isinstance(detail, dict):
            detail = detail.get("message", "")
    except ValueError:
        detail = response.text[:200]
    detail = str(detail)
    if "No models loaded" in detail:
        return "LM Studio has no model loaded: load one, or turn on JIT loading"
    if "try pulling it first" in detail:
        return f"Ollama does not have that model: {detail} (run `ollama pull <model>`)"
    if response.status_code == 503 and "Loading model" in detail:
        return "llama.cpp's server is still loading its model: try again in a moment"
    return f"{server.base_url} answered HTTP {response.status_code}: {detail or response.reason}"
