"""Question answering in training and evaluation: dev sets of context windows, their decoding
into answers and SQuAD's metrics (for the student, and for the teacher from its cached logits).

`SpanBatches` is a dev set: `Batches` of window rows plus the question rows decoding needs;
`evaluate_spans` is what the trainer's evaluation calls for it; `text_windows` windows raw
records with a model's own tokenizer (fine-tuning, `distiller evaluate --file`);
`write_predictions` writes the official prediction file ({question id: answer}, "" for no
answer) and, for SQuAD 2.0, the null odds file the official script takes as --na-prob-file.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from distiller.builders.teacher.qa_windows import make_windows, question_row, window_row
from distiller.common.errors import UsageError
from distiller.common.files import atomic_open
from distiller.taskdata.squad_metrics import squad_metrics

from .data import Batches
from .forward import logits_of, student_forward, to_device
from .qa_decode import DecodeConfig, decode_spans, question_of

__all__ = ["SpanBatches", "span_logits", "score_spans", "evaluate_spans", "text_windows",
           "write_predictions"]


class SpanBatches(Batches):
    """A question-answering dev set: window rows in a fixed order, their question rows
    ({id: question row}), the task (its metrics; SQuAD 2.0 or 1.1), decoding settings and the
    no-answer threshold (None: the best one on this set, as the official script finds it)."""

    def __init__(self, rows, fetch, *, questions: Mapping[str, Mapping[str, Any]], task,
                 decode: DecodeConfig = DecodeConfig(), threshold: Optional[float] = None,
                 batch_size: int = 128):
        super().__init__(rows, fetch, batch_size=batch_size, shuffle=False)
        if not task.is_span:
            raise UsageError(f"task {task.name} is not a span task")
        self.questions, self.task, self.decode, self.threshold = questions, task, decode, \
            threshold


def _trim(x: torch.Tensor, lengths: Sequence[int]) -> List[np.ndarray]:
    return [x[i, :n].float().cpu().numpy() for i, n in enumerate(lengths)]


@torch.no_grad()
def span_logits(model, batches: Batches, device, *, autocast=None
                ) -> Tuple[List[np.ndarray], Optional[List[np.ndarray]]]:
    """(student logits [L, 2] per row, cached teacher logits per row or None), in row order."""
    was_training = model.training
    model.eval()
    student: List[np.ndarray] = []
    teacher: List[np.ndarray] = []
    for _, batch in batches.epoch(0):
        lengths = batch["attention_mask"].sum(1).tolist()
        if "teacher_logits" in batch:
            teacher.extend(_trim(batch["teacher_logits"], lengths))
        batch = to_device(batch, device)
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            out = student_forward(model, batch)
        student.extend(_trim(logits_of(out), lengths))
    model.train(was_training)
    return student, (teacher or None)


def score_spans(task, rows: Sequence[Mapping[str, Any]], logits: Sequence[np.ndarray],
                questions: Mapping[str, Mapping[str, Any]], *,
                decode: DecodeConfig = DecodeConfig(), threshold: Optional[float] = None
                ) -> Tuple[Dict[str, float], Dict[str, str], Optional[Dict[str, float]]]:
    """(metrics, predictions {id: answer}, null odds or None) of window logits."""
    spans = decode_spans(rows, logits, questions, decode)
    first = {}
    for row in rows:
        first.setdefault(row["id"], row)
    gold = {}
    for rid in spans:
        answers = question_of(first[rid], questions).get("answers")
        if answers is None:
            raise UsageError(f"question {rid!r} has no gold answers (an unlabelled corpus): "
                             "there is nothing to score the model against")
        gold[rid] = list(answers)
    texts = {rid: s.text for rid, s in spans.items()}
    odds = {rid: s.odds for rid, s in spans.items()} if task.unanswerable else None
    metrics, final = squad_metrics(task.metrics, gold, texts, null_odds=odds,
                                   threshold=threshold)
    return metrics, final, odds


def evaluate_spans(model, batches: SpanBatches, device, *, autocast=None
                   ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(student metrics, teacher metrics from cached logits or None) of a SpanBatches."""
    student, teacher = span_logits(model, batches, device, autocast=autocast)
    kwargs = dict(decode=batches.decode, threshold=batches.threshold)
    got, _, _ = score_spans(batches.task, batches.rows, student, batches.questions, **kwargs)
    if teacher is None:
        return got, None
    return got, score_spans(batches.task, batches.rows, teacher, batches.questions,
                            **kwargs)[0]


def text_windows(records: Sequence[Mapping[str, Any]], tokenizer, settings
                 ) -> Tuple[List[Dict[str, Any]], Dict[str, Dict[str, Any]]]:
    """(window rows with input_ids, token_type_ids and label; {id: question row}) of span
    records, windowed with `tokenizer` (distiller.builders.teacher.qa_windows.WindowSettings
    `settings`)."""
    rows, questions = [], {}
    windowed = make_windows(tokenizer, [(r["text_a"], r["text_b"]) for r in records], settings)
    for record, wd in zip(records, windowed):
        questions[record["id"]] = question_row(record, wd)
        for w in wd.windows:
            rows.append(dict(window_row(record, w, wd.offsets), id=record["id"],
                             input_ids=w.input_ids.tolist(),
                             token_type_ids=w.token_type_ids.tolist()))
    return rows, questions


def write_predictions(path: str, predictions: Mapping[str, str],
                      null_odds: Optional[Mapping[str, float]] = None) -> Optional[str]:
    """Write {id: answer} as the official scripts read it; with null odds also PATH's
    ``.null_odds.json`` sibling (returned) for evaluate-v2.0.py --na-prob-file."""
    def dump(target: str, data: Mapping[str, Any]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with atomic_open(target, durable=False) as fh:
            json.dump(dict(data), fh, ensure_ascii=False, indent=1, sort_keys=True)

    dump(path, predictions)
    if null_odds is None:
        return None
    odds_path = (path[:-5] if path.endswith(".json") else path) + ".null_odds.json"
    dump(odds_path, {k: float(v) for k, v in null_odds.items()})
    return odds_path
