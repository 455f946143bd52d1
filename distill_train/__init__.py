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

_WHERE = {
    "TrainConfig": "config", "TrainResult": "train", "train": "train",
    "SoftTargetLoss": "pred_losses", "LogitMSELoss": "pred_losses", "GoldLoss": "pred_losses",
    "HiddenCELoss": "inter_losses", "HiddenMSELoss": "inter_losses", "CosineLoss": "inter_losses",
    "PKDLoss": "inter_losses", "AttentionLoss": "inter_losses",
    "MIAlphaLoss": "mi_alpha", "TransformerCritic": "mi_alpha", "MLPCritic": "mi_alpha",
    "interpolated_bound": "mi_alpha",
    "skip_mapping": "mapping", "last_mapping": "mapping", "explicit_mapping": "mapping",
    "emd_flow": "mapping", "DistillObjective": "objective", "combine_losses": "objective",
    "build_student": "student", "truncate_layers": "student",
    "InMemoryProvider": "data", "OnlineTeacherProvider": "data",
    "TokenObjective": "token_objective", "build_lm_student": "lm_student",
    "InMemoryTokens": "token_data", "OnlineSparseTeacher": "token_online",
    "evaluate_lm": "lm_eval",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
