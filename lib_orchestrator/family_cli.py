"""`--family F [--base-model NAME]`: the checkpoint a command works for, the same option in every command.

The families are the LoRA library's architecture families. `pony`, `illustrious` and `noobai` are shortcuts
for an SDXL checkpoint of that base model, because that is what a user means by "a Pony checkpoint": the
family decides which LoRAs can load, the base model which of them fit best and which enhancement template
writes the prompt (enhance.templates.template_for).
"""
from __future__ import annotations

import argparse
from typing import Optional, Tuple

# library.base_models.FAMILIES less video and unknown, spelled out because every command builds the parser
# and the library package costs start-up time; tests/test_cli_conventions.py checks they are the same.
ARCHITECTURES = ("sd1", "sd2", "sdxl", "flux", "sd3")
BASE_MODEL_SHORTCUTS = {"pony": "Pony", "illustrious": "Illustrious", "noobai": "NoobAI"}  # all SDXL
SHORTCUT_FAMILY = "sdxl"
FAMILY_CHOICES = ARCHITECTURES + tuple(BASE_MODEL_SHORTCUTS)

FAMILY_HELP = ("the checkpoint's family: sd1, sd2, sdxl, flux, sd3; or pony, illustrious, noobai for SDXL with "
               "that base model (as --family sdxl --base-model Pony)")
# What `enhance` and `story` write for each: enhance.templates.template_for, told in their help.
TEMPLATE_HELP = ("; it decides the enhancement template: sd1 for sd1 and sd2 (tags), sdxl for sdxl and sd3 (prose), "
                 "flux, pony, and illustrious for illustrious and noobai")
BASE_MODEL_HELP = ("the checkpoint's base model as Civitai names it, e.g. Pony, Illustrious, NoobAI, SD 3.5 Large "
                   "(default: the family's plain one: SD 1.5, SD 2.1, SDXL 1.0, Flux.1 D, SD 3.5)")


def family_name(text: str) -> str:
    """`--family SDXL` and `--family Pony` are read as sdxl and pony."""
    return text.strip().lower()


def add_checkpoint_args(p: argparse.ArgumentParser, default: Optional[str] = "sdxl", extra_help: str = "") -> None:
    """--family (required when `default` is None) and --base-model."""
    shown = " (required)" if default is None else f" (default: {default})"
    p.add_argument("--family", type=family_name, choices=FAMILY_CHOICES, default=default, required=default is None,
                   metavar="FAMILY", help=FAMILY_HELP + extra_help + shown)
    p.add_argument("--base-model", metavar="NAME", help=BASE_MODEL_HELP)


def checkpoint_of(args: argparse.Namespace) -> Tuple[str, str]:
    """(family, base model) from --family and --base-model: a shortcut is SDXL with its base model, a base
    model must be of the family."""
    from .errors import OrchestratorError
    from .library.base_models import family_of, normalise
    from .selection.index import checkpoint_base

    family = args.family
    shortcut = BASE_MODEL_SHORTCUTS.get(family)
    given = normalise(args.base_model) if getattr(args, "base_model", None) else None
    if shortcut:
        if given and given != shortcut:
            raise OrchestratorError(f"--family {family} means the base model {shortcut}, not {given!r}",
                                    hint=f"use --family {SHORTCUT_FAMILY} --base-model NAME, or leave --base-model out")
        family = SHORTCUT_FAMILY
    base = given or shortcut or checkpoint_base(family, None)
    if family_of(base) != family:
        raise OrchestratorError(f"base model {base!r} is not of the {family} family",
                                hint="give a --base-model of that family, or leave it out")
    return family, base
