"""Task statistics the recommender's features are made of, shared by the ledger's task
preparation (distiller.autodistiller.ledger_tasks) and `distiller recommend` (task_inputs):
label entropy, mean words per example, the teacher's expected calibration error, and the
teacher's dev metric and calibration read from a teacher cache's dev corpus (the teacher never
runs: its logits are in the cache)."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Dict, Optional, Sequence

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.common.errors import UsageError
from distiller.taskdata.metrics import compute_metrics

__all__ = ["label_entropy", "expected_calibration_error", "mean_words", "teacher_stats"]


def label_entropy(labels: Sequence[Any], regression: bool) -> float:
    """Entropy of the label distribution over its number of classes (bins), in [0, 1]."""
    values = [v for v in labels if v is not None]
    if not values:
        return 0.0
    if regression:
        nums = [float(v) for v in values]
        low, high = min(nums), max(nums)
        width = (high - low) / 10 or 1.0
        values = [min(int((v - low) / width), 9) for v in nums]
        n_classes = 10
    else:
        n_classes = len(set(values))
    if n_classes < 2:
        return 0.0
    counts = Counter(values).values()
    total = sum(counts)
    h = -sum(c / total * math.log(c / total) for c in counts)
    return h / math.log(n_classes)


def expected_calibration_error(logits: Sequence[Sequence[float]], labels: Sequence[int],
                               bins: int = 10) -> float:
    """ECE: |accuracy - confidence| averaged over equal-width confidence bins, weighted by size."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    right = pred == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(ece)


def mean_words(records: Sequence[Dict[str, Any]]) -> float:
    """Mean words per example (both texts of a pair)."""
    if not records:
        return 0.0
    words = [len(str(r.get("text_a") or "").split()) + len(str(r.get("text_b") or "").split())
             for r in records]
    return sum(words) / len(words)


def teacher_stats(cache: str, task, dev_corpus: Optional[str] = None) -> Dict[str, Any]:
    """{"teacher_metric", "teacher_ece"} of the teacher on `task`'s dev corpus in `cache`
    (default ``{task}-{first dev split}``, as `distiller build --split dev` names it): the task's
    primary metric of the cached logits against the gold labels, and their calibration (None
    for regression)."""
    import numpy as np

    opened = TeacherCache.open(cache)
    name = dev_corpus or f"{task.name}-{task.dev_splits[0]}"
    if name not in opened.corpora():
        raise UsageError(f"the teacher cache {cache!r} has no dev corpus {name!r} (it has "
                         f"{opened.corpora()}): build the task's dev file into it (`distiller "
                         "build --split dev ...`) or name its dev corpus with --dev-corpus")
    rows = [r for r in opened.read_corpus(name) if r.get("label") is not None]
    if not rows:
        raise UsageError(f"dev corpus {name!r} of {cache!r} has no gold labels: the teacher's "
                         "dev metric and calibration need them")
    outputs = CacheReader(cache, layers=[]).get_many([r["key"] for r in rows])
    logits = np.stack([np.asarray(o["logits"].float().numpy(), dtype=np.float64)
                       for o in outputs])
    labels = [r["label"] for r in rows]
    metric = task.primary_metric
    value = compute_metrics(metric, logits, labels)[metric]
    ece = None if task.is_regression else expected_calibration_error(
        logits, [int(v) for v in labels])
    return {"teacher_metric": float(value), "teacher_ece": ece}
