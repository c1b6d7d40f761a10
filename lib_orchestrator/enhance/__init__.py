"""LLM prompt enhancement: what the model may touch, what it must give back, and cleaning its answer."""
from .breaker import Breaker
from .cache import AnswerCache
from .cleanup import clean_output, is_refusal
from .client import PRESETS, LlmError, Server
from .enhance import Enhanced, enhance
from .enhancer import EnhanceOptions, Enhancer, llm_seed
from .protect import Protected, protect, restore
from .templates import TEMPLATE_NAMES, load_genres, load_template, template_for

__all__ = ["PRESETS", "TEMPLATE_NAMES", "AnswerCache", "Breaker", "EnhanceOptions", "Enhanced", "Enhancer",
           "LlmError", "Protected", "Server", "clean_output", "enhance", "is_refusal", "llm_seed", "load_genres",
           "load_template", "protect", "restore", "template_for"]
