"""LLM prompt enhancement: what the model may touch, what it must give back, and cleaning its answer.

The client and the pipeline step are imported on first use (PEP 562): the pipeline's records import
this package, and only code that talks to a server should pay for importing requests.
"""
from importlib import import_module
from typing import Any

from .breaker import Breaker
from .cache import AnswerCache
from .cleanup import clean_output, is_refusal
from .enhance import Enhanced, enhance
from .errors import LlmError
from .protect import Protected, protect, restore
from .templates import TEMPLATE_NAMES, load_genres, load_template, template_for

_LAZY = {"API_KEY_ENV": "client", "PRESETS": "client", "Server": "client", "readiness": "client",
         "EnhanceOptions": "enhancer", "Enhancer": "enhancer", "llm_seed": "enhancer"}

__all__ = ["TEMPLATE_NAMES", "AnswerCache", "Breaker", "Enhanced", "LlmError", "Protected", "clean_output",
           "enhance", "is_refusal", "load_genres", "load_template", "protect", "restore", "template_for"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_LAZY[name]}", __name__), name)
