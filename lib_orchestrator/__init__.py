"""Orchestrator's core: prompt and LoRA orchestration for Stable Diffusion WebUI Forge, without Forge."""
import os

__version__ = "0.2.0"  # the one version number: the wheel (pyproject.toml), `orchestrator --version`, Forge's Settings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The extension's own folder (a checkout, or Forge's extensions/<name>/), where Forge needs wildcards/ to be.
EXTENSION_DIR = os.path.dirname(_PACKAGE_DIR)


def bundled_path(*parts: str) -> str:
    """A folder of data shipped with Orchestrator (wildcards/, samples/...): inside the package when installed
    from a wheel (setup.py maps those folders to lib_orchestrator/_bundled/), else in the extension's folder.
    The package's own copy wins: next to an installed package lies site-packages, not the extension."""
    installed = os.path.join(_PACKAGE_DIR, "_bundled", *parts)
    return installed if os.path.isdir(installed) else os.path.join(EXTENSION_DIR, *parts)


BUNDLED_WILDCARDS = bundled_path("wildcards")
SAMPLE_LORAS = bundled_path("samples", "loras")  # metadata-only stand-ins, for the demo
SAMPLE_STORIES = bundled_path("samples", "stories")
