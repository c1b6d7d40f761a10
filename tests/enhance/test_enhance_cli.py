"""`enhance` and `compose --enhance-url` on the command line: their exact output fields, exit 0 on a
fallback (status tells), exit 2 with file:line for a broken template."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from lib_orchestrator import SAMPLE_LORAS
from lib_orchestrator.cli import main

from ..conftest import REPO
from .fake_servers import backend, idea_of


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), out, err), out.getvalue(), err.getvalue()


def test_enhance_prints_the_prompt_or_its_record(serve, tmp_path):
    server = serve(backend("ollama", models=("llama3.2",)))
    code, out, err = cli("enhance", "a (red:1.2) fox <lora:ink:0.5>", "--url", server.url, "--family", "sd1",
                         "--genre", "noir", "--seed", "7")
    assert (code, err) == (0, "")
    assert out == "a (red:1.2) fox, cinematic lighting, detailed background <lora:ink:0.5>\n"
    code, out, _ = cli("enhance", "1girl, snow", "--url", server.url, "--family", "pony", "--format", "jsonl")
    record = json.loads(out)
    assert list(record) == ["prompt", "original", "status", "reason"]
    assert record["status"] == "enhanced" and record["original"] == "1girl, snow"
    assert record["prompt"].startswith("score_9, score_8_up") and "rating_safe" in record["prompt"]
    assert server.requests[-1][2]["seed"] == 0


def test_enhance_exits_0_on_fallback_and_says_why(serve):
    server = serve(backend("lmstudio", loaded=False))
    code, out, err = cli("enhance", "a fox", "--url", server.url, "--format", "jsonl")
    assert code == 0
    assert json.loads(out) == {"prompt": "a fox", "original": "a fox", "status": "fallback",
                               "reason": "LM Studio has no model loaded: load one, or turn on JIT loading"}
    assert err.startswith("fallback: LM Studio has no model loaded")


def test_bad_input_exits_2_with_file_line_and_hint(tmp_path):
    (tmp_path / "sdxl.yaml").write_text("version: 1\nform: prose\n  budget: 75\n")
    code, out, err = cli("enhance", "a fox", "--templates", str(tmp_path))
    assert code == 2 and out == ""
    assert "sdxl.yaml:3:" in err and "indentation" in err
    with pytest.raises(SystemExit) as info:
        cli("enhance", "a fox", "--family", "sd4")
    assert info.value.code == 2


def test_compose_enhances_before_picking_loras(serve):
    def model(body):
        return {"prompt": f"{idea_of(body)}, walking through a neon alley at night"}

    server = serve(backend("llamacpp", model=model))
    code, out, err = cli("compose", "a quiet stranger, {rain|fog}", "--loras", SAMPLE_LORAS, "--family", "sdxl",
                         "--seed", "3", "--count", "2", "--format", "jsonl", "--enhance-url", server.url,
                         "--enhance-genre", "cyberpunk")
    assert code == 0, err
    for line in out.splitlines():
        record = json.loads(line)
        assert "neon_alley_xl" in [lora["name"] for lora in record["loras"]]
        assert record["enhancement"]["status"] == "enhanced"
        assert record["enhancement"]["template"] == "sdxl@1"
        assert record["base_prompt"].endswith("neon alley at night")
        assert not record["enhancement"]["original"].endswith("neon alley at night")


def test_python_dash_m_enhance_runs(serve):
    server = serve(backend("lmstudio"))
    done = subprocess.run([sys.executable, "-m", "lib_orchestrator", "enhance", "a fox", "--url", server.url],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("a fox, shown in soft cinematic light"), done.stderr
