"""The rules LoRA picking follows: sensible defaults, or a YAML file checked with clear errors."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

from ..errors import Location, OrchestratorError, yaml_error
from ..library.categories import CATEGORIES


class RulesError(OrchestratorError):
    """A rules file that cannot be used."""


@dataclass(frozen=True)
class CategoryRule:
    min: int = 0
    max: int = 2
    weight: float = 1.0  # how likely a fallback pick comes from this category
    lora_weight: float = 0.8  # the LoRA weight when the LoRA has no preferred weight
    weight_range: Optional[Tuple[float, float]] = None  # sliders: a weight drawn from this range


DEFAULT_CATEGORIES: Dict[str, CategoryRule] = {
    "style": CategoryRule(max=1, weight=3.0, lora_weight=0.8),
    "character": CategoryRule(max=2, weight=3.0, lora_weight=0.9),
    "concept": CategoryRule(max=2, weight=2.0, lora_weight=0.7),
    "clothing": CategoryRule(max=2, weight=1.5, lora_weight=0.7),
    "pose": CategoryRule(max=1, weight=1.0, lora_weight=0.7),
    "background": CategoryRule(max=1, weight=1.0, lora_weight=0.6),
    "detailer": CategoryRule(max=1, weight=0.5, lora_weight=0.5),
    "slider": CategoryRule(max=1, weight=0.3, lora_weight=1.0, weight_range=(-1.0, 1.0)),
    "other": CategoryRule(max=2, weight=1.0, lora_weight=0.8),
}

MATCH_MODES = ("keyword", "semantic", "hybrid", "llm")
# Immediate variables `${v=!…}`: drawn from each image's seed, or once for the whole batch (wildcards/batch_vars.py)
VARIABLE_SCOPES = ("image", "batch")
# With nothing matched, a fallback may only add what leaves the prompt's subject alone: a look, a detailer, an
# idea. A character, an outfit or a pose drawn at random changes who or what the image is of.
NEUTRAL_CATEGORIES = ("style", "concept", "detailer")


@dataclass(frozen=True)
class Rules:
    min_total: int = 1
    max_total: int = 6
    temperature: float = 0.25  # 0: the best match only; large: uniform among matches
    min_score: float = 2.0  # a match below this is no match
    min_relative_score: float = 0.25  # nor is one below this share of the best match
    fallback: bool = True  # nothing matched: pick from the compatible pool by category weights
    fallback_categories: Tuple[str, ...] = NEUTRAL_CATEGORIES  # the only categories a fallback draws from
    detailer_probability: float = 0.3
    jitter: float = 0.0  # each weight moves by up to ± this
    categories: Dict[str, CategoryRule] = field(default_factory=lambda: dict(DEFAULT_CATEGORIES))
    conflicts: Tuple[Tuple[str, ...], ...] = (("style",),)  # at most one LoRA from each group
    pinned: Tuple[str, ...] = ()
    blocked: Tuple[str, ...] = ()
    match: str = "hybrid"  # keyword | semantic | hybrid | llm (hybrid and llm use keywords alone without vectors)
    # By similarity alone a LoRA is a candidate when the prompt's best similarity stands at least `min` above the
    # library's median and the LoRA reaches `relative` of the way from the median to the best; one of the
    # `strict` categories (they change what the image shows) is drawn only over the `strict_*` bar.
    semantic_min: float = 0.1
    semantic_relative: float = 0.25
    semantic_strict: Tuple[str, ...] = ("clothing", "pose", "background", "slider", "other")
    semantic_strict_min: float = 0.2
    semantic_strict_relative: float = 0.75
    semantic_candidates: int = 10  # at most this many LoRAs come in by similarity alone
    llm_candidates: int = 12  # how many ranked candidates the LLM chooses from
    embed: str = ""  # builtin, or an embeddings server's address ("": the host's setting, else builtin)
    embed_model: str = ""  # the server's embedding model ("": the first it lists with "embed" in its name)
    # How much the user's ratings move a drawn LoRA's chance (0: not at all, today's picks exactly; 1: a LoRA a star
    # better than average is e^2 = 7.4 times as likely). history/effect.py's feedback_factor turns it into a factor.
    feedback: float = 0.25
    variables: str = ""  # image | batch ("": the host's setting, else image): see variable_scope()

    def variable_scope(self, setting: Any = "") -> str:
        """Whether immediate variables are drawn per image or per batch: the rules file's `variables` when it
        sets one, else the host's setting (Forge's Settings) when that is one of VARIABLE_SCOPES, else image."""
        if self.variables:
            return self.variables
        setting = setting.strip().lower() if isinstance(setting, str) else ""
        return setting if setting in VARIABLE_SCOPES else "image"

    def category(self, name: str) -> CategoryRule:
        return self.categories.get(name, self.categories.get("other", CategoryRule()))


# -- loading ----------------------------------------------------------------------------------------
_TOP = {"count", "temperature", "min_score", "min_relative_score", "fallback", "detailer", "jitter", "categories",
        "conflicts", "pinned", "blocked", "match", "semantic", "llm", "embed", "feedback", "variables"}
_CATEGORY_KEYS = {"min", "max", "weight", "lora_weight", "weight_range"}


MAX_BYTES = 2**20  # a rules file is a few lines: anything near this is not one


def load_rules(path: str, base: Optional[Rules] = None) -> Rules:
    """Rules from a YAML file, over `base` (default: the built-in rules; Forge's Settings give their match
    mode there); anything wrong raises RulesError with file, line and column (never another error: the
    file is the user's, or anyone's, and Forge's processing must not fail on it)."""
    import yaml

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RulesError(f"cannot read rules file: {reason}", Location(path, 0, 0)) from None
    if len(raw) > MAX_BYTES:
        raise RulesError(f"the rules file is larger than {MAX_BYTES // 2**20} MiB", Location(path, 0, 0),
                         "a rules file is a few lines of YAML: is this the right file?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError(f"not UTF-8 text (byte {exc.start})", Location(path, 0, 0), "save the file as UTF-8") \
            from None
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise yaml_error(exc, path, "fix the YAML syntax", RulesError) from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing
        raise RulesError("the rules file is nested too deeply", Location(path, 1, 1),
                         "a rules file is a few keys, each a value, list or mapping") from None
    if node is None:
        return base or Rules()
    return _Reader(path).rules(node, base or Rules())


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Any, message: str, hint: str = "") -> RulesError:
        mark = node.start_mark
        return RulesError(message, Location(self.path, mark.line + 1, mark.column + 1), hint)

    def mapping(self, node: Any, allowed: set, what: str) -> Dict[str, Any]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):  # `? [a]: 1` makes a list a key
                raise self.fail(key, f"a key in {what} must be a name", f"known keys: {', '.join(sorted(allowed))}")
            if key.value not in allowed:
                raise self.fail(key, f"unknown key {key.value!r} in {what}",
                                f"known keys: {', '.join(sorted(allowed))}")
            out[key.value] = value
        return out

    def number(self, node: Any, what: str, lo: float = float("-inf"), hi: float = float("inf")) -> float:
        try:
            value = float(node.value)
        except (TypeError, ValueError, AttributeError):
            raise self.fail(node, f"{what} must be a number") from None
        if not math.isfinite(value):
            raise self.fail(node, f"{what} must be a finite number, not {node.value}")
        if not lo <= value <= hi:
            raise self.fail(node, f"{what} must be between {lo:g} and {hi:g}, not {value:g}")
        return value

    def integer(self, node: Any, what: str, lo: int = 0, hi: int = 100) -> int:
        value = self.number(node, what, lo, hi)
        if value != int(value):
            raise self.fail(node, f"{what} must be a whole number")
        return int(value)

    def names(self, node: Any, what: str) -> Tuple[str, ...]:
        import yaml

        if not isinstance(node, yaml.SequenceNode) or not all(isinstance(n, yaml.ScalarNode) for n in node.value):
            raise self.fail(node, f"{what} must be a list of names")
        return tuple(str(n.value) for n in node.value)

    def rules(self, node: Any, base: Rules) -> Rules:
        import yaml

        top = self.mapping(node, _TOP, "the rules")
        rules = base
        if "count" in top:
            count = self.mapping(top["count"], {"min", "max"}, "count")
            lo = self.integer(count["min"], "count.min") if "min" in count else rules.min_total
            hi = self.integer(count["max"], "count.max", 0, 20) if "max" in count else rules.max_total
            if lo > hi:
                raise self.fail(top["count"], f"count.min ({lo}) is above count.max ({hi})")
            rules = replace(rules, min_total=lo, max_total=hi)
        if "temperature" in top:
            rules = replace(rules, temperature=self.number(top["temperature"], "temperature", 0, 1000))
        if "min_score" in top:
            rules = replace(rules, min_score=self.number(top["min_score"], "min_score", 0))
        if "min_relative_score" in top:
            rules = replace(rules, min_relative_score=self.number(top["min_relative_score"], "min_relative_score",
                                                                  0, 1))
        if "fallback" in top:
            node = top["fallback"]
            if isinstance(node, yaml.SequenceNode):  # the categories a fallback may draw from
                names = self.categories(node, "fallback")
                rules = replace(rules, fallback=bool(names), fallback_categories=names)
            elif node.value not in ("true", "false", "True", "False", "yes", "no"):
                raise self.fail(node, "fallback must be true, false or a list of categories",
                                f"e.g. [{', '.join(NEUTRAL_CATEGORIES)}, character]")
            else:
                rules = replace(rules, fallback=node.value in ("true", "True", "yes"))
        if "detailer" in top:
            detailer = self.mapping(top["detailer"], {"probability"}, "detailer")
            if "probability" in detailer:
                rules = replace(rules, detailer_probability=self.number(detailer["probability"],
                                                                        "detailer.probability", 0, 1))
        if "jitter" in top:
            rules = replace(rules, jitter=self.number(top["jitter"], "jitter", 0, 2))
        if "categories" in top:
            cats = dict(rules.categories)
            for key, value in self.mapping(top["categories"], set(CATEGORIES), "categories").items():
                cats[key] = self.category(value, key, cats.get(key, CategoryRule()))
            rules = replace(rules, categories=cats)
        if "conflicts" in top:
            groups = top["conflicts"]
            if not isinstance(groups, yaml.SequenceNode):
                raise self.fail(groups, "conflicts must be a list of groups, e.g. [[style], [pose, concept]]")
            rules = replace(rules, conflicts=tuple(self.names(g, "a conflict group") for g in groups.value))
        for key in ("pinned", "blocked"):
            if key in top:
                rules = replace(rules, **{key: self.names(top[key], key)})
        if "match" in top:
            rules = replace(rules, match=self.choice(top["match"], "match", MATCH_MODES))
        if "variables" in top:
            rules = replace(rules, variables=self.choice(top["variables"], "variables", VARIABLE_SCOPES,
                                                         "image: each image draws its own; batch: one value for "
                                                         "every image of a generation"))
        if "semantic" in top:
            semantic = self.mapping(top["semantic"], {"min", "relative", "candidates", "strict", "strict_min",
                                                      "strict_relative"}, "semantic")
            for key in ("min", "strict_min"):
                if key in semantic:
                    rules = replace(rules, **{f"semantic_{key}": self.number(semantic[key], f"semantic.{key}", 0, 2)})
            for key in ("relative", "strict_relative"):
                if key in semantic:
                    rules = replace(rules, **{f"semantic_{key}": self.number(semantic[key], f"semantic.{key}", 0, 1)})
            if "strict" in semantic:
                rules = replace(rules, semantic_strict=self.categories(semantic["strict"], "semantic.strict"))
            if "candidates" in semantic:
                rules = replace(rules, semantic_candidates=self.integer(semantic["candidates"], "semantic.candidates",
                                                                        0, 100))
        if "llm" in top:
            llm = self.mapping(top["llm"], {"candidates"}, "llm")
            if "candidates" in llm:
                rules = replace(rules, llm_candidates=self.integer(llm["candidates"], "llm.candidates", 1, 50))
        if "feedback" in top:
            rules = replace(rules, feedback=self.feedback(top["feedback"]))
        if "embed" in top:
            embed = self.mapping(top["embed"], {"server", "model"}, "embed")
            if "server" in embed:
                rules = replace(rules, embed=self.text(embed["server"], "embed.server"))
            if "model" in embed:
                rules = replace(rules, embed_model=self.text(embed["model"], "embed.model"))
        return rules

    def feedback(self, node: Any) -> float:
        """A strength 0…1; `off`/`false` is 0, `on`/`true` the default."""
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.value.lower() in ("off", "false", "no", "on", "true", "yes"):
            return Rules.feedback if node.value.lower() in ("on", "true", "yes") else 0.0
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, "feedback must be a strength from 0 to 1, or off", "e.g. feedback: 0.25")
        return self.number(node, "feedback", 0, 1)

    def categories(self, node: Any, what: str) -> Tuple[str, ...]:
        names = self.names(node, what)
        unknown = [n for n in names if n not in CATEGORIES]
        if unknown:
            raise self.fail(node, f"unknown category {unknown[0]!r} in {what}",
                            f"known categories: {', '.join(CATEGORIES)}")
        return names

    def choice(self, node: Any, what: str, allowed: Tuple[str, ...], hint: str = "") -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or node.value not in allowed:
            raise self.fail(node, f"{what} must be one of {', '.join(allowed)}", hint)
        return str(node.value)

    def text(self, node: Any, what: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return str(node.value).strip()

    def category(self, node: Any, name: str, base: CategoryRule) -> CategoryRule:
        import yaml

        keys = self.mapping(node, _CATEGORY_KEYS, f"category {name}")
        rule = base
        if "min" in keys:
            rule = replace(rule, min=self.integer(keys["min"], f"{name}.min"))
        if "max" in keys:
            rule = replace(rule, max=self.integer(keys["max"], f"{name}.max"))
        if rule.min > rule.max:
            raise self.fail(node, f"{name}.min ({rule.min}) is above {name}.max ({rule.max})")
        if "weight" in keys:
            rule = replace(rule, weight=self.number(keys["weight"], f"{name}.weight", 0))
        if "lora_weight" in keys:
            rule = replace(rule, lora_weight=self.number(keys["lora_weight"], f"{name}.lora_weight", -10, 10))
        if "weight_range" in keys:
            wr = keys["weight_range"]
            if not isinstance(wr, yaml.SequenceNode) or len(wr.value) != 2:
                raise self.fail(wr, f"{name}.weight_range must be [low, high]")
            lo = self.number(wr.value[0], f"{name}.weight_range low", -10, 10)
            hi = self.number(wr.value[1], f"{name}.weight_range high", -10, 10)
            if lo > hi:
                raise self.fail(wr, f"{name}.weight_range low ({lo:g}) is above high ({hi:g})")
            rule = replace(rule, weight_range=(lo, hi))
        return rule

