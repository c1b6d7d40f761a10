"""Local fake LLM servers that answer like LM Studio, Ollama and llama.cpp's server, quirks included.
Each is an http.server in a thread; `behaviour` decides every answer, so a test scripts a failure."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

Answer = Tuple[int, Any]  # (status, JSON body, or a str sent as is)


def lm_studio_error(message: str) -> Answer:
    return 400, {"error": {"message": message}}


def reply(content: str) -> Answer:
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}]}


class FakeServer:
    def __init__(self, behaviour: Callable[[str, str, Optional[Dict[str, Any]]], Answer],
                 delay: float = 0.0) -> None:
        self.requests: List[Tuple[str, str, Optional[Dict[str, Any]], Dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append((method, self.path, body, dict(self.headers)))
                time.sleep(delay)
                status, payload = behaviour(method, self.path, body)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: a timeout test
                    pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


NOT_LOADED = "No models loaded. Please load a model in the developer page or use the `lms load` command."


def idea_of(body: Dict[str, Any]) -> str:
    user = body["messages"][-1]["content"]
    return next((line[len("IDEA: "):] for line in user.splitlines() if line.startswith("IDEA: ")), user)


def diligent(body: Dict[str, Any]) -> Dict[str, Any]:
    """What a good small model answers: the idea's own words, kept, plus some detail, in the
    template's schema (every placeholder copied once)."""
    idea = idea_of(body)
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    fields = schema.get("properties", {})
    tags = [t for t in idea.split(", ") if t] + ["cinematic lighting", "detailed background"]
    if "tags" in fields:
        return {"tags": tags}
    if "scene" in fields:
        return {"scene": tags}
    return {"prompt": f"{idea}, shown in soft cinematic light with a detailed background"}


def backend(kind: str, model: Callable[[Dict[str, Any]], Any] = diligent,
            models: Tuple[str, ...] = ("small-model",), loaded: bool = True, think: bool = False,
            chatter: bool = False, follows_schema: bool = True,
            context: int = 8192) -> Callable[[str, str, Optional[Dict[str, Any]]], Answer]:
    """A behaviour for FakeServer answering like `kind` ("lmstudio", "ollama", "llamacpp") does.

    The quirks are theirs: LM Studio says 400 "No models loaded"; Ollama 404s a model not pulled;
    llama.cpp's server answers 503 "Loading model" while it loads and 400 when the prompt exceeds its
    context, and ignores a schema given in the top-level form. A thinking model writes <think> first;
    a chatty one wraps its answer; one that ignores schemas answers in plain text."""
    def behaviour(method: str, path: str, body: Optional[Dict[str, Any]]) -> Answer:
        if path.endswith("/models"):
            if kind == "llamacpp" and not loaded:
                return 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
            return 200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]}
        assert body is not None
        if not loaded:
            if kind == "lmstudio":
                return 400, {"error": NOT_LOADED}
            if kind == "llamacpp":
                return 503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        if kind == "ollama" and body["model"] not in models:
            return 404, {"error": {"message": f'model "{body["model"]}" not found, try pulling it first',
                                   "type": "api_error"}}
        if kind == "llamacpp" and sum(len(m["content"]) for m in body["messages"]) // 4 > context:
            return 400, {"error": {"code": 400, "type": "exceed_context_size_error",
                                   "message": "the request exceeds the available context size"}}
        structured = follows_schema and "json_schema" in (body.get("response_format") or {})
        answer = model(body)
        if isinstance(answer, dict):
            answer = json.dumps(answer) if structured else next(iter(answer.values()))
            answer = ", ".join(answer) if isinstance(answer, list) else answer
        if chatter:
            answer = f"Sure! Here is the enhanced prompt:\n\n{answer}\n\nI added lighting to set the mood."
        if think:
            answer = f"<think>The user wants a better prompt. Let me think.</think>\n{answer}"
        return reply(answer)

    return behaviour
