"""`python -m lib_orchestrator compose`: the public contract."""
from __future__ import annotations

import io
import json

import pytest

from lib_orchestrator.cli import main

from ..conftest import BUNDLED
from ..library_fixtures import generate


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("lib")
    generate(root, "tiny", seed=5)
    return str(root / "Lora")


def test_jsonl_has_the_contract_fields_and_seeds_follow(loras):
    code, out, _ = run("compose", "__templates/cozy__", "--loras", loras, "--family", "sdxl",
                       "--base-model", "Illustrious", "--count", "3", "--seed", "40", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seed"] for r in rows] == [40, 41, 42]
    for row in rows:
        assert {"seed", "prompt", "negative_prompt", "base_prompt", "loras"} <= set(row)
        assert row["prompt"].startswith(row["base_prompt"].split(",")[0])
        for lora in row["loras"]:
            assert {"name", "weight", "category", "score", "reason"} <= set(lora)
            assert f"<lora:{lora['name']}:" in row["prompt"]


def test_image_k_of_a_run_is_the_image_of_seed_s_plus_k(loras):
    args = ["compose", "__templates/noir__", "--loras", loras, "--family", "sdxl", "--format", "jsonl"]
    batch = run(*args, "--seed", "10", "--count", "3")[1].splitlines()
    single = run(*args, "--seed", "12", "--count", "1")[1].splitlines()
    assert batch[2] == single[0]


def test_text_format_and_wildcards_option(loras):
    code, out, _ = run("compose", "a {red|blue} __mood__ cat", "--loras", loras, "--family", "sd1",
                       "--wildcards", str(BUNDLED), "--count", "2", "--seed", "1")
    assert code == 0 and len(out.splitlines()) == 2 and all(line.startswith("a ") for line in out.splitlines())


@pytest.mark.parametrize("extra, fragment", [
    (["--base-model", "Pony", "--family", "sd1"], "not of the sd1 family"),
    (["--rules", "/nonexistent/rules.yaml", "--family", "sdxl"], "cannot read rules file"),
])
def test_bad_input_is_one_line_and_status_2(loras, extra, fragment):
    code, out, err = run("compose", "a cat", "--loras", loras, *extra)
    assert code == 2 and fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_missing_lora_folder(tmp_path):
    code, _, err = run("compose", "a cat", "--loras", str(tmp_path / "none"), "--family", "sdxl")
    assert code == 2 and "LoRA folder does not exist" in err
