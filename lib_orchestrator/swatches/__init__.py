"""LoRA swatches: one prompt and one seed, each LoRA at each weight, side by side with a baseline."""
from .plan import Swatch, SwatchCell, parse_weights, plan_swatch

__all__ = ["Swatch", "SwatchCell", "parse_weights", "plan_swatch"]
