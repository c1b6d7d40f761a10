"""Genre-aware storytelling: a story bible becomes N scene prompts in order; the LLM plans the beats,
code writes the prompts so every character looks the same in every scene."""
from .beats import SHOTS, Beat, plan_beats
from .bible import Bible, Character, parse_bible
from .scenes import Scene, compose_scene, make_story, story_batch

__all__ = ["SHOTS", "Beat", "Bible", "Character", "Scene", "compose_scene", "make_story", "parse_bible",
           "plan_beats", "story_batch"]
