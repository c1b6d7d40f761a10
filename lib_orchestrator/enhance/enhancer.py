"""The pipeline's enhancement step: settings in, a callable that enhances one image's prompt from its
seed. It keeps what lasts between images: the circuit breaker, the answer cache and the model name.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import requests

from ..errors import OrchestratorError
from .breaker import Breaker
from .cache import AnswerCache, answer_key
from .client import PRESETS, LlmError, Server, chat, chat_models, list_models, server_url
from .enhance import Enhanced, enhance
from .protect import Protected
from .templates import SCHEMA_VERSION, Template, genre_card, load_template, template_for


@dataclass(frozen=True)
class EnhanceOptions:
    url: str = PRESETS["lmstudio"]  # an address, or lmstudio, ollama, llamacpp
    model: str = ""  # "" = the first chat model the server lists
    template: str = "auto"  # a template name, or "auto": the checkpoint's family decides
    genre: str = ""  # a genre card's name, or the card's text itself
    temperature: Optional[float] = None  # None: the template's
    timeout: float = 60.0  # for the answer; connecting gives up after 3 s
    templates_dir: str = ""  # the user's templates, replacing shipped ones of the same name
    api_key: Optional[str] = field(default=None, repr=False)

    def server(self) -> Server:
        return Server(server_url(self.url), (self.api_key or "").strip() or None, read_timeout=self.timeout)


class Enhancer:
    def __init__(self, options: EnhanceOptions, cache: Optional[AnswerCache] = None,
                 breaker: Optional[Breaker] = None, session: Optional[requests.Session] = None) -> None:
        self.options = options
        self.server = options.server()
        self.cache = cache if cache is not None else AnswerCache()
        self.breaker = breaker if breaker is not None else Breaker()
        self.session = session
        self._model = options.model
        self.answered_by = options.model  # the model of the last answer, for the record
        self._templates: Dict[str, Tuple[Template, str]] = {}

    def __call__(self, prompt: str, seed: int, family: str = "sdxl", base_model: Optional[str] = None,
                 embeddings: Iterable[str] = ()) -> Enhanced:
        """The enhanced prompt, or the original with the reason: never raises."""
        try:
            return self._enhance(prompt, seed, family, base_model, embeddings)
        except OrchestratorError as exc:  # the reason goes into infotexts: a file's name, not its folder
            where = f"{os.path.basename(exc.location.source)}:{exc.location.line}: " if exc.location else ""
            return Enhanced(prompt, prompt, "fallback", f"{where}{exc.message}")
        except Exception as exc:  # noqa: BLE001 (a generation must never fail for its enhancement)
            return Enhanced(prompt, prompt, "fallback", f"unexpected {type(exc).__name__} in the LLM step")

    def _enhance(self, prompt: str, seed: int, family: str, base_model: Optional[str],
                 embeddings: Iterable[str]) -> Enhanced:
        template, card = self._template(family, base_model)
        temperature = template.temperature if self.options.temperature is None else self.options.temperature
        fresh: List[Tuple[str, str]] = []  # (key, answer) asked now: cached only once the answer proves usable

        def ask(protected: Protected) -> str:
            messages = template.messages(protected.text, card, protected.inline)
            answer, key, cached = self._answer(messages, template.schema, seed, temperature, template.top_p,
                                               template.max_tokens, template.ident)
            if not cached:
                fresh.append((key, answer))
            return template.text_of(answer)

        result = enhance(prompt, ask, embeddings, template.budget, template.prefix, template.form == "prose")
        if result.status == "enhanced":
            for key, answer in fresh:
                self.cache.put(key, answer)
        return replace(result, model=self.answered_by, template=template.ident)

    def chat(self, messages: List[Dict[str, str]], schema: Dict[str, Any], seed: int, temperature: float = 0.7,
             max_tokens: int = 800, label: str = "", usable: Callable[[str], bool] = lambda answer: True) -> str:
        """One structured call for other steps (a story's beats), through the same cache and breaker;
        an answer is cached only when `usable` says so. Raises LlmError."""
        answer, key, cached = self._answer(messages, schema, seed, temperature, 0.9, max_tokens, label)
        if not cached and usable(answer):
            self.cache.put(key, answer)
        return answer

    def _answer(self, messages: List[Dict[str, str]], schema: Dict[str, Any], seed: int, temperature: float,
                top_p: float, max_tokens: int, label: str) -> Tuple[str, str, bool]:
        """(answer, cache key, whether it came from the cache). The cache comes before the breaker: a
        cached answer is given even while a dead server is skipped."""
        def key_for(model: str) -> str:
            return answer_key(schema_version=SCHEMA_VERSION, schema=schema, messages=messages, template=label,
                              model=model, url=self.server.base_url, temperature=temperature, top_p=top_p,
                              max_tokens=max_tokens, seed=llm_seed(seed))

        # with no model named, the one the server offered last time finds a cached answer without asking it
        known = self._model or _LAST_MODEL.get(self.server.base_url, "")
        if known:
            answer = self.cache.get(key_for(known))
            if answer is not None:
                self.answered_by = known
                return answer, key_for(known), True
        model = self.answered_by = self._model or self._call(self._resolve_model)
        key = key_for(model)
        answer = self.cache.get(key) if model != known else None
        if answer is not None:
            return answer, key, True
        return self._call(lambda: chat(self.server, model, messages, llm_seed(seed), temperature, top_p,
                                       max_tokens, schema, self.session)), key, False

    def _call(self, request: Callable[[], str]) -> str:
        """A request to the server, behind the breaker."""
        blocked = self.breaker.blocked()
        if blocked:
            raise LlmError(blocked)
        try:
            result = request()
        except LlmError as exc:
            self.breaker.failed(str(exc))
            raise
        self.breaker.succeeded()
        return result

    def _template(self, family: str, base_model: Optional[str]) -> Tuple[Template, str]:
        name = self.options.template if self.options.template != "auto" else template_for(family, base_model)
        if name not in self._templates:
            folder = self.options.templates_dir or None
            self._templates[name] = (load_template(name, folder), genre_card(self.options.genre, folder))
        return self._templates[name]

    def _resolve_model(self) -> str:
        models = chat_models(list_models(self.server, self.session))
        if not models:
            raise LlmError("the server lists no chat model: load or pull one, or name one in Settings")
        self._model = _LAST_MODEL[self.server.base_url] = models[0]
        return self._model


_LAST_MODEL: Dict[str, str] = {}  # by server: the model it offered first, last time it was asked


def llm_seed(image_seed: int) -> int:
    """The LLM's seed is the image's (Forge's seeds are 32-bit): one image seed, one enhanced prompt."""
    return int(image_seed) % (2**32 - 1)  # 0xFFFFFFFF means "a random seed" to llama.cpp

