"""The LLM's LoRA choice against a fake OpenAI-compatible server over real HTTP: good answers, odd ones,
failures, the answer cache and the breaker. Whatever the server says, no name outside the candidates
comes back, and the step never raises."""
from __future__ import annotations

import contextlib
import json
import re
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.enhance import AnswerCache, EnhanceOptions, Enhancer
from lib_orchestrator.enhance.breaker import Breaker
from lib_orchestrator.library import LoraRecord
from lib_orchestrator.selection.llm_choice import (
    CandidateCard,
    ChoiceResult,
    LlmChoice,
    LlmChooser,
    card_for,
    choice_messages,
    choice_schema,
    parse_choice,
)

from ..enhance.fake_servers import FakeServer, reply

PROMPT = "a young woman in a (high-collared silk dress:1.2) from Shanghai, [day|night] <lora:detail:0.5>"
CARDS = (
    CandidateCard("qipao_v2", "clothing", ("qipao", "cheongsam"), "A close-fitting Chinese silk dress."),
    CandidateCard("GodRays", "concept", ("god rays",), "Sunbeams through clouds."),
    CandidateCard("ukiyo-e style", "style", ("ukiyoe",), "Edo period woodblock prints."),
    CandidateCard("chun_li", "character", ("chun-li",), "Street Fighter's Chun-Li."),
)
IDS = [c.id for c in CARDS]


def answering(*answers):
    """A behaviour that gives these chat answers in turn (the last one from then on): a str is the
    message's content, a (status, body) pair is sent as is."""
    queue = list(answers)

    def behaviour(method, path, body):
        if path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": "small-model", "object": "model"}]}
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer if isinstance(answer, tuple) else reply(answer)

    return behaviour


def chats(server):
    return [body for method, path, body, _ in server.requests if path.endswith("/chat/completions")]


def chooser(server_url, model="small-model", cache=None, breaker=None, most=3):
    return LlmChooser(Enhancer(EnhanceOptions(url=server_url, model=model), cache, breaker), most=most)


def refused_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens once closed


# -- what is asked ---------------------------------------------------------------------------------
def test_the_schema_allows_only_the_candidates_ids_and_at_most_most_of_them():
    assert choice_schema(["a", "B c"], 2) == {
        "type": "object",
        "properties": {"loras": {
            "type": "array",
            "maxItems": 2,
            "items": {"type": "object",
                      "properties": {"id": {"type": "string", "enum": ["a", "B c"]},
                                     "reason": {"type": "string", "maxLength": 120}},
                      "required": ["id", "reason"],
                      "additionalProperties": False},
        }},
        "required": ["loras"],
        "additionalProperties": False,
    }


def test_the_messages_hold_the_prompt_as_written_and_one_line_per_candidate_in_rank_order():
    system, user = choice_messages(PROMPT, CARDS, 3)
    assert (system["role"], user["role"]) == ("system", "user")
    assert "at most 3" in system["content"] and "never invent" in system["content"]
    assert PROMPT in user["content"]  # weights, alternations and LoRA tags left as they are
    lines = [line for line in user["content"].splitlines() if line.startswith("- ")]
    assert lines == [
        '- "qipao_v2" (clothing) triggers: qipao, cheongsam — A close-fitting Chinese silk dress.',
        '- "GodRays" (concept) triggers: god rays — Sunbeams through clouds.',
        '- "ukiyo-e style" (style) triggers: ukiyoe — Edo period woodblock prints.',
        '- "chun_li" (character) triggers: chun-li — Street Fighter\'s Chun-Li.',
    ]


def test_a_card_field_with_line_breaks_stays_on_its_line_and_an_odd_id_stays_one_id():
    card = CandidateCard('say "hi" | now', "style\n", ("a\nb",), "line one\nline two")
    (line,) = [x for x in choice_messages("p", [card], 1)[1]["content"].splitlines() if x.startswith("- ")]
    assert line == '- "say \\"hi\\" | now" (style) triggers: a b — line one line two'


def test_a_card_is_the_records_name_category_triggers_and_first_sentence_without_html():
    record = LoraRecord(
        "styles/ink.safetensors", "ink_wash", category="style",
        trigger_words=("ink wash", "Ink Wash", " sumi-e\n", ""),
        description="<p>Hi!</p><script>alert('x')</script><p>Paints <b>ink&nbsp;wash</b> landscapes &amp; "
                    "mountains in grey tones. Best at 0.8.</p><img src=x onerror=alert(1)>")
    assert card_for(record) == CandidateCard("ink_wash", "style", ("ink wash", "sumi-e"),
                                             "Hi! Paints ink wash landscapes & mountains in grey tones.")


