"""Scene prompts, composed by code from the bible and the beats: each character's descriptors (and
LoRA) go in word for word in every scene, so the LLM can never drift them. When a prompt is over its
token budget the scene's own words are shortened, never a character."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..batches.model import Batch, BatchImage, Settings
from ..compose import lora_tag
from ..enhance.enhance import add_prefix, break_chunks, count_tokens
from ..enhance.templates import Template
from .beats import Beat, plan_beats
from .bible import Bible, Character


@dataclass(frozen=True)
class Scene:
    index: int
    seed: int
    prompt: str
    beat: Beat
    loras: Tuple[Tuple[str, float, str], ...] = ()  # (name, weight, "story")


def compose_scene(bible: Bible, beat: Beat, template: Template, index: int, seed: int) -> Scene:
    cast = [bible.character(cid) for cid in beat.characters]
    prose = template.form == "prose"
    people = [_descriptor(c, prose) for c in cast]
    # droppable last-first: style, mood, time of day, shot, location, action
    scene = [beat.action, beat.location, beat.time_of_day, beat.shot if not prose else "",
             f"{beat.mood} mood" if beat.mood else "", bible.style]
    loras = tuple((c.lora[0], c.lora[1], "story") for c in cast if c.lora)
    tags = " ".join(lora_tag(name, weight) for name, weight, _ in loras)
    drop = [5, 4, 2, 3, 1, 0]
    while True:
        text = _join(people, [s for s in scene if s], prose, beat.shot)
        if not prose:
            text = add_prefix(template.prefix, text)
        # the budget holds per BREAK chunk (Forge encodes each on its own); the scene's words all sit in
        # the last one, after the last character: only that chunk can be brought under it
        if count_tokens(break_chunks(text)[0][-1]) <= template.budget or not any(scene[k] for k in drop):
            break
        k = next(k for k in drop if scene[k])
        scene[k] = ""
    return Scene(index, seed, f"{text} {tags}" if tags else text, beat, loras)


def _descriptor(character: Character, prose: bool) -> str:
    words = character.prose if prose else character.tags
    return f"{character.trigger}, {words}" if character.trigger else words


def _join(people: List[str], scene: List[str], prose: bool, shot: str) -> str:
    if prose:
        who = " and ".join(people)
        head = f"{shot[0].upper()}{shot[1:]} of {who}" if who else shot.capitalize()
        return ", ".join([head, *scene]) + "."
    groups = " BREAK ".join(people)  # BREAK keeps one character's colours off another
    return ", ".join([g for g in (groups, *scene) if g])


def make_story(bible: Bible, count: int, seed: int, template: Template, genre_card: str = "",
               ask: Optional[Callable[[List[Dict[str, str]], Dict[str, Any]], str]] = None
               ) -> Tuple[List[Scene], str]:
    """N scenes in order: scene k has seed `seed + k`. (scenes, note on how the beats were planned)."""
    beats, note = plan_beats(bible, count, ask, genre_card)
    return [compose_scene(bible, beat, template, k, seed + k) for k, beat in enumerate(beats)], note


def story_batch(name: str, bible: Bible, scenes: List[Scene], seed: int, settings: Optional[Settings] = None,
                negative: str = "") -> Batch:
    images = tuple(BatchImage(s.index, s.seed, s.prompt, negative, s.loras) for s in scenes)
    return Batch(name, f"story: {bible.title}", seed, settings or Settings(), images, negative, origin="story")
