"""`python -m lib_orchestrator enhance …`: one prompt through the LLM, as the pipeline does it.

Exit status 0 even when it falls back to the original prompt: `status` says which (jsonl), and the
reason goes to stderr. Bad input (an unknown template, a broken template file) exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Optional, TextIO

from .family_cli import checkpoint_of

if TYPE_CHECKING:  # the client imports requests: only commands that enhance pay for it
    from .enhance.enhancer import Enhancer



def add_enhance_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The server and template options, as `--url` for `enhance` and `--enhance-url` for `compose`."""
    dest = prefix.replace("-", "_")
    p.add_argument(f"--{prefix}model", dest=f"{dest}model", default="", metavar="M",
                   help="the model (default: the first the server lists)")
    p.add_argument(f"--{prefix}genre", dest=f"{dest}genre", default="", metavar="G",
                   help="a genre card's name (noir, cyberpunk, cozy, …) or your own card text (default: none)")
    p.add_argument(f"--{prefix}templates", dest=f"{dest}templates", default="", metavar="DIR",
                   help="your templates folder: its files replace the shipped ones of the same name "
                        "(default: the shipped templates only)")
    p.add_argument(f"--{prefix}timeout", dest=f"{dest}timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the answer (default: 60; a cold model load can take that)")
    # `--cache` is the LoRA library's cache everywhere else: the answers file is `--llm-cache` (compose's
    # `--enhance-cache`).
    p.add_argument(f"--{prefix}cache" if prefix else "--llm-cache", dest=f"{dest}cache", metavar="FILE",
                   help="keep the LLM's answers in this file: the same request is never sent twice (default: none, "
                        "every request is sent)")


def make_enhancer(url: str, args: argparse.Namespace, prefix: str = "",
                  temperature: Optional[float] = None) -> "Enhancer":
    from .enhance import API_KEY_ENV, TEMPLATE_NAMES, AnswerCache, EnhanceOptions, Enhancer, load_template
    from .enhance.templates import genre_card

    def arg(name: str):  # type: ignore[no-untyped-def]
        return getattr(args, prefix + name)

    options = EnhanceOptions(url=url, model=arg("model"), genre=arg("genre"),
                             temperature=temperature, timeout=arg("timeout"),
                             templates_dir=arg("templates"), api_key=os.environ.get(API_KEY_ENV) or None)
    folder = options.templates_dir or None
    for name in TEMPLATE_NAMES:  # a broken template file is bad input: say so now, not per prompt
        load_template(name, folder)
    genre_card(options.genre, folder)
    return Enhancer(options, AnswerCache(arg("cache")))


def run_enhance(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    enhancer = make_enhancer(args.url, args, temperature=args.temperature)
    family, base = checkpoint_of(args)
    result = enhancer(args.prompt, args.seed, family, base)
    if args.format == "jsonl":
        out.write(json.dumps({"prompt": result.prompt, "original": result.original, "status": result.status,
                              "reason": result.reason}, ensure_ascii=False) + "\n")
    else:
        out.write(result.prompt + "\n")
    if result.status != "enhanced":
        err.write(f"{result.status}: {result.reason}\n")
    elif result.reason:
        err.write(f"note: {result.reason}\n")
    return 0
