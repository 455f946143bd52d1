"""What every augmenter shares: the job it is given, its result, and the checks of its config.

An augmenter is a plain object with ``name``, ``config`` (a frozen dataclass validated in
``__post_init__``), ``VERSION`` (bumped whenever its output for the same input would change),
``load()`` (idempotent; models load once per process), optionally ``check()`` (cheap: raises
now if a model it needs is missing) and ``augment(jobs)`` which returns one
text per job plus counters. Every random choice for a job is drawn from generators seeded by
``job.seed``, so a job's output never depends on the other jobs in the call. Each augmenter
module names its augmenters in ``AUGMENTERS`` ({name: (config class, factory)}), which the
registry (registry.py) collects.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, List, NamedTuple, Tuple

from distiller.common.errors import UsageError

__all__ = ["Job", "check_fraction", "check_positive", "check_choice", "AugmentResult"]


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
