"""Augmentation policies: an ordered chain of augmenters, N copies per record, provenance.

A spec string is steps joined by '+', then optional policy options after commas::

    eda_swap:0.3
    eda_synonym:0.1+eda_swap:0.1,copies=4
    contextual(mode=tinybert,top_k=15):0.4,copies=20,max_rounds=2

A step is ``NAME[(key=value,...)][:AUG_P]``. AUG_P sets the step's fraction: ``aug_p`` for EDA
operations and contextual sample mode, ``p_t`` for contextual TinyBERT mode, all four alphas for
``eda``; back-translation takes none. A YAML file or a dict holds the same:
``{"steps": [{"name": "eda_swap", "aug_p": 0.3}, "contextual:0.3"], "copies": 4}``.

For every record, candidate copies are made (both sides of a sentence pair go through every
step), copies equal to the original (no-ops) or to an earlier copy are dropped, and rounds of new
candidates are tried (up to ``max_rounds``) until ``copies`` unique copies exist; what is still
missing is reported as ``shortfall``. Every random choice is seeded by
(base seed, record id, policy name, candidate index, step, side): output never depends on batch
composition, order or process.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from distiller.common.errors import UsageError
from distiller.common.seeding import stable_hash

from distiller.taskdata.yamlfile import load_yaml_file

from .base import check_positive
from .registry import config_class, create_from_config
from .runner import run_policy

__all__ = ["AugmentationPolicy", "parse_step", "POLICY_VERSION"]

log = logging.getLogger(__name__)
POLICY_VERSION = "policy-1"
_STEP_RE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(?:\((.*)\))?\s*(?::\s*([^\s:()]+))?\s*$")


def _value(text: str) -> Any:
    """'0.3' -> 0.3, '4' -> 4, 'true' -> True, 'none' -> None, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip()


def _split_top(text: str, sep: str) -> List[str]:
    """Split on `sep` outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_step(text: str) -> Tuple[str, Dict[str, Any]]:
    """'contextual(mode=tinybert):0.4' -> ('contextual', {'mode': 'tinybert', 'aug_p': 0.4})."""
    m = _STEP_RE.match(text)
    if not m:
        raise UsageError(f"cannot parse augmentation step {text!r}: expected NAME, NAME:AUG_P or "
                         "NAME(key=value,...):AUG_P, e.g. 'eda_swap:0.3'")
    name, inner, p = m.groups()
    params: Dict[str, Any] = {}
    for item in _split_top(inner or "", ","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UsageError(f"step {text!r}: parameter {item!r} is not key=value")
        key, val = item.split("=", 1)
        params[key.strip()] = _value(val)
    if p is not None:
        aug_p = _value(p)
        if not isinstance(aug_p, (int, float)) or isinstance(aug_p, bool):
            raise UsageError(f"step {text!r}: aug_p must be a number, got {p!r}")
        params["aug_p"] = aug_p
    return name, params


def _resolve(name: str, params: Dict[str, Any], defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """Map the step-level aug_p onto the augmenter's own parameter and fill model defaults."""
    params = dict(params)
    aug_p = params.pop("aug_p", None)
    if name == "contextual":
        if "model" not in params and defaults.get("mlm_model"):
            params["model"] = defaults["mlm_model"]
        if aug_p is not None:
            params["p_t" if params.get("mode") == "tinybert" else "aug_p"] = aug_p
    elif name == "backtranslate":
        for key, default in zip(("forward_model", "backward_model"), defaults.get("bt_models")
                                or (None, None)):
            if key not in params and default:
                params[key] = default
        if aug_p is not None:
            raise UsageError(f"backtranslate rewrites whole sentences and takes no aug_p, got "
                             f"{aug_p!r}; write the step as 'backtranslate'")
    elif name == "eda":
        if aug_p is not None:
            for key in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd"):
                params.setdefault(key, aug_p)
    elif aug_p is not None:
        params["aug_p"] = aug_p
    return params


