"""Orchestrator's core: prompt and LoRA orchestration for Stable Diffusion WebUI Forge, without Forge."""
import os

__version__ = "0.1.0"

# The extension's own folder: where the bundled wildcards/ live.
EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_WILDCARDS = os.path.join(EXTENSION_DIR, "wildcards")
SAMPLE_LORAS = os.path.join(EXTENSION_DIR, "samples", "loras")  # metadata-only stand-ins, for the demo
