"""The enhancement step against fakes of LM Studio, Ollama and llama.cpp's server: their quirks, their
failures, the cache, seeds from image seeds, family prefixes, and provenance without secrets."""
from __future__ import annotations

import json
import socket

import pytest

from lib_orchestrator.enhance import AnswerCache, EnhanceOptions, Enhancer
from lib_orchestrator.enhance.breaker import Breaker
from lib_orchestrator.enhance.enhance import count_tokens

from .fake_servers import backend, idea_of, reply

PROMPT = "a (red:1.2) fox, snowy forest <lora:ink_wash:0.8>"


def chats(server):
    return [body for method, path, body, _ in server.requests if path.endswith("/chat/completions")]


def test_lm_studio_enhances_with_the_template_and_a_seed_from_the_image(serve):
    server = serve(backend("lmstudio", models=("text-embedding-nomic-embed-text-v1.5", "qwen2.5-7b-instruct")))
    enhancer = Enhancer(EnhanceOptions(url=server.url, genre="noir", api_key="sk-secret"))
    result = enhancer(PROMPT, seed=2**32 + 4, family="sd1")  # seeds wrap below 0xFFFFFFFF, llama.cpp's "random"
    assert result.status == "enhanced", result.reason
    assert result.prompt == ("a ⟦0⟧ fox, snowy forest, cinematic lighting, detailed background"
                             .replace("⟦0⟧", "(red:1.2)") + " <lora:ink_wash:0.8>")
    (body,) = chats(server)
    assert (body["model"], body["seed"], body["top_p"]) == ("qwen2.5-7b-instruct", 5, 0.9)
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["tags"]
    assert idea_of(body) == "a ⟦0⟧ fox, snowy forest"  # the LoRA tag and the weight never reach the model
    assert "venetian-blind" in body["messages"][1]["content"]  # the noir card
    assert server.requests[0][3]["Authorization"] == "Bearer sk-secret"
    provenance = json.loads(result.to_infotext())
    assert provenance == {"status": "enhanced", "model": "qwen2.5-7b-instruct", "template": "sd1@1",
                          "original": PROMPT}
    assert "secret" not in repr(enhancer.options) and "secret" not in result.to_infotext()


def test_answers_are_cached_on_everything_that_changes_them(serve, tmp_path):
    server = serve(backend("ollama", models=("llama3.2",)))
    path = str(tmp_path / "answers.jsonl")
    options = EnhanceOptions(url=server.url, model="llama3.2")
    first = Enhancer(options, AnswerCache(path))
    a = first(PROMPT, 1, "sdxl")
    assert first(PROMPT, 1, "sdxl") == a and len(chats(server)) == 1
    first(PROMPT, 2, "sdxl")  # another image seed
    first(PROMPT, 1, "flux")  # another template
    Enhancer(EnhanceOptions(url=server.url, model="llama3.2", temperature=0.2), AnswerCache(path))(PROMPT, 1, "sdxl")
    assert len(chats(server)) == 4
    restarted = Enhancer(options, AnswerCache(path))  # a new Forge session reads the file
    assert restarted(PROMPT, 1, "sdxl") == a and len(chats(server)) == 4


def test_pony_gets_its_score_prefix_unless_the_prompt_has_its_own(serve):
    server = serve(backend("lmstudio"))
    enhancer = Enhancer(EnhanceOptions(url=server.url))
    added = enhancer("1girl, red hair, snow", 3, "sdxl", "Pony")
    assert added.prompt.startswith("score_9, score_8_up, score_7_up, score_6_up, score_5_up, score_4_up, "
                                   "source_anime, rating_safe, 1girl, red hair, snow")
    own = enhancer("score_9, rating_questionable, 1girl, snow", 3, "sdxl", "Pony")
    assert own.prompt.startswith("score_9, rating_questionable, source_anime, 1girl, snow")
    assert "score_8_up" not in own.prompt and "rating_safe" not in own.prompt
    illustrious = enhancer("1girl, snow", 3, "sdxl", "Illustrious")
    assert illustrious.prompt.startswith("masterpiece, best quality, 1girl, snow")


@pytest.mark.parametrize("kind, quirks", [
    ("lmstudio", {"think": True}),
    ("ollama", {"chatter": True}),
    ("llamacpp", {"follows_schema": False}),
    ("llamacpp", {"think": True, "chatter": True, "follows_schema": False}),
])
def test_quirky_answers_still_become_clean_prompts(serve, kind, quirks):
    server = serve(backend(kind, **quirks))
    result = Enhancer(EnhanceOptions(url=server.url))(PROMPT, 1, "sdxl")
    assert result.status == "enhanced", result.reason
    assert result.prompt.startswith("a (red:1.2) fox, snowy forest, shown in soft cinematic light")
    assert result.prompt.endswith(" <lora:ink_wash:0.8>")
    assert "think" not in result.prompt and "Sure" not in result.prompt and "mood" not in result.prompt


