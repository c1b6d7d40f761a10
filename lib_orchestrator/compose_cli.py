"""`python -m lib_orchestrator compose …`: wildcards, then (with --enhance-url) the LLM, then LoRA picks,
then the composed prompts."""
from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from .compose import compose, lora_gated
from .enhance_cli import make_enhancer
from .errors import Location, OrchestratorError
from .family_cli import checkpoint_of
from .history_cli import feedback_scores
from .library_cli import cache_for, scan_folder
from .match_cli import chooser_for, match_rules, with_vectors
from .selection import LoraIndex, Rules, load_rules
from .wildcards.batch_vars import fix_variables


def run_compose(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .cli import _engine, _template

    template, source = _template(args)
    if not os.path.isdir(args.loras):
        raise OrchestratorError("LoRA folder does not exist", Location(args.loras, 0, 0), "check --loras")
    family, base = checkpoint_of(args)
    rules = match_rules(args, load_rules(args.rules) if args.rules else Rules())
    index = with_vectors(LoraIndex(scan_folder(args, args.loras, err).records), rules, cache_for(args, args.loras),
                         err).with_feedback(feedback_scores(args.history))
    engine = lora_gated(_engine(args), index, family, base)
    enhancer = make_enhancer(args.enhance_url, args, "enhance_") if args.enhance_url else None
    chooser = chooser_for(args, rules, args.enhance_cache)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    if rules.variable_scope() == "batch":  # one run is one batch: every prompt reads the first seed's variables
        fixed = fix_variables(engine, template, seed, "random", source)
        template = fixed.text
        for note in fixed.notes:
            err.write(f"warning: {note}\n")
    for k, base_prompt in enumerate(engine.texts(template, "random", seed, args.count, source)):
        enhanced = enhancer(base_prompt, seed + k, family, base) if enhancer else None
        if enhanced is not None:  # before the picks: they match what the LLM wrote
            base_prompt = enhanced.prompt
            if enhanced.status != "enhanced":
                err.write(f"seed {seed + k}: LLM {enhanced.status}: {enhanced.reason}\n")
        composed = compose(template, base_prompt, seed + k, index, rules, family, base, args.negative, chooser)
        if args.format == "jsonl":
            record = composed.to_dict()
            if enhanced is not None:
                record["enhancement"] = {"original": enhanced.original, "status": enhanced.status,
                                         "model": enhanced.model, "template": enhanced.template,
                                         "reason": enhanced.reason}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            out.write(composed.prompt + "\n")
        for warning in composed.warnings:
            err.write(f"seed {seed + k}: warning: {warning}\n")
    for note in engine.warnings:
        err.write(note + "\n")
    return 0
