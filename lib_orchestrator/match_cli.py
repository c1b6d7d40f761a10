"""How a command matches LoRAs to prompts: `--match`, `--embed`, the LLM for `--match llm`; and
`python -m lib_orchestrator library match PROMPT …`, which prints the ranked candidates."""
from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, List, Optional, TextIO

# selection.rules.MATCH_MODES, spelled out: every command builds the parser, and the selection package costs
# start-up time (`library scan` must not pay it); tests/test_cli_conventions.py checks they are the same.
MATCH_MODES = ("keyword", "semantic", "hybrid", "llm")

if TYPE_CHECKING:
    from .selection import LoraIndex, Rules
    from .selection.llm_choice import LlmChooser


def add_match_args(p: argparse.ArgumentParser, llm: bool = True) -> None:
    p.add_argument("--match", choices=MATCH_MODES if llm else MATCH_MODES[:-1], metavar="MODE",
                   help="how LoRAs are matched to the prompt: keyword (words and triggers), semantic (meaning, "
                        "from vectors), hybrid (both)" + (", llm (the LLM chooses among the hybrid candidates)"
                                                          if llm else "") + " (default: the rules' match, else hybrid)")
    p.add_argument("--embed", metavar="EMBEDDER",
                   help="what makes the vectors: builtin (offline, in-process), or an OpenAI-compatible "
                        "embeddings server's address or lmstudio, ollama, llamacpp (default: the rules' embed, "
                        "else builtin)")
    p.add_argument("--embed-model", metavar="M",
                   help="the server's embedding model (default: the rules', else the first it lists with "
                        "'embed' in its name)")
    if not llm:
        return
    p.add_argument("--llm-url", metavar="URL",
                   help="the LLM that chooses LoRAs with --match llm, or lmstudio, ollama, llamacpp "
                        "(default: lmstudio)")
    p.add_argument("--llm-model", default="", metavar="M", help="its model (default: the first chat model listed)")


def match_rules(args: argparse.Namespace, rules: "Rules") -> "Rules":
    """The rules with the command line's --match, --embed and --embed-model over the file's."""
    from dataclasses import replace

    if getattr(args, "match", None):
        rules = replace(rules, match=args.match)
    if getattr(args, "embed", None):
        rules = replace(rules, embed=args.embed)
    if getattr(args, "embed_model", None):
        rules = replace(rules, embed_model=args.embed_model)
    return rules


def with_vectors(index: "LoraIndex", rules: "Rules", cache_path: Optional[str], err: TextIO) -> "LoraIndex":
    """The index with its LoRAs' vectors when the mode uses them (from the library cache; only new or
    changed LoRAs are embedded). An embedder that cannot work leaves keywords, said once on stderr."""
    if rules.match == "keyword":
        return index
    from .embeddings.base import EmbedError
    from .embeddings.remote import embedder_for
    from .library.cache import CacheError, VectorCache
    from .selection.semantic import SemanticIndex

    cache = None
    try:
        embedder = embedder_for(rules.embed or "builtin", rules.embed_model)
        try:
            cache = VectorCache(cache_path) if cache_path else None
        except CacheError:  # the scan has warned about this file already; vectors are only slower without it
            cache = None
        semantic = SemanticIndex.build(index.records, embedder, cache)
    except EmbedError as exc:
        err.write(f"warning: {rules.match} matching uses keywords only: {exc.one_line()}\n")
        return index.with_semantic(None, exc.one_line())
    finally:
        if cache is not None:
            cache.close()
    return index.with_semantic(semantic)


def chooser_for(args: argparse.Namespace, rules: "Rules", answers: Optional[str] = None) -> Optional["LlmChooser"]:
    """The LLM that chooses among candidates, for `--match llm`; None otherwise."""
    if rules.match != "llm":
        return None
    from .enhance import API_KEY_ENV, AnswerCache, EnhanceOptions, Enhancer
    from .selection.llm_choice import LlmChooser

    url = getattr(args, "llm_url", None) or getattr(args, "enhance_url", None) or "lmstudio"
    model = getattr(args, "llm_model", "") or ""
    options = EnhanceOptions(url=url, model=model, api_key=os.environ.get(API_KEY_ENV) or None)
    return LlmChooser(Enhancer(options, AnswerCache(answers)))


def run_match(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .errors import Location, OrchestratorError
    from .family_cli import checkpoint_of
    from .library_cli import cache_for, scan_folder
    from .selection import LoraIndex, Rules, load_rules
    from .selection.match import Candidate, find, ranked

    if not os.path.isdir(args.loras):
        raise OrchestratorError("LoRA folder does not exist", Location(args.loras, 0, 0), "check --loras")
    family, base = checkpoint_of(args)
    rules = match_rules(args, load_rules(args.rules) if args.rules else Rules())
    index = with_vectors(LoraIndex(scan_folder(args, args.loras, err).records), rules, cache_for(args, args.loras),
                         err)
    compat = index.compatible(family, base)
    found = find(index, args.prompt, rules, compat)
    if found.note:
        err.write(f"warning: {found.note}\n")
    rows: List[Candidate] = ranked(found.candidates)
    why = {}
    chooser = chooser_for(args, rules, getattr(args, "llm_cache", None))
    if chooser is not None:
        rows, why = _llm_rows(index, args.prompt, args.seed, rules, rows, chooser, err)
    rows = rows[:args.top]
    if args.format == "jsonl":
        for c in rows:
            record = {"name": c.name, "path": index.records[c.index].path, "score": round(c.score, 4),
                      "reason": c.reason, "terms": list(c.terms), "similarity": c.similarity,
                      "category": index.records[c.index].category, "pickable": c.pickable}
            if c.index in why:
                record["why"] = why[c.index]
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        out.write("no LoRA matches this prompt on this checkpoint\n")
        return 0
    width = max(len(c.name) for c in rows)
    for k, c in enumerate(rows, 1):
        evidence = ", ".join(c.terms) if c.terms else (f"similarity {c.similarity:.3f}" if c.similarity is not None
                                                       else "")
        if c.index in why:
            evidence = f"{evidence}; {why[c.index]}" if evidence else why[c.index]
        if not c.pickable:
            evidence += " (under the bar to be drawn: only the LLM may choose it)"
        out.write(f"{k:>3}  {c.name:<{width}}  {c.reason:<8}  {c.score:>8.3f}  "
                  f"{index.records[c.index].category:<10}  {evidence}\n")
    return 0


def _llm_rows(index: "LoraIndex", prompt: str, seed: int, rules: "Rules", rows: list, chooser: "LlmChooser",
              err: TextIO) -> tuple:
    """The LLM's choice first (in its order, reason llm), then the other candidates as ranked."""
    from .selection.pick import LLM_NOTE, llm_chosen

    triggers = [c for c in rows if c.reason == "trigger"]
    offered = [c for c in rows if c.reason != "trigger"][:rules.llm_candidates]
    chosen, error = llm_chosen(index, prompt, seed, offered, chooser)
    if error is not None:
        err.write(f"warning: {LLM_NOTE} fell back to hybrid candidates: {error}\n")
        return rows, {}
    taken = {c.index for c in triggers} | {c.index for c, _ in chosen}
    return triggers + [c for c, _ in chosen] + [c for c in rows if c.index not in taken], \
        {c.index: why for c, why in chosen}
