"""The trainer's choices and numeric ranges, declared once: what each named setting may be, its
default and its help. `TrainConfig` (YAML files, ``--set``) validates against this table, the
``distiller train|finetune`` flags take their ``choices=``, range checks and help from it, and
the search space (autodistiller/space.py) checks its factors' values and ranges against it.

    OPTIONS["pred_loss"].values     ("kl", "soft_ce", "mse", "none")
    OPTIONS["mi_alpha"].problem(1.5)  "expected a number in [0, 1]"

Standard library only (and the common floor's declarations, distiller.common.config): the
command line imports it to build its parsers.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

from distiller.common.config import Allowed

__all__ = ["Option", "OPTIONS", "default", "cli_arguments"]


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: a name among `values`, or a number in the range from `low` to `high` (ends
    open where `low_open`/`high_open`; None also allowed where `optional`)."""

    key: str
    default: Any
    help: str
    values: Optional[Tuple[str, ...]] = None
    low: Optional[float] = None
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    @property
    def numeric(self) -> bool:
        return self.values is None

    @property
    def spec(self) -> Allowed:
        """The declaration (distiller.common.config) of what the setting may be: a name among
        `values` or a number in range (as given: a table checks values, the config converts)."""
        return Allowed(kind="number" if self.numeric else "str", choices=self.values,
                       low=self.low, high=self.high, low_open=self.low_open,
                       high_open=self.high_open, optional=self.optional)

    def allowed(self) -> str:
        """What is allowed, as an error message ends: "expected one of [...]"."""
        return self.spec.describe()

    def problem(self, value: Any) -> Optional[str]:
        """None when `value` is allowed, else `allowed()`. Numbers must be real numbers already
        (TrainConfig converts numeric strings first); booleans are not numbers."""
        return self.spec.problem(value)

    def describe(self) -> str:
        """The flag's help: what it does, what it may be and its default."""
        allowed = ("one of " + ", ".join(self.values)) if not self.numeric else \
            self.allowed()[len("expected "):]
        return f"{self.help}; {allowed}; default {self.default}"


_TABLE = (
    Option("mode", "distill", "distill: learn from a teacher cache; finetune: gold labels over "
           "raw text (the teacher, the no-KD baseline)", values=("distill", "finetune")),
    Option("student_init", "pretrained", "how the student starts: the named model as it is, "
           "the teacher cut to some of its layers, or a new model of a changed config",
           values=("pretrained", "truncate", "config")),
    Option("pred_loss", "kl", "prediction-layer loss on the teacher's logits (regression "
           "tasks always use mse)", values=("kl", "soft_ce", "mse", "none")),
    Option("inter_loss", "none", "intermediate objective over the mapped layer pairs",
           values=("none", "ce", "mse", "cosine", "pkd", "att_mse", "att_kl", "mi")),
    Option("mapping", "skip", "which student layer learns from which teacher layer (explicit: "
           "the mapping_pairs given)", values=("skip", "last", "emd", "explicit")),
    Option("critic", "transformer", "the MI-alpha critic: a small transformer over the tokens "
           "or an MLP on [CLS]", values=("transformer", "mlp")),
    Option("batching", "random", "how training rows form batches: random draws, or draws "
           "grouped by length so that a batch pads little (the same rows each epoch, in "
           "batches of near-equal length, in random order; faster on short, varied texts)",
           values=("random", "length")),
    Option("amp", "auto", "mixed precision (auto: bf16 or fp16 on CUDA, off on a CPU)",
           values=("auto", "off", "fp16", "bf16")),
    Option("temperature", 1.0, "tau of the soft targets", low=0.0, low_open=True),
    Option("mi_alpha", 0.9, "MI-alpha's interpolation between its two bounds", low=0.0,
           high=1.0),
    Option("w_kd", 1.0, "weight of the prediction-layer loss", low=0.0),
    Option("w_inter", 1.0, "weight of the intermediate loss", low=0.0),
    Option("w_gold", 0.0, "weight of the gold-label cross-entropy", low=0.0),
    Option("lr", 5e-5, "peak learning rate of AdamW", low=0.0, high=1.0, low_open=True),
    Option("weight_decay", 0.1, "AdamW weight decay (none on biases and LayerNorm)", low=0.0),
    Option("warmup_ratio", 0.1, "share of all steps spent warming the learning rate up",
           low=0.0, high=1.0, high_open=True),
    Option("max_grad_norm", 1.0, "gradient norm clip (student and objective apart; null: no "
           "clipping)", low=0.0, low_open=True, optional=True),
)
OPTIONS: Dict[str, Option] = {o.key: o for o in _TABLE}


def default(key: str) -> Any:
    """The default of `key` (TrainConfig's field defaults read it)."""
    return OPTIONS[key].default


def cli_arguments(key: str) -> Dict[str, Any]:
    """Keyword arguments of `argparse.add_argument` for the flag of `key`: ``choices`` for a
    name, a ``type`` that refuses a number out of range in one line, the help; default None (a
    flag left out leaves the config's value)."""
    option = OPTIONS[key]
    kwargs: Dict[str, Any] = {"dest": key, "default": None, "help": option.describe()}
    if option.numeric:
        kwargs.update(type=_number_in(option), metavar="X")
    else:
        kwargs.update(choices=option.values)
    return kwargs


def _number_in(option: Option):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option.allowed()}, got {text!r}") from None
        problem = option.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text!r}")
        return value
    return parse
