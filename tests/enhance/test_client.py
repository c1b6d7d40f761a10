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
    with pytest.raises(LlmError, match="cannot connect to the LLM server: start it"):
        chat(Server(f"http://127.0.0.1:{port}/v1"), "m", MESSAGES, seed=1)
    slow = serve(lambda method, path, body: reply("late"), delay=1.0)
    with pytest.raises(LlmError, match="took longer than 0.2 s"):
        chat(Server(slow.url, read_timeout=0.2), "m", MESSAGES, seed=1)


@pytest.mark.parametrize("answer, says", [
    ((401, {"error": {"message": "Incorrect API key provided: sk-secret-123456"}}), "check the API key"),
    ((500, {"error": "boom with sk-secret-123456 " + "x" * 400}), "boom with *** xxx"),
    ((400, "Unauthorized"), "HTTP 400: Unauthorized"),
    ((400, ["a", "list"]), "HTTP 400"),
    ((200, {"choices": [{"message": {"content": '{"prompt": "a fox in'}, "finish_reason": "length"}]}),
     "cut off at 300 tokens"),
])
def test_reasons_never_hold_the_address_the_key_or_a_long_server_text(serve, answer, says):
    fake = serve(lambda method, path, body: answer)
    with pytest.raises(LlmError) as caught:
        chat(Server(fake.url, api_key="sk-secret-123456"), "m", MESSAGES, seed=1)
    reason = str(caught.value)
    assert says in reason and "secret" not in reason and fake.url not in reason and len(reason) < 240


@pytest.mark.parametrize("url, key, says", [
    ("localhost:1234/v1", None, "not a URL"),
    ("ollama", None, "not a URL"),
    ("http://exa mple:1234/v1", None, "not a URL"),
    ("http://127.0.0.1:9/v1", "sk-secret\n", "one line of plain ASCII"),
    ("http://127.0.0.1:9/v1", "sk-sécret…", "one line of plain ASCII"),
])
def test_a_bad_address_or_key_is_a_reason_not_a_crash(url, key, says):
    with pytest.raises(LlmError) as caught:
        chat(Server(url, api_key=key), "m", MESSAGES, seed=1)
    assert says in str(caught.value) and "cret" not in str(caught.value)


def test_content_given_as_parts_is_joined(serve):
    parts = [{"type": "text", "text": "a red fox"}, {"type": "text", "text": " in snow"}]
    fake = serve(lambda method, path, body: (200, {"choices": [{"message": {"content": parts}}]}))
    assert chat(Server(fake.url), "m", MESSAGES, seed=1) == "a red fox in snow"


def test_presets_by_name():
    from lib_orchestrator.enhance.client import server_url

    assert server_url("Ollama") == "http://localhost:11434/v1"
    assert server_url(" ") == server_url("lmstudio") == "http://localhost:1234/v1"
    assert server_url("http://gpu-box:8080/v1") == "http://gpu-box:8080/v1"
