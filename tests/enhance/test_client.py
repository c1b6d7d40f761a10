"""The chat client against fake LM Studio, Ollama and llama.cpp servers: answers, schemas, and every
failure turned into a reason that says what to do."""
from __future__ import annotations

import socket

import pytest

from lib_orchestrator.enhance.client import LlmError, Server, chat, list_models

from .fake_servers import lm_studio_error, reply

MESSAGES = [{"role": "user", "content": "a fox"}]


def test_models_and_a_structured_answer_from_lm_studio(serve):
    def lm_studio(method, path, body):
        if path == "/v1/models":
            return 200, {"data": [{"id": "qwen2.5-3b-instruct", "object": "model"}], "object": "list"}
        return reply('{"prompt": "a red fox in snow"}')

    fake = serve(lm_studio)
    server = Server(fake.url, api_key="sk-secret")
    assert list_models(server) == ["qwen2.5-3b-instruct"]
    assert chat(server, "qwen2.5-3b-instruct", MESSAGES, seed=7, schema={"type": "object"}) == \
        '{"prompt": "a red fox in snow"}'
    method, path, body, headers = fake.requests[-1]
    assert body["seed"] == 7 and body["response_format"]["type"] == "json_schema" and body["stream"] is False
    assert headers["Authorization"] == "Bearer sk-secret" and "sk-secret" not in repr(server)


def test_a_server_that_rejects_the_schema_is_asked_again_in_plain_text(serve):
    def old_server(method, path, body):
        if "response_format" in body:
            return 400, {"error": {"message": "'response_format' is not supported"}}
        return reply("a red fox in snow")

    fake = serve(old_server)
    assert chat(Server(fake.url), "m", MESSAGES, seed=1, schema={"type": "object"}) == "a red fox in snow"
    assert len(fake.requests) == 2 and "response_format" not in fake.requests[1][2]


@pytest.mark.parametrize("answer, says", [
    (lm_studio_error("No models loaded. Please load a model in the developer page or use the 'lms load' "
                     "command."), "LM Studio has no model loaded"),
    ((404, {"error": 'model "llama3" not found, try pulling it first'}), "run `ollama pull <model>`"),
    ((503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}), "still loading"),
    ((500, "<html>Internal Server Error</html>"), "HTTP 500"),
    ((200, "this is not json"), "not JSON"),
    ((200, {"choices": []}), "without a chat message"),
])
def test_server_failures_become_reasons_that_say_what_to_do(serve, answer, says):
    fake = serve(lambda method, path, body: answer)
    with pytest.raises(LlmError) as caught:
        chat(Server(fake.url), "m", MESSAGES, seed=1)
    assert says in str(caught.value)


def test_a_server_that_is_off_or_too_slow(serve):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    with pytest.raises(LlmError, match="cannot connect to .*start the server"):
        chat(Server(f"http://127.0.0.1:{port}/v1"), "m", MESSAGES, seed=1)
    slow = serve(lambda method, path, body: reply("late"), delay=1.0)
    with pytest.raises(LlmError, match="took longer than 0.2 s"):
        chat(Server(slow.url, read_timeout=0.2), "m", MESSAGES, seed=1)