def test_a_long_description_is_cut_at_a_word_to_one_line_and_many_triggers_to_a_few():
    words = " ".join(f"word{k}" for k in range(100))  # no sentence end anywhere
    record = LoraRecord("x.safetensors", "x", trigger_words=tuple(f"t{k}" for k in range(20)),
                        description=f"{words}\n\u200bmore\x07")
    card = card_for(record)
    assert len(card.description) <= 160 and card.description.endswith("…")
    assert card.description.startswith("word0 word1 ") and card.description[:-1].split()[-1].startswith("word")
    assert card.triggers == tuple(f"t{k}" for k in range(8))


# -- reading the answer ----------------------------------------------------------------------------
@pytest.mark.parametrize("answer, expected", [
    ('{"loras": [{"id": "GodRays", "reason": "sunbeams"}, {"id": "qipao_v2", "reason": "the dress"}]}',
     (("GodRays", "sunbeams"), ("qipao_v2", "the dress"))),
    ('Here you go:\n```json\n{"loras": [{"id": "qipao_v2", "reason": "dress"}]}\n```\nEnjoy!',
     (("qipao_v2", "dress"),)),
    ('<think>Maybe ["chun_li"]? No.</think>["ukiyo-e style", "qipao_v2"]', (("ukiyo-e style", ""), ("qipao_v2", ""))),
    ('[{"name": "godrays", "why": "rays"}, {"lora": "<lora:QIPAO_V2:0.8>"}, {"id": "ukiyo-e style.safetensors"}]',
     (("GodRays", "rays"), ("qipao_v2", ""), ("ukiyo-e style", ""))),
    ('{"choices": ["chun_li"]}', (("chun_li", ""),)),
    ('{"id": "GodRays", "reason": "one object"}', (("GodRays", "one object"),)),
    ('"qipao_v2"', (("qipao_v2", ""),)),
    ('{"loras": []}', ()),
    ('{"loras": [{"id": "qipao_v2", "reason": "a\\nb\\u0007c\\u202e!"}]}', (("qipao_v2", "a bc!"),)),
])
def test_answers_are_read_tolerantly(answer, expected):
    assert tuple((c.id, c.reason) for c in parse_choice(answer, IDS, 3)) == expected


def test_ids_outside_the_candidates_duplicates_and_any_past_most_are_dropped():
    answer = json.dumps({"loras": [{"id": i, "reason": "r"} for i in
                                   ["made_up", "GODRAYS", "GodRays", "qipao_v2", "chun_li", "ukiyo-e style"]]})
    assert [c.id for c in parse_choice(answer, IDS, 3)] == ["GodRays", "qipao_v2", "chun_li"]
    assert parse_choice(answer, IDS, 0) == ()


def test_an_exact_id_wins_over_a_case_variant_and_a_case_match_takes_the_better_ranked():
    assert [c.id for c in parse_choice('["Ink", "INK"]', ["ink", "Ink"], 3)] == ["Ink", "ink"]


def test_a_long_reason_is_cut_to_120_characters():
    (choice,) = parse_choice(json.dumps([{"id": "chun_li", "reason": "very " * 60}]), IDS, 3)
    assert len(choice.reason) <= 120 and choice.reason.endswith("…")