@dataclasses.dataclass(frozen=True)
class AugmentationPolicy:
    """steps: ((augmenter name, ((param, value), ...)), ...) in chain order."""

    steps: Tuple[Tuple[str, Tuple[Tuple[str, Any], ...]], ...]
    copies: int = 1
    max_rounds: int = 3

    def __post_init__(self) -> None:
        if not self.steps:
            raise UsageError("an augmentation policy needs at least one step, got none")
        check_positive("AugmentationPolicy", "copies", self.copies)
        check_positive("AugmentationPolicy", "max_rounds", self.max_rounds)
        configs = []
        for name, params in self.steps:
            cls = config_class(name)
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(dict(params)) - fields)
            if unknown:
                raise UsageError(f"augmenter {name!r} has no parameter(s) {unknown}; its "
                                 f"parameters are {sorted(fields)}")
            configs.append(cls(**dict(params)))
        object.__setattr__(self, "_configs", tuple(configs))
        object.__setattr__(self, "_augmenters", None)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: Union[str, Mapping[str, Any], "AugmentationPolicy"], *,
                  mlm_model: Optional[str] = None,
                  bt_models: Optional[Sequence[str]] = None) -> "AugmentationPolicy":
        """From a spec string, a YAML file path or a dict (see the module docstring).
        mlm_model / bt_models fill in models the spec does not name."""
        if isinstance(spec, AugmentationPolicy):
            return spec
        defaults = {"mlm_model": mlm_model, "bt_models": tuple(bt_models) if bt_models else None}
        if isinstance(spec, str) and (spec.endswith((".yaml", ".yml", ".json"))
                                      or os.path.isfile(spec)):
            if not os.path.isfile(spec):
                raise FileNotFoundError(f"policy file {spec!r} does not exist")
            spec = load_yaml_file(spec, "policy file")
            if not isinstance(spec, Mapping):
                raise UsageError(f"policy file must hold a mapping with 'steps', got {spec!r}")
        if isinstance(spec, str):
            parts = _split_top(spec.strip(), ",")
            steps = [parse_step(s) for s in _split_top(parts[0], "+")]
            options = {}
            for opt in parts[1:]:
                if "=" not in opt:
                    raise UsageError(f"policy option {opt!r} in {spec!r} is not key=value "
                                     "(e.g. copies=4)")
                key, val = opt.split("=", 1)
                options[key.strip()] = _value(val)
        elif isinstance(spec, Mapping):
            options = {k: v for k, v in spec.items() if k != "steps"}
            steps = []
            for item in spec.get("steps") or []:
                if isinstance(item, str):
                    steps.append(parse_step(item))
                elif isinstance(item, Mapping) and "name" in item:
                    steps.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
                else:
                    raise UsageError(f"policy step {item!r} must be a string like 'eda_swap:0.3' "
                                     "or a mapping with a 'name'")
        else:
            raise UsageError(f"policy spec must be a string, a YAML path or a dict, got "
                             f"{type(spec).__name__}")
        unknown = sorted(set(options) - {"copies", "max_rounds"})
        if unknown:
            raise UsageError(f"unknown policy option(s) {unknown}: known are copies, max_rounds")
        resolved = tuple((name, tuple(sorted(_resolve(name, params, defaults).items())))
                         for name, params in steps)
        return cls(steps=resolved, **options)

    # ---- identity -----------------------------------------------------------------------
    def _step_identities(self) -> List[list]:
        """Per step [name, config, VERSION] and, for a step whose models are local directories,
        their files' digest (`identity()`: a model rebuilt at the same path is another model)."""
        out = []
        for (name, _), cfg in zip(self.steps, self._configs):
            aug = create_from_config(name, cfg)
            identity = getattr(aug, "identity", lambda: None)()
            out.append([name, dataclasses.asdict(cfg), aug.VERSION]
                       + ([identity] if identity else []))
        return out

    @property
    def fingerprint(self) -> str:
        """Changes whenever a step's config, an augmenter VERSION, a local model's files or the
        policy logic changes."""
        payload = json.dumps({
            "policy": POLICY_VERSION, "copies": self.copies, "max_rounds": self.max_rounds,
            "steps": self._step_identities()}, sort_keys=True, default=str)
        return stable_hash(payload)

    @property
    def name(self) -> str:
        """Short stable name for ids and file names, e.g. 'eda_swap-p0.3-n1-1a2b3c4d'."""
        parts = []
        for (step, params), cfg in zip(self.steps, self._configs):
            frac = dict(params).get("p_t" if getattr(cfg, "mode", "") == "tinybert" else "aug_p",
                        dict(params).get("alpha_sr"))
            parts.append(step + (f"-p{frac:g}" if isinstance(frac, (int, float)) else ""))
        return f"{'+'.join(parts)}-n{self.copies}-{self.fingerprint[:8]}"

    def __getstate__(self):  # pickles without loaded models (Beam ships the policy to workers)
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state):
        for key, value in state.items():
            object.__setattr__(self, key, value)
        self.__post_init__()

    # ---- running ------------------------------------------------------------------------
    def augmenters(self) -> list:
        if self._augmenters is None:
            object.__setattr__(self, "_augmenters", [
                create_from_config(name, cfg) for (name, _), cfg in
                zip(self.steps, self._configs)])
        return self._augmenters

    def check_models(self) -> "AugmentationPolicy":
        """Fail now, in the calling process, when a step's models are missing (a build's workers
        would otherwise each fail on their first batch): every augmenter with a `check()`."""
        for aug in self.augmenters():
            check = getattr(aug, "check", None)
            if check is not None:
                check()
        return self

    def load(self) -> "AugmentationPolicy":
        """Load every step's models once per process (idempotent; safe in Beam setup())."""
        for aug in self.augmenters():
            aug.load()
        return self

    def augment_records(self, records: Sequence[Dict[str, Any]], base_seed: int, *,
                        fields: Sequence[str] = ("text_a", "text_b")
                        ) -> Tuple[List[Dict[str, Any]], Dict[str, int]]:
        """Augmented copies of records (originals not included) and stats; see the module doc.
        fields: the texts the chain changes (a task's augment_fields); the others, and every
        other field of a record (labels, answers), are carried over unchanged."""
        return run_policy(self, records, base_seed, fields=fields)