def lost_lora_and_invented_one(body):
    return {"prompt": "a fox in a snowy forest <lora:made_up:1>, ⟦0⟧"}


@pytest.mark.parametrize("kind, behaviour_args, options, says", [
    ("lmstudio", {"loaded": False}, {}, "LM Studio has no model loaded"),
    ("ollama", {"models": ("llama3.2",)}, {"model": "mistral"}, "ollama pull"),
    ("llamacpp", {"loaded": False}, {}, "still loading its model"),
    ("llamacpp", {"context": 10}, {}, "exceeds the available context size"),
    ("lmstudio", {"model": lambda body: "I'm sorry, but I can't help with that."}, {}, "refused"),
    ("lmstudio", {"model": lambda body: {"prompt": "a fox ⟦0⟧ ⟦0⟧"}}, {}, "repeated placeholders"),
    ("lmstudio", {}, {"template": "nope"}, "no enhancement template 'nope'"),
])
def test_failures_fall_back_to_the_original_prompt_with_a_reason(serve, kind, behaviour_args, options, says):
    server = serve(backend(kind, **behaviour_args))
    result = Enhancer(EnhanceOptions(url=server.url, **options))(PROMPT, 1, "sdxl")
    assert (result.status, result.prompt) == ("fallback", PROMPT)
    assert says in result.reason


def test_a_model_that_drops_loras_and_invents_some_gets_the_users_back(serve):
    server = serve(backend("lmstudio", model=lost_lora_and_invented_one))
    result = Enhancer(EnhanceOptions(url=server.url))(PROMPT, 1, "sdxl")
    assert result.status == "enhanced"
    assert result.prompt == "a fox in a snowy forest, (red:1.2) <lora:ink_wash:0.8>"


@pytest.mark.parametrize("status, body, says", [
    (500, {"error": "internal"}, "HTTP 500"),
    (200, "<html>proxy error</html>", "not JSON"),
    (200, {"unexpected": True}, "without a chat message"),
])
def test_server_errors_and_junk_fall_back(serve, status, body, says):
    server = serve(lambda method, path, b: (200, {"data": [{"id": "m"}]}) if path.endswith("/models")
                   else (status, body))
    result = Enhancer(EnhanceOptions(url=server.url))(PROMPT, 1, "sdxl")
    assert result.status == "fallback" and says in result.reason


def test_a_slow_first_token_waits_within_the_timeout_and_falls_back_past_it(serve):
    slow = serve(backend("ollama"), delay=0.6)
    waited = Enhancer(EnhanceOptions(url=slow.url, model="small-model", timeout=5))(PROMPT, 1, "sdxl")
    assert waited.status == "enhanced"
    late = Enhancer(EnhanceOptions(url=slow.url, model="small-model", timeout=0.2))(PROMPT, 2, "sdxl")
    assert late.status == "fallback" and "took longer than 0.2 s" in late.reason


def test_a_server_that_is_off_is_skipped_after_three_failures():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed
    now = [0.0]
    enhancer = Enhancer(EnhanceOptions(url=url), breaker=Breaker(clock=lambda: now[0]))
    reasons = [enhancer(PROMPT, seed, "sdxl").reason for seed in range(5)]
    assert all("cannot connect" in r for r in reasons[:3])
    assert all(r.startswith("LLM server skipped for 60 s after 3 failures") for r in reasons[3:])


def test_structured_output_rejected_by_the_server_is_asked_again_in_plain_text(serve):
    def behaviour(method, path, body):
        if path.endswith("/models"):
            return 200, {"data": [{"id": "m"}]}
        if "response_format" in body:
            return 400, {"error": "'response_format' is not supported"}
        return reply(f"{idea_of(body)}, moonlight")

    result = Enhancer(EnhanceOptions(url=serve(behaviour).url))(PROMPT, 1, "sd1")
    assert result.status == "enhanced"
    assert result.prompt == "a (red:1.2) fox, snowy forest, moonlight <lora:ink_wash:0.8>"


def test_a_cached_answer_is_given_while_a_dead_server_is_skipped(serve):
    server = serve(backend("lmstudio"))
    now = [0.0]
    first = Enhancer(EnhanceOptions(url=server.url), breaker=Breaker(clock=lambda: now[0]))
    seen = first(PROMPT, 1, "sdxl")
    server.close()  # the server goes away; a new generation, no model named in Settings
    later = Enhancer(EnhanceOptions(url=server.url), first.cache, first.breaker)
    assert [later(PROMPT, seed, "sdxl").status for seed in (2, 3, 4)] == ["fallback"] * 3  # the breaker opens
    assert later(PROMPT, 1, "sdxl") == seen  # the image seed asked before: from the cache, breaker or not