@pytest.mark.parametrize("answer, says", [
    ("", "not JSON: (empty)"),
    ("I would pick qipao_v2 and GodRays.", "not JSON"),
    ('{"note": 1, "loras": null}', "no list of LoRAs"),
    ("42", "no list of LoRAs"),
    ('{"loras": [', "not JSON"),
])
def test_an_answer_with_no_json_list_of_loras_is_a_value_error_saying_so(answer, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_choice(answer, IDS, 3)


# -- the step against a server ---------------------------------------------------------------------
def test_a_good_answer_is_chosen_in_the_llms_order_with_its_reasons(serve):
    server = serve(answering(json.dumps({"loras": [{"id": "ukiyo-e style", "reason": "woodblock look"},
                                                   {"id": "qipao_v2", "reason": "high-collared silk dress"}]})))
    result = chooser(server.url)(PROMPT, 1234, CARDS)
    assert result == ChoiceResult((LlmChoice("ukiyo-e style", "woodblock look"),
                                   LlmChoice("qipao_v2", "high-collared silk dress")), None)
    (body,) = chats(server)
    assert body["temperature"] == 0.0 and body["max_tokens"] == 400 and body["model"] == "small-model"
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["loras"]["items"]["properties"]["id"]["enum"] == [
        "qipao_v2", "GodRays", "ukiyo-e style", "chun_li"]
    assert schema["properties"]["loras"]["maxItems"] == 3
    assert PROMPT in body["messages"][-1]["content"]


def listed(ids, reason="fits"):
    return json.dumps({"loras": [{"id": i, "reason": reason} for i in ids]})


@pytest.mark.parametrize("answer, chosen, says", [
    (listed(["made_up", "chun_li"]), ["chun_li"], None),
    (listed(["made_up", "other"]), [], "named no candidate LoRA"),
    (listed(["GODRAYS", "Qipao_V2"]), ["GodRays", "qipao_v2"], None),
    (listed(["qipao_v2", "qipao_v2", "GodRays"]), ["qipao_v2", "GodRays"], None),
    (listed(IDS), IDS[:3], None),
    ("Sure! " + listed(["chun_li"]) + " I hope that helps.", ["chun_li"], None),
    (listed([]), [], None),  # nothing fits: an answer, not a failure
    ("", [], "not JSON"),
    ("I'm sorry, I can't help with that.", [], "not JSON"),
    ((500, {"error": "internal"}), [], "HTTP 500"),
    ((200, "<html>proxy error</html>"), [], "not JSON"),
    ((200, {"choices": [{"message": {"content": "[\"qipao_v2\"]"}, "finish_reason": "length"}]}), [], "cut off"),
])
def test_odd_answers_and_failures_never_give_a_name_outside_the_candidates(serve, answer, chosen, says):
    server = serve(answering(answer))
    result = chooser(server.url)(PROMPT, 7, CARDS)
    assert [c.id for c in result.chosen] == chosen
    if says is None:
        assert result.error is None
    else:
        assert says in result.error and "\n" not in result.error and server.url not in result.error


def test_a_server_that_is_not_there_is_an_error_not_an_exception():
    result = chooser(refused_url())(PROMPT, 7, CARDS)
    assert result.chosen == () and "cannot connect to the LLM server" in result.error


def test_no_candidates_asks_nothing(serve):
    server = serve(answering(listed(["qipao_v2"])))
    assert chooser(server.url)(PROMPT, 7, []) == ChoiceResult((), None)
    assert server.requests == []


def test_a_chooser_must_be_allowed_to_choose_something():
    with pytest.raises(ValueError, match="at least one"):
        LlmChooser(Enhancer(EnhanceOptions(url="lmstudio")), most=0)


def test_a_candidate_given_twice_is_offered_once(serve):
    server = serve(answering(listed(["GodRays"])))
    result = chooser(server.url)(PROMPT, 7, CARDS + CARDS[1:2])
    assert [c.id for c in result.chosen] == ["GodRays"]
    (body,) = chats(server)
    assert body["response_format"]["json_schema"]["schema"]["properties"]["loras"]["items"]["properties"]["id"][
        "enum"] == IDS


def test_a_name_that_was_not_utf8_on_disk_is_not_offered_and_nothing_raises(serve):
    server = serve(answering(listed(["GodRays"])))
    odd = CandidateCard("caf\udce9", "style", (), "")  # how Python reads a Latin-1 file name on Linux
    result = chooser(server.url)(PROMPT, 7, (odd,) + CARDS)
    assert result == ChoiceResult((LlmChoice("GodRays", "fits"),), None)
    (body,) = chats(server)
    assert body["response_format"]["json_schema"]["schema"]["properties"]["loras"]["items"]["properties"]["id"][
        "enum"] == IDS
    alone = chooser(server.url)(PROMPT, 7, (odd,))  # nothing to ask: the picker falls back
    assert alone.chosen == () and "not UTF-8" in alone.error and len(chats(server)) == 1


def test_a_pathological_answer_is_read_in_linear_time():
    for answer in (" " * 200_000 + "x", "[" * 100_000, '{"loras": [' + '"a",' * 50_000, "<lora:" + ":" * 50_000 + ">"):
        start = time.perf_counter()
        with contextlib.suppress(ValueError):
            parse_choice(answer, IDS, 3)
        assert time.perf_counter() - start < 1.0, answer[:20]
    start = time.perf_counter()
    assert parse_choice(json.dumps(["<lora:" + ":" * 50_000 + ">"]), IDS, 3) == ()
    assert time.perf_counter() - start < 1.0


# -- the cache and the breaker ---------------------------------------------------------------------
def test_the_same_prompt_and_candidates_are_answered_from_the_cache_whatever_the_image_seed(serve, tmp_path):
    server = serve(answering(listed(["qipao_v2"])))
    path = str(tmp_path / "answers.jsonl")
    choose = chooser(server.url, cache=AnswerCache(path))
    first = choose(PROMPT, 1, CARDS)
    assert choose(PROMPT, 1, CARDS) == first and choose(PROMPT, 2, CARDS) == first  # greedy: seeds change nothing
    assert len(chats(server)) == 1
    assert chooser(server.url, cache=AnswerCache(path))(PROMPT, 3, CARDS) == first  # a new session reads the file
    assert len(chats(server)) == 1


def test_another_prompt_candidate_list_order_or_model_is_asked_again(serve):
    server = serve(answering(listed(["qipao_v2"])))
    cache = AnswerCache()
    chooser(server.url, cache=cache)(PROMPT, 1, CARDS)
    chooser(server.url, cache=cache)(PROMPT + ", rain", 1, CARDS)
    chooser(server.url, cache=cache)(PROMPT, 1, CARDS[:3])
    chooser(server.url, cache=cache)(PROMPT, 1, CARDS[::-1])
    chooser(server.url, model="other-model", cache=cache)(PROMPT, 1, CARDS)
    assert len(chats(server)) == 5
    assert [b["model"] for b in chats(server)][-1] == "other-model"


def test_only_usable_answers_are_cached(serve):
    server = serve(answering("no idea", listed(["made_up"]), listed(["GodRays"])))
    choose = chooser(server.url)
    assert choose(PROMPT, 1, CARDS).error is not None  # not JSON
    assert choose(PROMPT, 1, CARDS).error is not None  # only invented names
    good = choose(PROMPT, 1, CARDS)
    assert [c.id for c in good.chosen] == ["GodRays"] and good.error is None
    assert choose(PROMPT, 1, CARDS) == good and len(chats(server)) == 3


def test_after_three_failures_the_server_is_not_called_until_the_pause_is_over(serve):
    server = serve(answering((500, {"error": "internal"}), (500, {"error": "internal"}), (500, {"error": "internal"}),
                             listed(["chun_li"])))
    now = [0.0]
    choose = chooser(server.url, breaker=Breaker(clock=lambda: now[0]))
    errors = [choose(f"{PROMPT} {k}", 1, CARDS).error for k in range(5)]
    assert all("HTTP 500" in e for e in errors[:3])
    assert all(e.startswith("LLM server skipped for 60 s after 3 failures") for e in errors[3:])
    assert len(chats(server)) == 3
    now[0] = 61.0  # the pause is over: asked again
    assert [c.id for c in choose(PROMPT, 1, CARDS).chosen] == ["chun_li"] and len(chats(server)) == 4


def test_a_cached_choice_is_given_while_the_server_is_skipped(serve):
    server = serve(answering(listed(["GodRays"]), (500, {"error": "internal"})))
    now = [0.0]
    choose = chooser(server.url, breaker=Breaker(clock=lambda: now[0]))
    seen = choose(PROMPT, 1, CARDS)
    assert [choose(f"other {k}", 1, CARDS).error is not None for k in range(3)] == [True] * 3  # the breaker opens
    assert choose(PROMPT, 9, CARDS) == seen


# -- whatever the server answers -------------------------------------------------------------------
_NAMES = st.sampled_from(IDS + [i.upper() for i in IDS] + [f"<lora:{i}:0.7>" for i in IDS]
                         + ["made_up", "", "qipao", "chun li", "GodRays ", "../etc/passwd"]) | st.text(max_size=20)
_ENTRY = _NAMES | st.fixed_dictionaries({"id": _NAMES}, optional={"reason": st.text(max_size=200)}) | st.integers()
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | _NAMES,
                     lambda inner: (st.lists(inner, max_size=5)
                                    | st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)
_ANSWERS = (st.text(max_size=300)
            | st.lists(_ENTRY, max_size=8).map(lambda entries: json.dumps({"loras": entries}))
            | st.lists(_ENTRY, max_size=8).map(json.dumps)
            | _JSON.map(json.dumps)
            | st.tuples(st.text(max_size=40), st.lists(_ENTRY, max_size=6), st.text(max_size=40)).map(
                lambda t: f"{t[0]}```json\n{json.dumps({'loras': t[1]})}\n```{t[2]}"))


@pytest.fixture(scope="module")
def scripted():
    """One server for every example: it answers what the example put in `said`."""
    said = {"answer": ""}
    server = FakeServer(lambda method, path, body: reply(said["answer"]))
    yield server, said
    server.close()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=_ANSWERS, most=st.integers(1, 5))
def test_whatever_the_server_answers_only_candidates_come_back_each_once(scripted, answer, most):
    server, said = scripted
    said["answer"] = answer
    result = chooser(server.url, cache=AnswerCache(), most=most)(PROMPT, 1, CARDS)
    ids = [c.id for c in result.chosen]
    assert set(ids) <= set(IDS) and len(ids) == len(set(ids)) <= most
    assert all(len(c.reason) <= 120 and c.reason.isprintable() for c in result.chosen)
    assert result.error is None or (result.error and result.error.isprintable() and not result.chosen)
