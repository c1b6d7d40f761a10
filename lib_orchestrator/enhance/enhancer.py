"""The pipeline's enhancement step: settings in, a callable that enhances one image's prompt from its
seed. It keeps what lasts between images: the circuit breaker, the answer cache and the model name.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Optional, Tuple

import requests

from ..errors import OrchestratorError
from .breaker import Breaker
from .cache import AnswerCache, answer_key
from .client import PRESETS, LlmError, Server, chat, list_models
from .enhance import Enhanced, enhance
from .templates import SCHEMA_VERSION, Template, genre_card, load_template, template_for


@dataclass(frozen=True)
class EnhanceOptions:
    url: str = PRESETS["lmstudio"]
    model: str = ""  # "" = the first model the server lists
    template: str = "auto"  # a template name, or "auto": the checkpoint's family decides
    genre: str = ""  # a genre card's name, or the card's text itself
    temperature: Optional[float] = None  # None: the template's
    timeout: float = 60.0  # for the answer; connecting gives up after 3 s
    templates_dir: str = ""  # the user's templates, replacing shipped ones of the same name
    api_key: Optional[str] = field(default=None, repr=False)

    def server(self) -> Server:
        return Server(self.url, self.api_key, read_timeout=self.timeout)


class Enhancer:
    def __init__(self, options: EnhanceOptions, cache: Optional[AnswerCache] = None,
                 breaker: Optional[Breaker] = None, session: Optional[requests.Session] = None) -> None:
        self.options = options
        self.server = options.server()
        self.cache = cache if cache is not None else AnswerCache()
        self.breaker = breaker if breaker is not None else Breaker()
        self.session = session
        self._model = options.model
        self._templates: Dict[str, Tuple[Template, str]] = {}

    def __call__(self, prompt: str, seed: int, family: str = "sdxl", base_model: Optional[str] = None,
                 embeddings: Iterable[str] = ()) -> Enhanced:
        """The enhanced prompt, or the original with the reason; never raises for a bad server,
        model, answer or template."""
        try:
            template, card = self._template(family, base_model)
        except OrchestratorError as exc:
            return Enhanced(prompt, prompt, "fallback", exc.one_line())

        def ask(text: str) -> str:
            temperature = template.temperature if self.options.temperature is None else self.options.temperature
            return template.text_of(self._answer(template.messages(text, card), template.schema, seed, temperature,
                                                 template.top_p, template.max_tokens, template.ident))

        result = enhance(prompt, ask, self.breaker, embeddings, template.budget, template.prefix)
        return replace(result, model=self._model, template=template.ident)

    def chat(self, messages: List[Dict[str, str]], schema: Dict[str, Any], seed: int, temperature: float = 0.7,
             max_tokens: int = 800, label: str = "") -> str:
        """One structured call for other steps (a story's beats): cached and behind the same breaker.
        Raises LlmError."""
        blocked = self.breaker.blocked()
        if blocked:
            raise LlmError(blocked)
        try:
            answer = self._answer(messages, schema, seed, temperature, 0.9, max_tokens, label)
        except LlmError as exc:
            self.breaker.failed(str(exc))
            raise
        self.breaker.succeeded()
        return answer

    def _answer(self, messages: List[Dict[str, str]], schema: Dict[str, Any], seed: int, temperature: float,
                top_p: float, max_tokens: int, label: str) -> str:
        model = self._model or self._resolve_model()
        key = answer_key(schema_version=SCHEMA_VERSION, schema=schema, messages=messages, template=label,
                         model=model, url=self.server.base_url, temperature=temperature, top_p=top_p,
                         max_tokens=max_tokens, seed=llm_seed(seed))
        answer = self.cache.get(key)
        if answer is None:
            answer = chat(self.server, model, messages, llm_seed(seed), temperature, top_p, max_tokens, schema,
                          self.session)
            self.cache.put(key, answer)
        return answer

    def _template(self, family: str, base_model: Optional[str]) -> Tuple[Template, str]:
        name = self.options.template if self.options.template != "auto" else template_for(family, base_model)
        if name not in self._templates:
            folder = self.options.templates_dir or None
            self._templates[name] = (load_template(name, folder), genre_card(self.options.genre, folder))
        return self._templates[name]

    def _resolve_model(self) -> str:
        # LM Studio lists its embedding models too: they cannot chat
        models = [m for m in list_models(self.server, self.session) if "embed" not in m.lower()]
        if not models:
            raise LlmError(f"{self.server.base_url} lists no models: load or pull one, or name one")
        self._model = models[0]
        return self._model


def llm_seed(image_seed: int) -> int:
    """The LLM's seed is the image's (Forge's seeds are 32-bit): one image seed, one enhanced prompt."""
    return int(image_seed) % 2**32

