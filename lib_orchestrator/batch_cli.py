"""`python -m lib_orchestrator batch plan|show`."""
from __future__ import annotations

import argparse
import os
from typing import TextIO

from .batches import RunState, load_batch, plan_batch, save_batch
from .errors import Location, OrchestratorError
from .family_cli import checkpoint_of
from .history_cli import feedback_scores
from .library_cli import cache_for, scan_folder
from .match_cli import match_rules, with_vectors
from .selection import LoraIndex, Rules, load_rules


def run_batch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.batch_command == "dispatch":
        from .dispatch_cli import run_dispatch

        return run_dispatch(args, out, err)
    if args.batch_command == "show":
        return _show(args, out)
    from .cli import _engine, _template

    template, _source = _template(args)
    index = None
    family, base = checkpoint_of(args)
    rules = match_rules(args, load_rules(args.rules) if args.rules else Rules())
    if args.loras:
        if not os.path.isdir(args.loras):
            raise OrchestratorError("LoRA folder does not exist", Location(args.loras, 0, 0), "check --loras")
        index = with_vectors(LoraIndex(scan_folder(args, args.loras, err).records), rules,
                             cache_for(args, args.loras), err).with_feedback(feedback_scores(args.history))
    name = os.path.splitext(os.path.basename(args.out))[0]
    batch = plan_batch(name, template, args.count, args.seed, _engine(args), index, rules, family, base,
                       negative=args.negative, loras=index is not None)
    save_batch(batch, args.out)
    out.write(f"wrote {len(batch.images):,} images to {args.out}\n")
    return 0


def _show(args: argparse.Namespace, out: TextIO) -> int:
    from .dispatch_cli import queue_jobs, show_lines

    batch = load_batch(args.file)
    state = RunState(args.file)
    done = state.done()
    jobs = queue_jobs(batch, args.file, args.queue) or {}
    finished = sum(1 for image in batch.images if image.index in done or
                   (image.index in jobs and jobs[image.index].status == "done"))
    total = len(batch.images)
    out.write(f"{batch.name}: {total:,} images, seed {batch.seed}; {finished:,}/{total:,} images done"
              + (", finished" if finished >= total else "") + "\n")
    if batch.template:
        out.write(f"template: {batch.template}\n")
    for line in show_lines(batch, jobs, done):
        out.write(line + "\n")
    return 0
