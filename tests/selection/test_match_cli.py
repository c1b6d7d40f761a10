"""`python -m lib_orchestrator library match` and `compose --match/--embed`: the public contract.

Runs over the bundled sample library (samples/loras), whose LoRAs and triggers are written out in its files;
the expectations here come from those files (god_rays_xl is a concept about light rays, neon_alley_xl a
background whose name the prompt says), not from the matcher's tables.
"""
from __future__ import annotations

import io
import json

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.cli import main

from ..embeddings.test_remote import embedding_server
from .test_llm_choice import answering, refused_url


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


def match(prompt, *extra):
    code, out, err = run("library", "match", prompt, "--loras", SAMPLE_LORAS, "--family", "sdxl", "--format", "jsonl",
                         "--no-cache", *extra)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()], err


@pytest.fixture(scope="module")
def builtin():
    from lib_orchestrator.embeddings.builtin import builtin_status

    why = builtin_status()
    if why is not None:
        pytest.skip(f"the builtin embedder is not usable here: {why}")


def test_jsonl_rows_carry_the_contract_fields_best_first(builtin):
    rows, err = match("sunbeams piercing the clouds over a valley")
    assert not err
    assert rows and {"name", "path", "score", "reason", "terms"} <= set(rows[0])
    assert (rows[0]["name"], rows[0]["reason"]) == ("god_rays_xl", "semantic")  # no word in common: by meaning
    assert rows[0]["score"] == rows[0]["similarity"] and rows[0]["path"].endswith("god_rays_xl.safetensors")


def test_a_lora_the_prompt_names_ranks_first_in_every_mode(builtin):
    for mode in ("keyword", "semantic", "hybrid"):
        rows, _ = match("neon alley, sunbeams piercing the clouds", "--match", mode)
        assert rows[0]["name"] == "neon_alley_xl", mode
        assert rows[0]["reason"] == ("semantic" if mode == "semantic" else "match"), mode  # its name, no trigger


def test_keyword_mode_finds_nothing_by_meaning_and_top_limits_the_rows(builtin):
    assert match("sunbeams piercing the clouds over a valley", "--match", "keyword")[0] == []
    assert len(match("a knight in a neon alley at night, sunbeams", "--top", "1")[0]) == 1


def test_the_table_shows_reason_score_category_and_evidence(builtin):
    code, out, _ = run("library", "match", "sunbeams piercing the clouds", "--loras", SAMPLE_LORAS, "--family", "sdxl",
                       "--no-cache")
    first = out.splitlines()[0].split()
    assert code == 0 and first[:3] == ["1", "god_rays_xl", "semantic"] and "similarity" in out


def test_an_embeddings_server_makes_the_vectors_and_the_cache_keeps_them(serve, tmp_path):
    server = serve(embedding_server("lmstudio", ["qwen2.5-7b-instruct", "text-embedding-nomic-embed-text-v1.5"],
                                    ["text-embedding-nomic-embed-text-v1.5"]))
    cache = str(tmp_path / "lib.sqlite")
    argv = ("library", "match", "neon alley", "--loras", SAMPLE_LORAS, "--family", "sdxl", "--format", "jsonl",
            "--embed", server.url, "--embed-model", "text-embedding-nomic-embed-text-v1.5", "--cache", cache)
    code, out, err = run(*argv)
    assert code == 0 and not err and out
    inputs = lambda: sum(len(body["input"]) for method, path, body, _ in server.requests  # noqa: E731
                         if path.endswith("/embeddings"))
    first = inputs()
    assert first > 10  # every LoRA's texts, and the prompt
    code, again, err = run(*argv)
    assert code == 0 and again == out and inputs() - first == 1  # the second run sends the prompt only


def test_an_embedder_that_cannot_work_leaves_keywords_and_says_so_once():
    rows, err = match("neon alley", "--embed", refused_url())
    assert rows[0]["name"] == "neon_alley_xl"
    assert err.count("\n") == 1 and err.startswith("warning: hybrid matching uses keywords only: ")
    assert "127.0.0.1" not in err  # never the server's address


def test_llm_mode_lists_the_llms_choice_first_with_its_reason(serve, builtin):
    server = serve(answering(json.dumps({"loras": [{"id": "god_rays_xl", "reason": "light through clouds"}]})))
    rows, err = match("sunbeams piercing the clouds over a valley", "--match", "llm", "--llm-url", server.url)
    assert not err and rows[0]["name"] == "god_rays_xl"
    assert (rows[0]["reason"], rows[0]["why"]) == ("llm", "light through clouds")
    rows, err = match("sunbeams piercing the clouds over a valley", "--match", "llm", "--llm-url", refused_url())
    assert rows[0]["reason"] == "semantic" and err.startswith("warning: LLM LoRA choice fell back to hybrid candidates")


def test_compose_takes_the_match_mode_and_its_picks_say_why(builtin):
    common = ("compose", "sunbeams piercing the clouds over a valley", "--loras", SAMPLE_LORAS, "--family", "sdxl",
              "--seed", "1", "--format", "jsonl", "--no-cache")
    code, out, _ = run(*common)
    picks = json.loads(out)["loras"]
    god = [p for p in picks if p["name"] == "god_rays_xl"]
    assert code == 0 and god and god[0]["reason"] == "semantic" and god[0]["similarity"] > 0
    code, out, _ = run(*common, "--match", "keyword")
    assert code == 0 and all(p["reason"] != "semantic" and p["similarity"] is None for p in json.loads(out)["loras"])


def test_a_missing_folder_is_bad_input():
    code, _, err = run("library", "match", "x", "--loras", "/no/such/folder", "--family", "sdxl")
    assert code == 2 and "LoRA folder does not exist" in err
