"""How often the scan is right about real users' LoRAs: the product's scan_library against the truth of
tests/library_realistic.py (about 300 LoRAs named, filed and described as people keep them).

Only the LoRAs whose truth the files reveal are scored (truth.json says which, and why not for the rest).
The figures are printed and written to test-artifacts/library_accuracy.json so they can be quoted; a
failure lists every miss."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib_orchestrator.library import scan_library

from ..library_realistic import generate_realistic, score

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "library_accuracy.json"
# Issue 15 measured ~83 % (base model) and ~80 % (category) before; trigger words were found but not split.
# Goals: the scan should know what the files say about nearly every LoRA. Video LoRAs must all be excluded.
GOALS = {"base_model": 0.97, "category": 0.90, "triggers": 0.97, "video_excluded": 1.0}
SEEDS = (0, 1, 2)  # seed 0 is asserted; the others are measured too, so one lucky library proves nothing


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results = {}
    for seed in SEEDS:
        root = tmp_path_factory.mktemp(f"realistic{seed}")
        truth = generate_realistic(root, seed=seed)
        records = {r.path: r.to_dict() for r in scan_library(str(root / "Lora")).records}
        results[seed] = score(truth, records)
    summary = {
        "goals": GOALS,
        "seeds": {str(seed): {name: {k: r[name][k] for k in ("right", "knowable", "accuracy", "right_of_all", "all")}
                          for name in GOALS}
                  | {"loras": r["loras"], "unknowable": r["unknowable"]} for seed, r in results.items()},
        "misses": {str(seed): {name: r[name]["misses"] for name in GOALS} for seed, r in results.items()},
    }
    ARTIFACT.parent.mkdir(exist_ok=True)
    ARTIFACT.write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
    for seed, r in results.items():
        line = ", ".join(f"{name} {r[name]['right']}/{r[name]['knowable']} = {r[name]['accuracy']:.1%}"
                         for name in GOALS)
        print(f"\nrealistic library seed {seed} ({r['loras']} LoRAs; not knowable: {r['unknowable']}): {line}")
    return results


@pytest.mark.parametrize("name", list(GOALS))
def test_accuracy_on_a_realistic_library(figures, name):
    result = figures[0][name]
    assert result["knowable"] >= (3 if name == "video_excluded" else 150), result
    assert result["accuracy"] >= GOALS[name], (
        f"{name}: {result['right']}/{result['knowable']} = {result['accuracy']:.1%}, goal {GOALS[name]:.0%}; "
        f"{len(result['misses'])} misses:\n" + "\n".join(result["misses"]))


def test_the_other_seeds_meet_the_goals_too(figures):
    short = [f"seed {seed} {name}: {r[name]['accuracy']:.1%} < {goal:.0%}" for seed, r in figures.items()
             if seed != 0 for name, goal in GOALS.items() if r[name]["accuracy"] < goal]
    assert not short, "\n".join(short)


# -- the realistic library itself -----------------------------------------------------------------------

def test_realistic_library_is_written_with_its_truth_and_is_deterministic(tmp_path):
    first = generate_realistic(tmp_path / "a", seed=5)
    again = generate_realistic(tmp_path / "b", seed=5)
    assert first == again == json.loads((tmp_path / "a" / "truth.json").read_text(encoding="utf-8"))
    assert len(first["loras"]) == 300
    lib = tmp_path / "a" / "Lora"
    assert sorted(str(p.relative_to(lib)) for p in lib.rglob("*.safetensors")) == sorted(
        t["path"] for t in first["loras"])
    for t in first["loras"]:
        assert set(t["knowable"]) == {"base_model", "category", "triggers"}, t["path"]
        assert set(t["why"]) == {k for k, v in t["knowable"].items() if not v}, t["path"]
        assert all(t["why"].values()), t["path"]
    with pytest.raises(FileExistsError):
        generate_realistic(tmp_path / "a", seed=5)


def test_realistic_library_has_the_mix_real_libraries_have(tmp_path):
    truth = generate_realistic(tmp_path, seed=0)["loras"]
    bases = {t["base_model"] for t in truth}
    assert {"Pony", "Illustrious", "NoobAI", "SDXL 1.0", "SD 1.5", "Flux.1 D"} <= bases
    assert any(t["video"] for t in truth)
    folders = {t["path"].rsplit("/", 1)[0] for t in truth if "/" in t["path"]}
    for needle in ("Illustrious/chara", "_Pony", "Effects", "Misc"):
        assert any(f.startswith(needle) for f in folders), needle
    names = [t["path"].rsplit("/", 1)[-1] for t in truth]
    for needle in ("IL", "PDXL", "pony", "-0000"):
        assert any(needle in n for n in names), needle
    # some truths are hidden from the files, for every field, and the reasons say why
    for field in ("base_model", "category", "triggers"):
        assert 0 < sum(not t["knowable"][field] for t in truth) < len(truth) // 2, field
