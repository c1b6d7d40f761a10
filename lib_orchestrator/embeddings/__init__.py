"""Embeddings for semantic LoRA matching: one small interface (`Embedder`), the LoRA and prompt texts they
see, an offline built-in embedder (WordLlama's static vectors) and a client for OpenAI-compatible
`/v1/embeddings` servers (LM Studio, Ollama, llama.cpp). docs/embeddings.md says why and what each costs.

The embedders are imported on first use (PEP 562): they import numpy, tokenizers or requests, which code
that only builds texts or names the protocol should not pay for.
"""
from importlib import import_module
from typing import Any

from .base import Embedder, EmbedError
from .texts import lora_text, prompt_text, text_hash

_LAZY = {"BuiltinEmbedder": "builtin", "builtin_embedder": "builtin", "builtin_status": "builtin",
         "RemoteEmbedder": "remote", "embedder_for": "remote"}

__all__ = ["BuiltinEmbedder", "EmbedError", "Embedder", "RemoteEmbedder", "builtin_embedder", "builtin_status",
           "embedder_for", "lora_text", "prompt_text", "text_hash"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_LAZY[name]}", __name__), name)