def test_only_usable_answers_are_cached(serve):
    answers = iter(["I'm sorry, I can't do that.", '{"prompt": "a fox, ⟦0⟧, in snow"}'])
    server = serve(backend("lmstudio", model=lambda body: next(answers)))
    enhancer = Enhancer(EnhanceOptions(url=server.url))
    assert enhancer(PROMPT, 1, "sdxl").status == "fallback"
    assert enhancer(PROMPT, 1, "sdxl").status == "enhanced"  # asked again, not the cached refusal
    assert enhancer(PROMPT, 1, "sdxl").status == "enhanced" and len(chats(server)) == 2


@pytest.mark.parametrize("answer, status, says", [
    ('{"prompt": "a fluffy fox sitting on a red', "fallback", "broken or cut off"),
    ('{"prompt": "a, ⟦0⟧"} {"prompt": "b"}', "enhanced", ""),  # the first object
    ('{"prompt": "a fox, ⟦0⟧"}\nI kept {style} as asked.', "enhanced", ""),
    ('["1girl", "red dress", "⟦0⟧"]', "enhanced", ""),  # a bare array of tags
    ("[Cinematic] a fox, ⟦0⟧", "enhanced", ""),
    ({"characters": 5, "scene": True}, "fallback", "empty"),
    ({"tags": ["a fox", "⟦0⟧", "snow"]}, "enhanced", ""),  # a tag answer to a booru template
    ("I cannot sleep, a fox, ⟦0⟧", "enhanced", ""),  # the user's own words are no refusal
    ({"prompt": "First paragraph about ⟦0⟧.\n\nSecond paragraph."}, "enhanced", ""),
])
def test_odd_answers_are_refused_or_read_never_raised(serve, answer, status, says):
    server = serve(backend("lmstudio", model=lambda body: answer if isinstance(answer, dict) else answer))
    prompt = "I cannot sleep, a (red:1.2) fox" if "sleep" in str(answer) else PROMPT
    result = Enhancer(EnhanceOptions(url=server.url))(prompt, 1, "sdxl", "Pony")
    assert result.status == status and says in result.reason
    if "Second" in str(answer):
        assert "Second paragraph" in result.prompt


def test_a_long_paragraph_is_cut_to_the_budget_at_a_sentence(serve):
    long = " ".join(f"Sentence {k} describes the scene in more detail." for k in range(60))
    server = serve(backend("lmstudio", model=lambda body: {"prompt": f"A fox, ⟦0⟧. {long}"}))
    result = Enhancer(EnhanceOptions(url=server.url))(PROMPT, 1, "sdxl")
    body = result.prompt.replace(" <lora:ink_wash:0.8>", "")
    assert result.status == "enhanced" and "trimmed to 150 tokens" in result.reason
    assert count_tokens(body) <= 150 and body.endswith("detail.") and "(red:1.2)" in body


def test_embeddings_are_protected_and_never_trimmed(serve):
    server = serve(backend("lmstudio", model=lambda body: {"tags": [f"tag {k}" for k in range(40)]}))
    result = Enhancer(EnhanceOptions(url=server.url))("a fox, easynegative", 1, "sd1", embeddings=["easynegative"])
    assert result.status == "enhanced" and result.prompt.endswith(", easynegative")
    assert "easynegative" not in idea_of(server.requests[-1][2])  # held as a placeholder


def test_anything_unexpected_is_a_fallback_not_a_crash(serve, monkeypatch):
    from lib_orchestrator.enhance import enhancer as module

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "chat", boom)
    result = Enhancer(EnhanceOptions(url=serve(backend("lmstudio")).url, genre=None))(PROMPT, 1, "sdxl")
    assert (result.status, result.reason) == ("fallback", "unexpected RuntimeError in the LLM step")


def test_a_cached_answer_never_pins_a_model_the_server_no_longer_has(serve):
    offered = ["model-a"]

    def behaviour(method, path, body):
        if path.endswith("/models"):
            return 200, {"data": [{"id": m} for m in offered]}
        if body["model"] not in offered:
            return 404, {"error": f"model '{body['model']}' not found"}
        return reply(f"{idea_of(body)}, by {body['model']}")

    server = serve(behaviour)
    cache = AnswerCache()
    assert Enhancer(EnhanceOptions(url=server.url), cache)(PROMPT, 1, "sdxl").model == "model-a"
    offered[:] = ["model-b"]
    later = Enhancer(EnhanceOptions(url=server.url), cache)
    assert later(PROMPT, 1, "sdxl").model == "model-a"  # from the cache
    fresh = later(PROMPT, 2, "sdxl")
    assert (fresh.status, fresh.model) == ("enhanced", "model-b")


def test_an_answer_with_a_lone_surrogate_is_cached_without_a_crash(tmp_path):
    cache = AnswerCache(str(tmp_path / "a.jsonl"))
    cache.put("k", "a fox \ud83d")
    assert AnswerCache(str(tmp_path / "a.jsonl")).get("k") == "a fox \ud83d"
