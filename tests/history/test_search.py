"""Search over the history index: words (FTS5, BM25), filters, sorts, pages, and meaning (prompt vectors) fused
with the words. Images are PNGs written the way Forge writes them and indexed by a real scan; what each test
expects is named from the prompts it wrote (which file should come back), never from the code's own tables."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib_orchestrator.embeddings.base import EmbedError
from lib_orchestrator.history import search as search_module
from lib_orchestrator.history.search import SearchQuery, embed_prompts, search
from lib_orchestrator.history.store import HistoryError, HistoryStore
from tests.history.forge_images import forge_infotext, write_png

DAY = 86_400.0
T0 = 1_760_000_000.0  # the first image's mtime; each next one a day later unless said


def forge_text(prompt: str, negative: str = "lowres, blurry", seed: int = 1, model: str = "dreamXL_v2",
               loras: Sequence[str] = (), batch: str = "", template: str = "") -> str:
    """An infotext as Forge writes it; LoRAs as <lora:NAME:0.8> tags in the prompt."""
    tags = "".join(f" <lora:{name}:0.8>" for name in loras)
    params = [("Steps", 20), ("Sampler", "Euler a"), ("CFG scale", 7), ("Seed", seed), ("Size", "8x8"),
              ("Model hash", "0123abcd45"), ("Model", model), ("Orchestrator template", template or None),
              ("Orchestrator batch", batch or None), ("Version", "f2.0.1v1.10.1-1.10.1")]
    return forge_infotext(prompt + tags, negative, params)


class Library:
    """Images written into a folder and indexed; `ids[name]` the id of the file `name` (without .png)."""

    def __init__(self, root: Path, store: HistoryStore) -> None:
        self.root, self.store = root, store
        self.ids: Dict[str, int] = {}
        self._next = 0

    def add(self, name: str, prompt: str, created: Optional[float] = None, folder: str = "", **infotext) -> Path:
        path = self.root / folder / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(str(path), forge_text(prompt, **infotext), color=self._next)
        mtime = T0 + self._next * DAY if created is None else created
        os.utime(path, (mtime, mtime))
        self._next += 1
        return path

    def scan(self) -> None:
        self.store.scan([str(self.root)])
        self.ids = {Path(p).stem: i for i, p in self.store.db.execute("SELECT id, path FROM images")}

    def names(self, page) -> List[str]:
        by_id = {i: n for n, i in self.ids.items()}
        return [by_id[h.image.id] for h in page.hits]


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(str(tmp_path / "history.sqlite"))
    yield s
    s.close()


@pytest.fixture
def lib(tmp_path: Path, store: HistoryStore) -> Library:
    return Library(tmp_path / "out", store)


def found(lib: Library, text: str = "", **query) -> List[str]:
    return lib.names(search(lib.store, SearchQuery(text=text, per_page=500, **query)))


# -- words ---------------------------------------------------------------------------------------------------------

HAIR = ("blonde", "black", "silver", "pink", "blue", "green", "white", "brown")
CLOTHES = ("school uniform", "kimono", "maid outfit", "hoodie", "sundress", "armor")


@pytest.fixture
def crowd(lib: Library) -> Library:
    """60 prompts alike (tags of one pool, `red` and `hair` in most of them, never side by side), and one with
    the tag red_hair: the phrase must single it out."""
    for n in range(60):
        hair, other = HAIR[n % len(HAIR)], HAIR[(n + 3) % len(HAIR)]
        lib.add(f"crowd{n:02d}", f"1girl, solo, {hair} hair, red eyes, {other} ribbon, red {CLOTHES[n % 6]}, "
                                 f"looking at viewer, {'outdoors' if n % 2 else 'indoors'}", seed=n)
    lib.add("target", "1girl, solo, red_hair, blue eyes, white ribbon, red kimono, looking at viewer, outdoors",
            seed=999)
    lib.scan()
    return lib


def test_a_phrase_finds_the_one_image_among_many_alike(crowd: Library) -> None:
    assert found(crowd, '"red hair"') == ["target"]
    assert found(crowd, "red_hair") == ["target"]  # unicode61 splits at `_`: the tag is the phrase
    assert len(found(crowd, "red hair")) == 61  # the words apart are in every prompt


def test_words_are_all_needed_in_any_order(crowd: Library) -> None:
    assert sorted(found(crowd, "kimono blonde")) == ["crowd13", "crowd37"]  # n % 6 == 1, blonde at n % 8 == 0 or 5
    assert found(crowd, "blonde kimono") == found(crowd, "kimono blonde")
    assert found(crowd, "kimono nothinglikethis") == []


def test_prefix_and_phrase_prefix(crowd: Library) -> None:
    assert sorted(found(crowd, "kimo*")) == sorted(found(crowd, "kimono"))
    assert sorted(found(crowd, "kimo*")) == sorted(["target"] + [f"crowd{n:02d}" for n in range(1, 60, 6)])
    assert found(crowd, '"red ha"*') == ["target"]
    assert found(crowd, "kimo") == []  # no star: a whole word


def test_not_and_or(crowd: Library) -> None:
    kimono = set(found(crowd, "kimono"))
    assert set(found(crowd, "kimono -outdoors")) == {n for n in kimono if n != "target" and int(n[5:]) % 2 == 0}
    assert set(found(crowd, "kimono NOT outdoors")) == set(found(crowd, "kimono -outdoors"))
    assert set(found(crowd, "kimono OR hoodie")) == kimono | set(found(crowd, "hoodie"))
    assert set(found(crowd, "kimono OR hoodie indoors")) == (kimono | set(found(crowd, "hoodie"))) & set(
        found(crowd, "indoors"))
    # Only NOTs: every image but those.
    assert set(found(crowd, "-kimono")) == set(crowd.ids) - kimono
    assert found(crowd, '-"red hair" red_hair') == []


def test_a_prompt_with_punctuation_and_syntax_is_found_by_its_own_words(lib: Library) -> None:
    prompt = "(masterpiece:1.2), 1girl, [cat|dog] ears, {smile}, \"quoted\" word, 50% off, C:\\path, a-b, a/b"
    lib.add("syntax", prompt, loras=("detail_tweaker-v1.5",))
    lib.add("plain", "landscape, mountains")
    lib.scan()
    for text in ("(masterpiece:1.2)", "1girl,", "<lora:detail_tweaker-v1.5:0.8>", "[cat|dog]", "{smile}",
                 '"quoted"', "50%", "C:\\path", "a-b", "a/b", "detail_tweaker", "(masterpiece:1.2), 1girl, {smile}"):
        assert found(lib, text) == ["syntax"], text


@pytest.mark.parametrize("text", ['"unbalanced', 'a"b"c', "OR", "NOT", "AND", "-", "*", "***", '""', "((((", ":",
                                  "lora:", "seed:abc", "model:", "\x00", "a OR", "OR a", "NOT NOT", "-\"", '"*"',
                                  "\ud800", "a" * 5000, " ".join(["w"] * 500), "lora:x:y:z", "❤️", "́"])
def test_odd_text_is_no_error(crowd: Library, text: str) -> None:
    page = search(crowd.store, SearchQuery(text=text))
    assert page.total >= len(page.hits)


def test_text_that_is_not_a_string_is_read_as_none(crowd: Library) -> None:
    assert len(search(crowd.store, SearchQuery(text=None, per_page=100)).hits) == 61  # type: ignore[arg-type]


def test_operators_with_nothing_to_join_are_dropped_or_read_as_words(crowd: Library) -> None:
    assert found(crowd, "kimono OR") == found(crowd, "kimono")  # typed halfway
    assert found(crowd, "AND kimono AND") == found(crowd, "kimono")
    assert set(found(crowd, "")) == set(crowd.ids)


def test_a_query_of_punctuation_only_lists_every_image_and_says_so(crowd: Library) -> None:
    page = search(crowd.store, SearchQuery(text=",,, ((( )))", per_page=500))
    assert len(page.hits) == 61 and "no words" in page.note


def test_many_words_are_cut_and_the_note_says_so(crowd: Library) -> None:
    page = search(crowd.store, SearchQuery(text=" ".join(f"w{n}" for n in range(100))))
    assert page.hits == () and "first 64 words" in page.note


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(list('"*-:()<>[]{}\\\' \x00'))), max_size=80)
       | st.lists(st.sampled_from(["OR", "NOT", "AND", "-", '"', "*", "lora:", "model:", "seed:", "batch:", "red",
                                   "hair", "kimono", "x*", "-y", '"red hair"', "lora:\"a b\"", "seed:12", "é"]),
                  max_size=8).map(" ".join))
def test_any_text_is_searched_without_an_error(crowd: Library, text: str) -> None:
    embed_prompts(crowd.store, KeywordEmbedder())  # (once: the later examples find nothing missing)
    for sort in ("relevance", "newest", "stars"):
        page = search(crowd.store, SearchQuery(text=text, sort=sort, per_page=5), KeywordEmbedder())
        assert len(page.hits) <= 5 and page.total >= len(page.hits)
        assert all(h.image.present for h in page.hits)


# -- ranking -------------------------------------------------------------------------------------------------------

def test_bm25_weights_prompt_over_negative_and_lora_names_over_prompt(lib: Library) -> None:
    lib.add("in_negative", "landscape, lake", negative="ugly, watercolor")
    lib.add("in_prompt", "landscape, lake, watercolor")
    lib.add("in_lora", "landscape, lake", loras=("watercolor",))  # the name is in lora_names (and the tag)
    lib.scan()
    assert found(lib, "watercolor") == ["in_lora", "in_prompt", "in_negative"]
    scores = [h.score for h in search(lib.store, SearchQuery(text="watercolor")).hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert [h.reason for h in search(lib.store, SearchQuery(text="watercolor")).hits] == ["text"] * 3


def test_equal_relevance_is_newest_indexed_first(lib: Library) -> None:
    for n in range(5):
        lib.add(f"same{n}", "a lighthouse at night", seed=n)
    lib.scan()
    ids = [h.image.id for h in search(lib.store, SearchQuery(text="lighthouse")).hits]
    assert ids == sorted(lib.ids.values(), reverse=True)


# -- filters -------------------------------------------------------------------------------------------------------

@pytest.fixture
def varied(lib: Library) -> Library:
    lib.add("pony_a", "castle, knight", model="ponyDiffusionV6XL", loras=("Detail_Tweaker",), seed=11)
    lib.add("pony_b", "castle, dragon", model="ponyDiffusionV6XL_v2", loras=("glitch_fx",), seed=12,
            batch="night run #1")
    lib.add("ill_a", "castle, princess", model="illustriousXL", loras=("detail_tweaker", "glitch_fx"), seed=13,
            batch="night run #2")
    lib.add("ill_b", "forest, princess", model="illustriousXL", seed=14, batch="night runner #1", folder="sub/deep")
    lib.add("sd_a", "forest, castle", model="sd_xl_base_1.0", seed=15, folder="sub")
    lib.scan()
    return lib


def test_checkpoint_is_exact_when_an_image_has_that_name_else_a_prefix(varied: Library) -> None:
    assert found(varied, checkpoint="ponyDiffusionV6XL") == ["pony_a"]
    assert sorted(found(varied, checkpoint="PONY")) == ["pony_a", "pony_b"]
    assert sorted(found(varied, "model:pony")) == ["pony_a", "pony_b"]
    assert sorted(found(varied, "checkpoint:illustriousxl castle")) == ["ill_a"]
    assert sorted(found(varied, "-model:pony castle")) == ["ill_a", "sd_a"]
    assert found(varied, checkpoint="sdxl") == []
    assert found(varied, checkpoint="50%") == [] and found(varied, checkpoint="pony_") == []  # LIKE's own marks


def test_lora_filter_any_case_and_prefix(varied: Library) -> None:
    assert sorted(found(varied, lora="detail_tweaker")) == ["ill_a", "pony_a"]
    assert sorted(found(varied, "lora:DETAIL_TWEAKER")) == ["ill_a", "pony_a"]
    assert sorted(found(varied, "lora:det*")) == ["ill_a", "pony_a"]
    assert sorted(found(varied, "castle -lora:glitch_fx")) == ["pony_a", "sd_a"]
    assert found(varied, "lora:detail_tweaker lora:glitch_fx") == ["ill_a"]
    assert found(varied, 'lora:"glitch fx"') == []


def test_batch_seed_folder_filters(varied: Library) -> None:
    assert sorted(found(varied, batch="night run")) == ["ill_a", "pony_b"]
    assert found(varied, batch="night run #2") == ["ill_a"]
    assert sorted(found(varied, 'batch:"night run"')) == ["ill_a", "pony_b"]
    assert found(varied, "seed:13") == ["ill_a"]
    assert sorted(found(varied, "castle -seed:13")) == ["pony_a", "pony_b", "sd_a"]
    assert found(varied, "seed:99999999999999999999") == []
    sub = str(varied.root / "sub")
    assert sorted(found(varied, folder=sub)) == ["ill_b", "sd_a"]
    assert found(varied, folder=str(varied.root / "sub" / "deep")) == ["ill_b"]
    assert found(varied, folder=str(varied.root / "su")) == []  # a folder, not a prefix of a name
    assert found(varied, "castle", folder=sub) == ["sd_a"]


def test_since_until_on_the_file_time(varied: Library) -> None:
    # pony_a T0, pony_b T0+1d, ill_a T0+2d, ill_b T0+3d, sd_a T0+4d (their mtimes)
    assert sorted(found(varied, since=T0 + DAY, until=T0 + 3 * DAY)) == ["ill_a", "pony_b"]
    assert sorted(found(varied, "castle", since=T0 + 2 * DAY)) == ["ill_a", "sd_a"]
    assert sorted(found(varied, until=T0 + DAY)) == ["pony_a"]
    assert found(varied, since=T0 + 3 * DAY, until=T0 + DAY) == []


def test_rating_filters(varied: Library) -> None:
    s, ids = varied.store, varied.ids
    s.rate(ids["pony_a"], stars=5)
    s.rate(ids["pony_b"], stars=2)
    s.rate(ids["ill_a"], favourite=True)  # no stars: counts as 5 for min_stars
    s.rate(ids["ill_b"], rejected=True, stars=4)
    assert sorted(found(varied, min_stars=4)) == ["ill_a", "pony_a"]
    assert found(varied, min_stars=4, rejected="show") == ["ill_b", "ill_a", "pony_a"]  # newest first
    assert found(varied, favourite=True) == ["ill_a"]
    assert "ill_b" not in found(varied)  # rejected: hidden by default
    assert found(varied, rejected="only") == ["ill_b"]
    assert sorted(found(varied, rated="rated")) == ["ill_a", "pony_a", "pony_b"]
    assert sorted(found(varied, rated="rated", rejected="show")) == ["ill_a", "ill_b", "pony_a", "pony_b"]
    assert found(varied, rated="unrated") == ["sd_a"]
    s.rate(ids["pony_b"], clear=True)
    assert sorted(found(varied, rated="unrated")) == ["pony_b", "sd_a"]
    assert sorted(found(varied, "castle", min_stars=1)) == ["ill_a", "pony_a"]


def test_bad_sort_or_choice_is_an_error_that_names_the_choices(varied: Library) -> None:
    for bad in (dict(sort="best"), dict(rejected="no"), dict(rated="yes")):
        with pytest.raises(HistoryError, match="one of"):
            search(varied.store, SearchQuery(**bad))


# -- sorts and pages -----------------------------------------------------------------------------------------------

def test_sorts(varied: Library) -> None:
    s, ids = varied.store, varied.ids
    assert found(varied) == ["sd_a", "ill_b", "ill_a", "pony_b", "pony_a"]  # no words: newest first
    assert found(varied, sort="oldest") == ["pony_a", "pony_b", "ill_a", "ill_b", "sd_a"]
    assert found(varied, "castle", sort="newest") == ["sd_a", "ill_a", "pony_b", "pony_a"]
    assert found(varied, "castle", sort="oldest") == ["pony_a", "pony_b", "ill_a", "sd_a"]
    s.rate(ids["pony_b"], stars=3)
    s.rate(ids["ill_a"], favourite=True)  # 5 without stars, and a favourite: before a plain 5
    s.rate(ids["pony_a"], stars=5)
    s.rate(ids["sd_a"], rejected=True)
    # Valued first (best first), then the rest newest first, then the rejected (when shown).
    assert found(varied, sort="stars") == ["ill_a", "pony_a", "pony_b", "ill_b"]
    assert found(varied, sort="stars", rejected="show") == ["ill_a", "pony_a", "pony_b", "ill_b", "sd_a"]
    assert found(varied, "castle", sort="stars", rejected="show") == ["ill_a", "pony_a", "pony_b", "sd_a"]
    assert found(varied, "princess", sort="stars") == ["ill_a", "ill_b"]
    hits = search(varied.store, SearchQuery(text="castle", sort="newest")).hits
    assert all(h.reason == "text" and h.score > 0 for h in hits)
    assert all(h.reason == "" and h.score == 0.0 for h in search(varied.store, SearchQuery(sort="stars")).hits)


@pytest.mark.parametrize("sort", ["relevance", "newest", "oldest", "stars"])
@pytest.mark.parametrize("text", ["", "red", "red -kimono"])
def test_pages_cover_every_match_once_in_order(crowd: Library, sort: str, text: str) -> None:
    for n in range(0, 61, 7):
        crowd.store.rate(crowd.ids[f"crowd{n:02d}"] if n < 60 else crowd.ids["target"], stars=1 + n % 5)
    whole = search(crowd.store, SearchQuery(text=text, sort=sort, per_page=1000))
    pages = [search(crowd.store, SearchQuery(text=text, sort=sort, page=p, per_page=7)) for p in range(12)]
    assert [h.image.id for p in pages for h in p.hits] == [h.image.id for h in whole.hits]
    assert all(p.total == whole.total == len(whole.hits) for p in pages)
    assert pages[-1].hits == ()


def test_paging_numbers_are_forgiving(crowd: Library) -> None:
    assert len(search(crowd.store, SearchQuery(page=-3, per_page=0)).hits) == 1
    assert len(search(crowd.store, SearchQuery(per_page=10 ** 6)).hits) == 61  # no host-parameter limit


def test_more_than_the_window_is_counted_as_that_and_said(crowd: Library, monkeypatch) -> None:
    monkeypatch.setattr(search_module, "WINDOW", 20)
    for text, sort in (("red", "relevance"), ("red", "newest"), ("", "newest"), ("", "stars")):
        page = search(crowd.store, SearchQuery(text=text, sort=sort, per_page=5))
        assert page.total == 20 and "more than 20" in page.note and len(page.hits) == 5
    page = search(crowd.store, SearchQuery(text="red", sort="newest", per_page=5))
    assert crowd.names(page) == ["target", "crowd59", "crowd58", "crowd57", "crowd56"]  # still the newest


# -- gone files ----------------------------------------------------------------------------------------------------

def test_gone_images_are_not_found_and_come_back_when_their_file_does(lib: Library) -> None:
    keep = lib.add("keep", "harbor at dawn")
    gone = lib.add("gone", "harbor at dusk")
    lib.scan()
    data = gone.read_bytes()
    gone.unlink()
    lib.store.scan([str(lib.root)])
    for text, sort in (("harbor", "relevance"), ("", "relevance"), ("harbor", "newest"), ("", "stars")):
        assert found(lib, text, sort=sort) == ["keep"], (text, sort)
    assert found(lib, "dusk") == [] and found(lib, "-dawn") == []
    assert search(lib.store, SearchQuery(text="harbor")).total == 1
    gone.write_bytes(data)
    os.utime(gone, (T0 + 5 * DAY,) * 2)
    lib.store.scan([str(lib.root)])
    assert sorted(found(lib, "harbor")) == ["gone", "keep"]
    assert keep.exists()


def test_without_the_present_index_the_rows_are_checked(lib: Library) -> None:
    """An index made before images_present existed: same answers, the present flag read from each row."""
    lib.add("a", "harbor")
    lib.add("b", "harbor")
    lib.scan()
    (lib.root / "b.png").unlink()
    lib.store.scan([str(lib.root)])
    lib.store.db.execute("DROP INDEX IF EXISTS images_present")
    assert found(lib, "harbor") == ["a"] and found(lib) == ["a"] and found(lib, "harbor", sort="stars") == ["a"]


# -- meaning -------------------------------------------------------------------------------------------------------

CONCEPTS = {  # word -> concept: a stand-in embedder whose meaning is exactly this table
    "cat": 0, "cats": 0, "feline": 0, "kitten": 0, "dog": 1, "puppy": 1, "beach": 2, "seaside": 2, "ocean": 2,
    "dress": 3, "gown": 3, "castle": 4, "fortress": 4, "night": 5, "midnight": 5, "rain": 6, "storm": 6,
}


class KeywordEmbedder:
    """Deterministic vectors: one dimension per concept, a text the normalised count of its concept words."""

    kind = "test"
    model = "concepts-v1"

    def __init__(self, model: str = "concepts-v1", dim: int = 16) -> None:
        self.model, self.dim, self.calls = model, dim, 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in CONCEPTS:
                    out[row, CONCEPTS[word]] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=out, where=norms > 0)


class FailingEmbedder(KeywordEmbedder):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EmbedError("the embedding server is down", hint="start it")


@pytest.fixture
def scenes(lib: Library) -> Library:
    lib.add("cat_beach", "1girl, cat, beach, sunset")
    lib.add("kitten_gown", "1girl, kitten, gown, ballroom")  # `cat` by meaning only
    lib.add("dog_castle", "1boy, dog, castle, night")
    lib.add("fortress_storm", "fortress, storm, cliffs")  # `castle` by meaning only
    lib.add("plain", "still life, apples, table")
    lib.scan()
    return lib


def test_embed_prompts_fills_what_is_missing_once(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    assert embed_prompts(scenes.store, embedder) == 5
    assert embed_prompts(scenes.store, embedder) == 0
    scenes.add("new", "a cat in the rain")
    scenes.scan()
    assert embed_prompts(scenes.store, embedder) == 1
    rows = scenes.store.db.execute("SELECT kind, model, length(vec) FROM prompt_vectors").fetchall()
    assert rows == [("test", "concepts-v1", 16 * 2)] * 6  # float16


def test_embed_prompts_replaces_another_models_vectors(scenes: Library) -> None:
    embed_prompts(scenes.store, KeywordEmbedder("old-model"))
    assert embed_prompts(scenes.store, KeywordEmbedder()) == 5
    assert scenes.store.db.execute("SELECT DISTINCT model FROM prompt_vectors").fetchall() == [("concepts-v1",)]


def test_embed_prompts_stops_between_chunks_and_keeps_what_it_wrote(scenes: Library, monkeypatch) -> None:
    monkeypatch.setattr(search_module, "EMBED_CHUNK", 2)
    embedder = KeywordEmbedder()
    asked = []
    assert embed_prompts(scenes.store, embedder, should_stop=lambda: asked.append(1) or len(asked) > 1) == 2
    assert embed_prompts(scenes.store, embedder) == 3


def test_meaning_adds_what_the_words_miss_and_both_rank_first(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    page = search(scenes.store, SearchQuery(text="cat"), embedder)
    assert [(scenes.names(page)[n], h.reason) for n, h in enumerate(page.hits)] == [
        ("cat_beach", "text+meaning"), ("kitten_gown", "meaning")]
    assert page.total == 2 and page.note == ""
    assert page.hits[0].score > page.hits[1].score
    # A word no prompt has, its meaning in some: found by meaning alone, scored by similarity.
    page = search(scenes.store, SearchQuery(text="fortress"), embedder)
    assert scenes.names(page) == ["fortress_storm", "dog_castle"]
    assert [h.reason for h in page.hits] == ["text+meaning", "meaning"]
    page = search(scenes.store, SearchQuery(text="feline"), embedder)
    assert scenes.names(page) == ["cat_beach", "kitten_gown"] and {h.reason for h in page.hits} == {"meaning"}
    assert all(0.35 <= h.score <= 1.0 for h in page.hits)


def test_meaning_obeys_filters_nots_and_sorts(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    scenes.store.rate(scenes.ids["kitten_gown"], stars=4)
    assert found_with(scenes, embedder, "feline", min_stars=3) == ["kitten_gown"]
    assert found_with(scenes, embedder, "feline -ballroom") == ["cat_beach"]
    assert found_with(scenes, embedder, "feline", sort="oldest") == ["cat_beach", "kitten_gown"]
    assert found_with(scenes, embedder, "feline", sort="newest") == ["kitten_gown", "cat_beach"]
    assert found_with(scenes, embedder, "cat", sort="stars") == ["kitten_gown", "cat_beach"]
    assert found_with(scenes, embedder, "cat", semantic=False) == ["cat_beach"]
    hits = search(scenes.store, SearchQuery(text="cat", sort="newest"), embedder).hits
    assert [h.reason for h in hits] == ["meaning", "text+meaning"]


def found_with(lib: Library, embedder, text: str, **query) -> List[str]:
    return lib.names(search(lib.store, SearchQuery(text=text, per_page=100, **query), embedder))


def test_nonsense_finds_nothing_by_meaning(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    for text in ("zzqx", "quantum chromodynamics", "apples"):  # `apples`: a word, not a concept
        page = search(scenes.store, SearchQuery(text=text), embedder)
        assert all(h.reason == "text" for h in page.hits), text


def test_without_vectors_or_embedder_the_words_alone_answer_and_the_note_says_why(scenes: Library) -> None:
    page = search(scenes.store, SearchQuery(text="cat"), KeywordEmbedder())
    assert scenes.names(page) == ["cat_beach"] and "no prompt vectors yet" in page.note
    page = search(scenes.store, SearchQuery(text="cat"))
    assert scenes.names(page) == ["cat_beach"] and "no embedder" in page.note
    assert search(scenes.store, SearchQuery(text="cat", semantic=False)).note == ""
    embed_prompts(scenes.store, KeywordEmbedder())
    page = search(scenes.store, SearchQuery(text="cat"), FailingEmbedder())
    assert scenes.names(page) == ["cat_beach"] and "the embedding server is down" in page.note
    page = search(scenes.store, SearchQuery(text="cat"), KeywordEmbedder("another-model"))
    assert scenes.names(page) == ["cat_beach"] and "no prompt vectors yet" in page.note
    page = search(scenes.store, SearchQuery(text="cat"), KeywordEmbedder(dim=8))
    assert scenes.names(page) == ["cat_beach"]


def test_vectors_are_read_again_after_embed_prompts_writes(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    assert found_with(scenes, embedder, "puppy") == ["dog_castle"]
    scenes.add("puppy_rain", "puppy, rain, street")
    scenes.scan()
    assert found_with(scenes, embedder, "puppy") == ["puppy_rain", "dog_castle"]  # its words; no vector yet
    embed_prompts(scenes.store, embedder)
    page = search(scenes.store, SearchQuery(text="storm"), embedder)
    assert scenes.names(page) == ["fortress_storm", "puppy_rain"]  # rain is a storm by meaning: a new vector


def test_the_gone_are_not_found_by_meaning(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    (scenes.root / "kitten_gown.png").unlink()
    scenes.store.scan([str(scenes.root)])
    assert found_with(scenes, embedder, "feline") == ["cat_beach"]


def test_the_real_builtin_embedder_finds_by_meaning(lib: Library) -> None:
    from lib_orchestrator.embeddings.builtin import builtin_embedder, builtin_status

    why = builtin_status()
    if why is not None:
        pytest.skip(f"the builtin embedder is not usable here: {why}")
    embedder = builtin_embedder()
    lib.add("cats", "1girl, cat ears, cat tail, smile, looking at viewer")
    lib.add("sea", "ocean, waves, sunset, beach, seagulls")
    lib.add("mecha", "giant robot, mecha, city ruins, smoke")
    lib.add("food", "still life, apples, bread, wooden table")
    lib.scan()
    assert embed_prompts(lib.store, embedder) == 4
    assert found_with(lib, embedder, "feline ears")[:1] == ["cats"]
    assert found_with(lib, embedder, "seaside")[:1] == ["sea"]
    for nonsense in ("xqzv blorf", "qwrtp"):
        assert found_with(lib, embedder, nonsense) == [], nonsense
    page = search(lib.store, SearchQuery(text="mecha"), embedder)
    assert lib.names(page)[0] == "mecha" and page.hits[0].reason == "text+meaning"


def test_search_is_quick_enough_at_a_few_thousand(lib: Library, store: HistoryStore) -> None:
    """Not the benchmark (benchmarks/history.py at 100k): a guard that no query shape reads every row per hit."""
    rows = [(f"/x/{n}.png", 1, n, T0 + n, f"1girl, {HAIR[n % 8]} hair, {CLOTHES[n % 6]}, seed{n}", "lowres", n)
            for n in range(3000)]
    store.db.execute("BEGIN")
    store.db.executemany("INSERT INTO images (path, size, mtime_ns, created, prompt, negative, seed) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    store.db.execute("COMMIT")
    start = time.perf_counter()
    for text in ("hair", "kimono", '"blonde hair"', "kimo*", "hair -armor", "1girl lora:x", ""):
        for sort in ("relevance", "newest", "stars"):
            assert search(store, SearchQuery(text=text, sort=sort)).hits or "lora:" in text
    assert time.perf_counter() - start < 3.0


def test_a_rewritten_prompt_loses_its_old_vector(scenes: Library) -> None:
    embedder = KeywordEmbedder()
    embed_prompts(scenes.store, embedder)
    assert found_with(scenes, embedder, "midnight") == ["dog_castle"]
    scenes.add("plain", "still life, apples, midnight")  # the same file, written again with another prompt
    os.utime(scenes.root / "plain.png", (T0 + 9 * DAY,) * 2)
    scenes.scan()
    assert found_with(scenes, embedder, "seaside") == ["cat_beach"]
    assert embed_prompts(scenes.store, embedder) == 1  # only the rewritten one
    assert found_with(scenes, embedder, "midnight") == ["plain", "dog_castle"]
