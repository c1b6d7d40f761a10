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
