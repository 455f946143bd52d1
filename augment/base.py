"""What every augmenter shares: the job it is given, its result, and the registry of names.

An augmenter is a plain object with ``name``, ``config`` (a frozen dataclass validated in
``__post_init__``), ``VERSION`` (bumped whenever its output for the same input would change),
``load()`` (idempotent; models load once per process), optionally ``check()`` (cheap: raises
now if a model it needs is missing) and ``augment(jobs)`` which returns one
text per job plus counters. Every random choice for a job is drawn from generators seeded by
``job.seed``, so a job's output never depends on the other jobs in the call.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections import Counter
from typing import Any, Callable, Dict, List, NamedTuple, Tuple, Type

from distiller.common.errors import UsageError

__all__ = ["Job", "register", "create", "create_from_config", "available", "config_class",
           "check_fraction",
           "check_positive", "check_choice", "AugmentResult"]


class Job(NamedTuple):
    """One text to augment. seed: drawn per (base seed, record, chain step, side, copy);
    record_seed: the same for all copies of a record (EDA's copy allocation uses it);
    copy: the candidate copy index; copies: copies requested per record."""

    text: str
    seed: int
    record_seed: int = 0
    copy: int = 0
    copies: int = 1


AugmentResult = Tuple[List[str], Counter]

_REGISTRY: Dict[str, Tuple[type, Callable[[Any], Any]]] = {}


def register(name: str, config_cls: type, factory: Callable[[Any], Any]) -> None:
    """Register an augmenter: `factory(config)` builds it from an instance of `config_cls`."""
    if name in _REGISTRY:
        raise UsageError(f"augmenter name {name!r} is already registered")
    _REGISTRY[name] = (config_cls, factory)


def _ensure_builtin() -> None:
    # Importing the modules registers their augmenters; they import torch lazily.
    from . import backtranslate, eda, mlm  # noqa: F401


def available() -> List[str]:
    """Sorted names of all registered augmenters."""
    _ensure_builtin()
    return sorted(_REGISTRY)


def config_class(name: str) -> Type:
    """The config dataclass of augmenter `name`; ValueError naming close matches if unknown."""
    _ensure_builtin()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown augmenter {name!r}{hint}; known augmenters: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][0]


def create(name: str, **params: Any):
    """Build augmenter `name` from keyword parameters; clear errors for unknown names/params."""
    cls = config_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise UsageError(f"augmenter {name!r} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(fields)}")
    try:
        config = cls(**params)
    except TypeError as exc:  # a required parameter is missing
        raise UsageError(f"augmenter {name!r}: {exc}") from None
    return _REGISTRY[name][1](config)


def create_from_config(name: str, config: Any):
    """Build augmenter `name` from an already validated config instance."""
    cls = config_class(name)
    if not isinstance(config, cls):
        raise UsageError(f"augmenter {name!r} needs a {cls.__name__}, got {type(config).__name__}")
    return _REGISTRY[name][1](config)


def check_fraction(owner: str, field: str, value: Any, *, allow_zero: bool = False) -> None:
    """ValueError unless 0 < value <= 1 (or 0 <= value with allow_zero)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
        (0 <= value <= 1) if allow_zero else (0 < value <= 1))
    if not ok:
        rng = "[0, 1]" if allow_zero else "(0, 1]"
        raise UsageError(f"{owner}.{field} must be a number in {rng}, got {value!r}")


def check_positive(owner: str, field: str, value: Any, *, allow_zero: bool = False,
                   integer: bool = True) -> None:
    """ValueError unless value is a positive (or non-negative) int/number."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and (
        value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{owner}.{field} must be an {what} {bound}, got {value!r}")


def check_choice(owner: str, field: str, value: Any, choices) -> None:
    """ValueError unless value is one of choices."""
    if value not in choices:
        raise UsageError(f"{owner}.{field} must be one of {list(choices)}, got {value!r}")
