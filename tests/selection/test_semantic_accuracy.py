"""Do picks understand the prompt? Descriptive prompts that name no trigger word (tests/selection/paraphrases.py)
over the realistic library (tests/library_realistic.py): how often a right LoRA is among the top 5 candidates,
with the builtin embedder in hybrid mode (goal: 80 %, the issue's bar) and with keywords alone (printed beside
it, not asserted: keywords cannot find a LoRA by a word it lacks). And a trigger the prompt names still picks
its owner first, vectors or not.

The oracle is the generator's truth by subject (every LoRA of the prompt's subject is right), never the
product's tables. The figures are printed (`pytest -s`, the CI log) and written in the assertion message.
Skipped, not failed, only where the builtin embedder is not installed (wordllama); in CI it is.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import pytest

from lib_orchestrator.library import scan_library
from lib_orchestrator.selection import LoraIndex, Rules
from lib_orchestrator.selection.match import rank_candidates
from lib_orchestrator.selection.pick import pick_loras

from ..library_realistic import FAMILY_OF, generate_realistic
from .paraphrases import PARAPHRASES, SEED, Paraphrase, banned_words, right_loras, subjects_by_base, word_set

GOAL = 0.80  # hybrid: a right LoRA among the top 5 for at least this share of the prompts
TOP = 5


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Tuple[dict, list]:
    root = tmp_path_factory.mktemp("realistic")
    truth = generate_realistic(root, seed=SEED)
    return truth, scan_library(str(root / "Lora"), None).records


# -- the fixture itself ----------------------------------------------------------------------------------------

def test_the_fixture_has_enough_prompts_and_a_hard_third():
    assert len(PARAPHRASES) >= 40
    assert len({p.prompt for p in PARAPHRASES}) == len(PARAPHRASES), "a prompt is listed twice"
    assert sum(p.hard for p in PARAPHRASES) >= len(PARAPHRASES) // 4


def test_no_prompt_names_a_word_of_its_right_loras(library):
    truth, _ = library
    named = {p.prompt: sorted(word_set(p.prompt) & banned_words(truth, p)) for p in PARAPHRASES}
    assert not {prompt: words for prompt, words in named.items() if words}


def test_the_banned_words_are_whole_words_without_case_and_underscores():
    # The check's own rules, on made-up names: `_` is a space, camelCase and case do not hide a word,
    # a word inside another is not that word, version tokens and function words name nothing.
    assert word_set("QipaoDress_v2-000012") == {"qipao", "dress"}
    assert word_set("in the style of Thick_Paint") == {"style", "thick", "paint"}
    assert word_set("90sAnime ILXL") == {"90s", "anime", "ilxl"}
    assert "dress" not in word_set("a high-collared silk gown, undressed")


def test_every_prompt_has_a_right_lora_that_loads_on_its_checkpoint(library):
    truth, _ = library
    bases = subjects_by_base(truth)
    unknown = [s for p in PARAPHRASES for s in p.subjects if s not in bases]
    assert not unknown, f"subjects not in the seed-{SEED} library: {unknown}"
    stranded = [p.prompt for p in PARAPHRASES if not any(p.base_model in bases[s] for s in p.subjects)]
    assert not stranded, f"no right LoRA trained on the prompt's checkpoint: {stranded}"


# -- accuracy --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded(library) -> LoraIndex:
    from lib_orchestrator.embeddings.builtin import builtin_embedder, builtin_status

    why = builtin_status()
    if why is not None:
        pytest.skip(f"the builtin embedder is not usable here: {why}")
    from lib_orchestrator.selection.semantic import SemanticIndex

    index = LoraIndex(library[1])
    return index.with_semantic(SemanticIndex.build(index.records, builtin_embedder(), cache=None))


def _hit(index: LoraIndex, truth: dict, p: Paraphrase, mode: str) -> Tuple[bool, List[str]]:
    """Whether a right LoRA is in the top 5, and the top 5 (for the report of a miss)."""
    right = {t["path"] for t in right_loras(truth, p)}
    top = rank_candidates(index, p.prompt, mode, p.family, p.base_model)[:TOP]
    shown = [f"{c.name} ({c.reason} {c.score:.3g})" for c in top]
    return any(index.records[c.index].path in right for c in top), shown


@pytest.fixture(scope="module")
def figures(library, embedded) -> Dict[str, dict]:
    truth, _ = library
    out: Dict[str, dict] = {}
    for mode in ("hybrid", "keyword", "semantic"):
        hits = hard = 0
        misses = []
        for p in PARAPHRASES:
            hit, shown = _hit(embedded, truth, p, mode)
            hits += hit
            hard += hit and p.hard
            if not hit:
                misses.append(f"  {p.prompt!r} ({'/'.join(p.subjects)} on {p.base_model}): top {TOP} {shown}")
        out[mode] = {"hits": hits, "hard": hard, "misses": misses}
    n, n_hard = len(PARAPHRASES), sum(p.hard for p in PARAPHRASES)
    out["summary"] = "; ".join(
        f"{mode} {f['hits']}/{n} = {f['hits'] / n:.1%} (hard {f['hard']}/{n_hard})"
        for mode, f in out.items())
    print(f"\nparaphrases over the realistic library (seed {SEED}), a right LoRA in the top {TOP}: {out['summary']}")
    print("hybrid misses:\n" + ("\n".join(out["hybrid"]["misses"]) or "  none"))
    return out


def test_hybrid_puts_a_right_lora_in_the_top_5_for_most_descriptive_prompts(figures):
    hybrid = figures["hybrid"]
    share = hybrid["hits"] / len(PARAPHRASES)
    assert share >= GOAL, (f"hybrid top-{TOP} {share:.1%} < goal {GOAL:.0%}; {figures['summary']}\nhybrid misses:\n"
                           + "\n".join(hybrid["misses"]))


# Prompts about nothing this library has a LoRA for (no food, vehicles, animals or buildings LoRA in it).
UNRELATED = ("a bowl of fruit on a wooden table", "a red sports car on a highway", "portrait of an old fisherman",
             "a cat sleeping on a sofa", "a plate of sushi", "mountains reflected in a lake",
             "a man in a business suit", "a golden retriever in a park", "a steaming cup of coffee",
             "a lighthouse on a cliff in a storm", "a child flying a kite", "a sailboat at sea")
SUBJECT = ("character", "clothing", "pose", "background")


def test_prompts_about_nothing_in_the_library_never_get_a_character_and_rarely_an_outfit(embedded, library):
    """Static vectors cannot tell such a prompt from one about something (docs/embeddings.md): what they draw
    for it is near nothing. Never a character; an outfit, pose or background only over the strict bar. The
    share that got one is printed beside the recall it buys."""
    truth, _ = library
    drawn = 0
    checkpoints = ("Illustrious", "Pony", "SD 1.5")
    for prompt in UNRELATED:
        for base in checkpoints:
            family = FAMILY_OF[base]
            picks = [p for seed in range(5) for p in pick_loras(embedded, prompt, seed, Rules(), family, base).picks]
            assert not [p for p in picks if p.category == "character"], (prompt, base)
            drawn += any(p.reason == "semantic" and p.category in SUBJECT for p in picks)
    right_drawn = 0
    for p in PARAPHRASES:
        right = {t["path"] for t in right_loras(truth, p)}
        picks = [k for seed in range(5) for k in pick_loras(embedded, p.prompt, seed, Rules(), p.family,
                                                            p.base_model).picks]
        right_drawn += any(k.record is not None and k.record.path in right for k in picks)
    print(f"\nunrelated prompts drawing an outfit, pose or background by meaning: {drawn}/{len(UNRELATED) * 3}; "
          f"descriptive prompts drawing a right LoRA within 5 seeds: {right_drawn}/{len(PARAPHRASES)}")
    assert drawn <= len(UNRELATED) * 3 // 4


def test_hybrid_finds_more_than_keywords_alone(figures):
    assert figures["hybrid"]["hits"] >= figures["keyword"]["hits"], figures["summary"]


# -- a named trigger still decides -----------------------------------------------------------------------------

def _named_trigger_cases(truth: dict, count: int = 10) -> List[Tuple[str, str, str, frozenset]]:
    """(trigger, base model, category, the paths of every LoRA whose triggers hold it) for `count` LoRAs whose
    files say both their base model and their triggers, one per subject, categories in turn. A trigger
    qualifies when at most 3 LoRAs of the library hold it (a name, not a common word) and it is not a
    character's look (`white hair` names no one), so the first of a character's triggers."""
    holders: Dict[str, set] = {}
    for t in truth["loras"]:
        for trigger in t["triggers"]:
            holders.setdefault(trigger.lower(), set()).add(t["path"])
    by_category: Dict[str, List[Tuple[str, str, str, frozenset]]] = {}
    seen = set()
    for t in truth["loras"]:
        known = t["knowable"].get("base_model") and t["knowable"].get("triggers")
        if t["video"] or t["subject"] in seen or not known:
            continue
        triggers = [x for x in t["triggers"] if not x.startswith("score_")]
        if not triggers or FAMILY_OF.get(t["base_model"]) not in ("sd1", "sdxl", "flux"):
            continue
        trigger = triggers[0]
        if len(holders[trigger.lower()]) > 3:
            continue
        seen.add(t["subject"])
        by_category.setdefault(t["category"], []).append(
            (trigger, t["base_model"], t["category"], frozenset(holders[trigger.lower()])))
    cases: List[Tuple[str, str, str, frozenset]] = []
    while len(cases) < count and any(by_category.values()):
        for found in by_category.values():
            if found and len(cases) < count:
                cases.append(found.pop(0))
    return cases


@pytest.fixture(scope="module")
def plain(library) -> LoraIndex:
    return LoraIndex(library[1])


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
def test_a_named_trigger_ranks_its_owner_first_and_is_picked(library, mode, request):
    truth, _ = library
    index = request.getfixturevalue("embedded" if mode == "hybrid" else "plain")  # keyword needs no vectors
    cases = _named_trigger_cases(truth)
    assert len(cases) >= 8 and len({c[2] for c in cases}) >= 4, cases
    wrong = []
    for trigger, base, category, owners in cases:
        family = FAMILY_OF[base]
        # The trigger as one tag among a description that means something else (sunbeams over a city).
        prompt = f"masterpiece, 1girl, {trigger}, sunbeams piercing through clouds over a city at dusk"
        first = rank_candidates(index, prompt, mode, family, base)[:1]
        if not first or first[0].reason != "trigger" or index.records[first[0].index].path not in owners:
            wrong.append(f"{trigger!r} on {base}: ranked first {[(c.name, c.reason) for c in first]}")
        picks = pick_loras(index, prompt, 7, Rules(match=mode), family, base).picks
        if not any(p.reason == "trigger" and p.record is not None and p.record.path in owners for p in picks):
            wrong.append(f"{trigger!r} ({category}) on {base}: picked {[(p.name, p.reason) for p in picks]}")
    assert not wrong, "\n".join(wrong)
