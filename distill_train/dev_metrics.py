"""A student's metrics on dev sets, the task's own (question answering: decoded into answers
and scored as SQuAD is, qa_eval.py), and the teacher's from its cached logits."""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

from distiller.taskdata.metrics import compute_metrics

from .forward import predict
from .qa_eval import evaluate_spans

__all__ = ["evaluate", "evaluate_sets"]


def evaluate(model, batches, metrics: Sequence[str], device, *, autocast=None
             ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(student metrics, teacher metrics or None) over a dev `Batches`: every metric in
    `metrics` (a task's); teacher metrics come from cached teacher logits when the batches carry
    them. Question-answering dev sets (distiller.distill_train.qa_eval.SpanBatches) are decoded into
    answers and scored as SQuAD is."""
    if getattr(batches, "questions", None) is not None:
        return evaluate_spans(model, batches, device, autocast=autocast)
    logits, gold, teacher = predict(model, batches, device, autocast=autocast)
    student = compute_metrics(metrics, logits, gold)
    return student, (compute_metrics(metrics, teacher, gold) if teacher is not None else None)


def evaluate_sets(model, dev_sets, metrics: Sequence[str], device, *, autocast=None
                  ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(student, teacher or None) metrics over every dev set, a list of (name, batches): the
    first set's under their own names (``accuracy``), the others' prefixed with the set's name
    (``dev_mismatched/accuracy``)."""
    student: Dict[str, float] = {}
    teacher: Optional[Dict[str, float]] = None
    for i, (name, batches) in enumerate(dev_sets):
        prefix = "" if i == 0 else f"{name}/"
        got, t = evaluate(model, batches, metrics, device, autocast=autocast)
        student.update({prefix + k: v for k, v in got.items()})
        if t is not None:
            teacher = teacher or {}
            teacher.update({prefix + k: v for k, v in t.items()})
    return student, teacher
