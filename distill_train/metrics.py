"""Task metrics: accuracy, F1, Matthews correlation, Pearson/Spearman (GLUE conventions)."""
from __future__ import annotations

from typing import Dict

import numpy as np

__all__ = ["compute_metrics"]


def compute_metrics(task_metric: str, logits: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Metrics for predictions `logits` [N, C] (or [N] / [N, 1] for regression) against
    `labels` [N].

    `task_metric` is the task's primary metric name (see config.TASKS); the result holds it plus
    its usual companions (F1 tasks also report accuracy; Pearson also Spearman), in percent for
    accuracy/F1 and as a correlation in [-1, 1] scaled by 100 for Matthews/Pearson/Spearman.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels)
    if task_metric == "pearson":
        from scipy.stats import pearsonr, spearmanr

        pred = logits.reshape(len(labels), -1)[:, 0]
        gold = labels.astype(np.float64)
        if len(gold) < 2 or np.std(pred) == 0 or np.std(gold) == 0:
            return {"pearson": 0.0, "spearman": 0.0}
        return {"pearson": 100.0 * float(pearsonr(pred, gold)[0]),
                "spearman": 100.0 * float(spearmanr(pred, gold)[0])}
    pred = logits.argmax(axis=-1)
    gold = labels.astype(np.int64)
    out = {"accuracy": 100.0 * float((pred == gold).mean()) if len(gold) else 0.0}
    if task_metric == "f1":
        from sklearn.metrics import f1_score

        out["f1"] = 100.0 * float(f1_score(gold, pred, zero_division=0))
    elif task_metric == "matthews":
        from sklearn.metrics import matthews_corrcoef

        out["matthews"] = 100.0 * float(matthews_corrcoef(gold, pred)) if len(gold) else 0.0
    elif task_metric != "accuracy":
        raise ValueError(f"unknown metric {task_metric!r}: expected accuracy, f1, matthews or "
                         "pearson")
    return out
