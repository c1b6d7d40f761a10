"""The wildcard prompt engine: dynamicprompts' template language, compiled, seeded per image."""
from .engine import MODES, Prompt, PromptEngine
from .parser import parse
from .store import WildcardStore

__all__ = ["MODES", "Prompt", "PromptEngine", "WildcardStore", "parse"]
