"""A ledger row (distiller.autodistiller.ledger.COLUMNS) of a finished training run: what a
sweep trial, a ledger cell and a benchmark run each append."""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Dict, List, Mapping, Optional

from distiller.distill_train.config import TrainConfig

__all__ = ["ledger_row", "config_columns", "read_jsonl_rows"]


def ledger_row(*, run_id: str, study: str, trial: int, task: str, student: str, teacher: str,
               teacher_fingerprint: str, teacher_metric: Optional[float],
               values: Mapping[str, Any], config: Mapping[str, Any],
               features: Mapping[str, Any], metric_name: Optional[str],
               metric: Optional[float], best_epoch: int, epochs: int, wall: float,
               status: str) -> Dict[str, Any]:
    """One ledger row (distiller.autodistiller.ledger.COLUMNS) of a finished run."""
    ratio = metric / teacher_metric if metric is not None and teacher_metric else None
    return {
        "run_id": run_id, "study": study, "trial": trial, "task": task, "student": student,
        "teacher": teacher, "teacher_fingerprint": teacher_fingerprint,
        "teacher_metric": teacher_metric, **config_columns(values, config), **dict(features),
        "metric_name": metric_name or "", "dev_metric": metric, "ratio": ratio,
        "best_epoch": best_epoch, "epochs_run": epochs, "wall_time_s": wall, "status": status,
        "config_json": json.dumps(dict(config), sort_keys=True, default=str),
        "created_at": time.time()}


def config_columns(values: Mapping[str, Any], config: Mapping[str, Any]) -> Dict[str, Any]:
    """The ledger's config columns of a run: sampled factors, else the trainer's settings,
    else the trainer's defaults (TrainConfig's)."""
    defaults: Dict[str, Any] = {"mapping": "skip", "inter_loss": "none", "mi_alpha": 0.9,
                                "pred_loss": "kl", "temperature": 1.0, "w_kd": 1.0,
                                "w_inter": 1.0, "w_gold": 0.0, "lr": 5e-5}
    defaults.update({f.name: f.default for f in dataclasses.fields(TrainConfig)
                     if f.name in defaults})
    merged = {**defaults, **config}
    mapping = values.get("mapping", merged["mapping"])
    return {
        "augmentation": str(values.get("augmentation", "none")),
        "corpus": str(merged.get("train_corpus") or ""),
        "mixup": bool(values.get("mixup", False)),
        "mapping": str(mapping), "inter_loss": str(merged["inter_loss"]),
        "mi_alpha": float(merged["mi_alpha"]) if merged["inter_loss"] == "mi" else None,
        "pred_loss": str(merged["pred_loss"]), "temperature": float(merged["temperature"]),
        "w_kd": float(merged["w_kd"]), "w_inter": float(merged["w_inter"]),
        "w_gold": float(merged["w_gold"]), "lr": float(merged["lr"]),
    }


def read_jsonl_rows(path: str) -> List[Dict[str, Any]]:
    """The rows of a ledger.jsonl; a line a kill cut short is skipped."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows
