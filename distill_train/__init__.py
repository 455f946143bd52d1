"""distill_train: student training from a teacher cache (and plain fine-tuning).

Heavy imports (torch, transformers) happen when a name is first used, so `distiller --help`
stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "TrainConfig", "TrainResult", "train",
    "SoftTargetLoss", "LogitMSELoss", "GoldLoss",
    "HiddenCELoss", "HiddenMSELoss", "CosineLoss", "PKDLoss", "AttentionLoss",
    "MIAlphaLoss", "TransformerCritic", "MLPCritic", "interpolated_bound",
    "skip_mapping", "last_mapping", "explicit_mapping", "emd_flow",
    "DistillObjective", "combine_losses", "build_student", "truncate_layers",
    "InMemoryProvider", "OnlineTeacherProvider",
    # token-level (masked / causal LM) students
    "TokenObjective", "build_lm_student", "InMemoryTokens", "OnlineSparseTeacher",
    "evaluate_lm",
]

# each exported name -> the module defining it: literal names, so that tests/test_layers.py
# sees what the lazy load imports
_WHERE = {
    "TrainConfig": "distiller.distill_train.config",
    "TrainResult": "distiller.distill_train.train",
    "train": "distiller.distill_train.train",
    "SoftTargetLoss": "distiller.distill_train.pred_losses",
    "LogitMSELoss": "distiller.distill_train.pred_losses",
    "GoldLoss": "distiller.distill_train.pred_losses",
    "HiddenCELoss": "distiller.distill_train.inter_losses",
    "HiddenMSELoss": "distiller.distill_train.inter_losses",
    "CosineLoss": "distiller.distill_train.inter_losses",
    "PKDLoss": "distiller.distill_train.inter_losses",
    "AttentionLoss": "distiller.distill_train.inter_losses",
    "MIAlphaLoss": "distiller.distill_train.mi_alpha",
    "TransformerCritic": "distiller.distill_train.mi_alpha",
    "MLPCritic": "distiller.distill_train.mi_alpha",
    "interpolated_bound": "distiller.distill_train.mi_alpha",
    "skip_mapping": "distiller.distill_train.mapping",
    "last_mapping": "distiller.distill_train.mapping",
    "explicit_mapping": "distiller.distill_train.mapping",
    "emd_flow": "distiller.distill_train.mapping",
    "DistillObjective": "distiller.distill_train.objective",
    "combine_losses": "distiller.distill_train.objective",
    "build_student": "distiller.distill_train.student",
    "truncate_layers": "distiller.distill_train.student",
    "InMemoryProvider": "distiller.distill_train.data",
    "OnlineTeacherProvider": "distiller.distill_train.data",
    "TokenObjective": "distiller.distill_train.token_objective",
    "build_lm_student": "distiller.distill_train.lm_student",
    "InMemoryTokens": "distiller.distill_train.token_data",
    "OnlineSparseTeacher": "distiller.distill_train.token_online",
    "evaluate_lm": "distiller.distill_train.lm_eval",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
