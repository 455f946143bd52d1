"""Fit a teacher checkpoint to a task before any work (docs/tasks.md, "The task model").

A teacher whose head disagrees with the task (another number of outputs, other class names) is a
one-line error naming both, before anything is read or scored. A bare encoder (no head) gets a
head of the task's size (initialised from seed 0, the same in every worker:
distiller.builders.teacher.load).
A task whose labels are not known yet (an unlabelled corpus of a new task) takes them from the
teacher's head.
"""
from __future__ import annotations

from typing import Optional, Tuple

from distiller.common.errors import UsageError
from distiller.taskdata.heads import has_classification_head, head_problem, label_names
from distiller.taskdata.task import Task

__all__ = ["fit_teacher_to_task"]


def fit_teacher_to_task(model: str, task: Task) -> Tuple[Task, Optional[int]]:
    """(the task with its labels known, num_labels to give a bare encoder's new head or None).

    Reads the checkpoint's config only (no weights). Raises ValueError when the head cannot
    serve the task."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load the teacher {model!r}: {str(exc).splitlines()[0]}") \
            from None
    if task.is_lm:   # a language model's head is its vocabulary (token_teacher.py checks it)
        return task, None
    head = has_classification_head(config)
    if not task.resolved:
        if not head:
            raise UsageError(f"task {task.name}: its labels are not known and the teacher "
                             f"{model!r} has no classification head to take them from: give "
                             "--labels (or --regression)")
        if getattr(config, "problem_type", None) == "regression" or config.num_labels == 1:
            task = task.replace(kind="regression", labels=None, metrics=())
        else:
            names = label_names(config) or [f"LABEL_{i}" for i in range(config.num_labels)]
            task = task.replace(labels=tuple(names), metrics=())
    problem = head_problem(config, task, what="teacher", where=repr(model))
    if problem:
        raise UsageError(problem)
    if task.is_span:   # a start/end head has its two outputs whatever the checkpoint holds
        return task, None
    return task, (None if head else task.num_labels)
