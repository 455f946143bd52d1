"""Task metrics (GLUE conventions): accuracy, F1, macro F1, Matthews correlation, Pearson and
Spearman correlation, all in percent (correlations scaled by 100).

`compute_metrics(metrics, predictions, labels)` computes every metric a task lists; the first is
its primary one (model selection). Classification predictions are logits [N, C] (argmax taken);
regression predictions are [N] or [N, 1]. Reference implementations: scikit-learn and scipy.
"""
from __future__ import annotations

from typing import Dict, Sequence, Union

import numpy as np

from distiller.common.errors import UsageError

__all__ = ["compute_metrics", "METRIC_FUNCTIONS"]


def _accuracy(pred, gold) -> float:
    return 100.0 * float((pred == gold).mean()) if len(gold) else 0.0


def _f1(pred, gold) -> float:
    from sklearn.metrics import f1_score

    return 100.0 * float(f1_score(gold, pred, pos_label=1, average="binary", zero_division=0))


def _macro_f1(pred, gold) -> float:
    from sklearn.metrics import f1_score

    return 100.0 * float(f1_score(gold, pred, average="macro", zero_division=0))


def _matthews(pred, gold) -> float:
    from sklearn.metrics import matthews_corrcoef

    return 100.0 * float(matthews_corrcoef(gold, pred)) if len(gold) else 0.0


def _correlation(kind: str):
    def fn(pred, gold) -> float:
        from scipy.stats import pearsonr, spearmanr

        if len(gold) < 2 or np.std(pred) == 0 or np.std(gold) == 0:
            return 0.0  # undefined (a constant prediction): no correlation, not NaN
        r = pearsonr(pred, gold)[0] if kind == "pearson" else spearmanr(pred, gold)[0]
        return 100.0 * float(r)
    return fn


METRIC_FUNCTIONS = {"accuracy": _accuracy, "f1": _f1, "macro_f1": _macro_f1,
                    "matthews": _matthews, "pearson": _correlation("pearson"),
                    "spearman": _correlation("spearman")}
_REGRESSION = {"pearson", "spearman"}


def compute_metrics(metrics: Union[str, Sequence[str]], predictions, labels) -> Dict[str, float]:
    """{metric: value} for each name in `metrics` (a task's `metrics`, or one name).

    predictions: logits [N, C] for classification metrics, scores [N] or [N, 1] for regression
    ones; labels: [N] class ids or float targets."""
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in METRIC_FUNCTIONS]
    if unknown:
        raise UsageError(f"unknown metric(s) {unknown}: known metrics are "
                         f"{sorted(METRIC_FUNCTIONS)}")
    predictions = np.asarray(predictions, dtype=np.float64)
    labels = np.asarray(labels)
    out: Dict[str, float] = {}
    for name in names:
        if name in _REGRESSION:
            pred = predictions.reshape(len(labels), -1)[:, 0]
            out[name] = METRIC_FUNCTIONS[name](pred, labels.astype(np.float64))
        else:
            pred = predictions.argmax(axis=-1) if predictions.ndim > 1 else predictions
            out[name] = METRIC_FUNCTIONS[name](pred.astype(np.int64), labels.astype(np.int64))
    return out
