"""`python -m lib_orchestrator story BIBLE …`: a story bible into scene prompts, one per line (or JSON
lines), and with --out a batch file to run in Forge. Without --url the outline plans the beats."""
from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from .enhance_cli import make_enhancer
from .errors import Location, OrchestratorError
from .family_cli import checkpoint_of


def run_story(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .batches import save_batch
    from .enhance.templates import genre_card, load_template, template_for
    from .story import make_story, parse_bible, story_batch
    from .story.beats import llm_asker

    try:
        with open(args.bible, encoding="utf-8-sig") as f:
            bible = parse_bible(f.read(), args.bible)
    except OSError as exc:
        raise OrchestratorError(f"cannot read the story bible: {exc.strerror}", Location(args.bible, 0, 0)) from None
    except UnicodeDecodeError as exc:
        raise OrchestratorError(f"not UTF-8 text (byte {exc.start})", Location(args.bible, 0, 0),
                                "save the file as UTF-8") from None
    template = load_template(template_for(*checkpoint_of(args)), args.templates or None)
    card = genre_card(bible.genre, args.templates or None)
    ask = None
    if args.url:
        enhancer = make_enhancer(args.url, args)
        ask = llm_asker(enhancer.chat, bible, args.seed, f"story@{template.ident}")

    scenes, note = make_story(bible, args.scenes, args.seed, template, card, ask)
    if note:
        err.write(note + "\n")
    for scene in scenes:
        if args.format == "jsonl":
            beat = scene.beat
            out.write(json.dumps({"index": scene.index, "seed": scene.seed, "prompt": scene.prompt,
                                  "shot": beat.shot, "characters": list(beat.characters), "action": beat.action,
                                  "loras": [{"name": n, "weight": w} for n, w, _ in scene.loras]},
                                 ensure_ascii=False) + "\n")
        else:
            out.write(scene.prompt + "\n")
    if args.out:
        name = os.path.splitext(os.path.basename(args.out))[0]
        save_batch(story_batch(name, bible, scenes, args.seed, negative=args.negative), args.out)
        err.write(f"saved {len(scenes):,} scenes to {args.out}\n")
    return 0
