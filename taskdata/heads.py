"""Does a model's head fit a task? Checked before any work, so that a head the user meant to
keep is never silently re-initialised (no `ignore_mismatched_sizes` behind their back).

Works on a Hugging Face config (no weights loaded): a checkpoint has a classification head when
its `architectures` name one (``...ForSequenceClassification``); a bare encoder has none and gets
a new head of the task's size. Label names are compared when the checkpoint names its classes
(anything but the library's default ``LABEL_0``, ``LABEL_1``, ...). A span task needs a question
answering head (``...ForQuestionAnswering``) or none; a classification task cannot use one.
"""
from __future__ import annotations

from typing import Any, List, Optional

from .task import Task

__all__ = ["has_classification_head", "has_span_head", "head_problem", "label_names"]


def has_classification_head(config: Any) -> bool:
    return any(str(a).endswith("ForSequenceClassification")
               for a in (getattr(config, "architectures", None) or []))


def has_span_head(config: Any) -> bool:
    """A question-answering head: a start and an end logit per token."""
    return any(str(a).endswith("ForQuestionAnswering")
               for a in (getattr(config, "architectures", None) or []))


def label_names(config: Any) -> Optional[List[str]]:
    """The class names a config gives, or None for the library's defaults (LABEL_i)."""
    id2label = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(id2label)) or 0)
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n)]
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        return None
    return names


def head_problem(config: Any, task: Task, *, what: str, where: str) -> Optional[str]:
    """Why `config`'s head cannot serve `task` (one sentence with the fix), or None if it can.
    A config without a head always can (a new head is made)."""
    fix = ("use a checkpoint trained for this task, or one without a head (a bare encoder), or "
           "set reinit_head to start a new head on purpose")
    if task.is_span:
        if has_classification_head(config) and not has_span_head(config):
            return (f"{what} {where} has a sequence-classification head but task {task.name} "
                    f"is extractive question answering (a start/end head): {fix}")
        return None
    if has_span_head(config):
        return (f"{what} {where} has a question-answering (start/end) head but task "
                f"{task.name} is {task.kind}: {fix}")
    if not has_classification_head(config):
        return None
    n = int(getattr(config, "num_labels", 0))
    need = task.num_labels
    if n != need:
        kind = "regression (1 output)" if task.is_regression else f"{need} labels"
        return (f"{what} {where} has a {n}-output classification head but task {task.name} is "
                f"{kind}: {fix}")
    names = label_names(config)
    if names is not None and not task.is_regression and \
            [x.lower() for x in names] != [x.lower() for x in task.labels]:
        return (f"{what} {where} was trained for labels {names}, task {task.name} has "
                f"{list(task.labels)} (class order matters): use the task's labels in that "
                "order (--labels), or set reinit_head to start a new head on purpose")
    return None
