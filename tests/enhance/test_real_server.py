"""Against a real local LLM server, only when ORCH_LLM_URL is set (e.g. LM Studio's
http://localhost:1234/v1); ORCH_LLM_MODEL picks the model (default: the first listed). A small model may
still fall back: what must hold is that the prompt stays usable and the user's spans survive."""
from __future__ import annotations

import os

import pytest

from lib_orchestrator.enhance import EnhanceOptions, Enhancer
from lib_orchestrator.enhance.client import Server, readiness
from lib_orchestrator.enhance.templates import load_template
from lib_orchestrator.story import make_story, parse_bible

from ..conftest import REPO

URL = os.environ.get("ORCH_LLM_URL", "")
pytestmark = pytest.mark.skipif(not URL, reason="set ORCH_LLM_URL to test against a real LLM server")
PROMPT = "a (red:1.2) fox in a snowy forest, [winter:spring:0.5] <lora:ink_wash:0.8>"


@pytest.fixture(scope="module")
def enhancer():
    return Enhancer(EnhanceOptions(url=URL, model=os.environ.get("ORCH_LLM_MODEL", ""), genre="cozy", timeout=180))


def test_the_server_is_ready():
    assert readiness(Server(URL)).startswith("ready:")


@pytest.mark.parametrize("family, base", [("sd1", None), ("sdxl", None), ("flux", None), ("sdxl", "Pony")])
def test_a_real_model_enhances_and_every_protected_span_survives(enhancer, family, base):
    result = enhancer(PROMPT, 42, family, base)
    print(f"\n{family}/{base}: {result.status} {result.reason!r}\n  {result.prompt}")
    assert result.status in ("enhanced", "fallback")
    for span in ("(red:1.2)", "[winter:spring:0.5]", "<lora:ink_wash:0.8>"):
        assert result.prompt.count(span) == 1
    assert result.prompt.endswith("<lora:ink_wash:0.8>")
    if base == "Pony" and result.status == "enhanced":
        assert result.prompt.startswith("score_9, score_8_up")
    assert enhancer(PROMPT, 42, family, base) == result  # seeded and cached: the same again


def test_a_real_model_plans_story_beats():
    enhancer = Enhancer(EnhanceOptions(url=URL, model=os.environ.get("ORCH_LLM_MODEL", ""), timeout=180))
    bible = parse_bible((REPO / "samples" / "stories" / "lighthouse.yaml").read_text(encoding="utf-8"))
    scenes, note = make_story(bible, 4, 7, load_template("sdxl"), "",
                              lambda messages, schema: enhancer.chat(messages, schema, 7))
    print(f"\n{note or 'planned by the LLM'}\n" + "\n".join(s.prompt for s in scenes))
    assert len(scenes) == 4
