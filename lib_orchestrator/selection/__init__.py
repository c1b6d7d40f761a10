"""Choosing LoRAs for a prompt: match them against it, then pick by rules, seeded per image."""
from .index import LoraIndex
from .pick import Pick, pick_loras
from .rules import Rules, load_rules

__all__ = ["LoraIndex", "Pick", "Rules", "load_rules", "pick_loras"]
