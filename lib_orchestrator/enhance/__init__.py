"""LLM prompt enhancement: what the model may touch, what it must give back, and cleaning its answer."""
from .breaker import Breaker
from .cleanup import clean_output, is_refusal
from .enhance import Enhanced, enhance
from .protect import Protected, protect, restore

__all__ = ["Breaker", "Enhanced", "Protected", "clean_output", "enhance", "is_refusal", "protect", "restore"]
