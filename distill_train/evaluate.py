"""Evaluate a saved model (a HF directory, e.g. RUN/best_model) on a cache corpus or any input.

The task (labels, metrics, columns) comes from the cache corpus, else from the model directory
(``distiller_task.json``, saved there by finetune and train), else from the caller; a task the
caller gives without label names (the task flags of `build`) takes them from the corpus or the
model. A span task (question answering) is decoded into answers and scored as the official SQuAD
scripts do; its predictions file is the official one ({question id: answer}) plus the null odds
(SQuAD 2.0).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

from transformers import (AutoConfig, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification, AutoTokenizer)

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.builders.cache.vocab import cache_vocabulary
from distiller.builders.teacher.qa_windows import WindowSettings
from distiller.common.errors import UsageError
from distiller.common.device import resolve_device
from distiller.common.files import atomic_open
from distiller.taskdata.heads import head_problem
from distiller.taskdata.metrics import compute_metrics
from distiller.taskdata.resolve import resolve_task, task_of_model

from .assemble import read_text_records
from .data import Batches, cache_fetcher, text_examples, text_fetcher
from .forward import predict
from .qa_decode import DecodeConfig
from .qa_eval import SpanBatches, score_spans, span_logits, text_windows, write_predictions
from .student import check_vocab

__all__ = ["evaluate_saved", "with_known_labels"]


def evaluate_saved(model_dir: str, task=None, *, cache: Optional[str] = None,
                   corpus: Optional[str] = None, file: Optional[str] = None,
                   batch_size: int = 128, max_length: int = 128, device: str = "auto",
                   predictions: Optional[str] = None, span_options: Optional[dict] = None
                   ) -> Dict[str, object]:
    """{"task", "metric", "student": metrics, "teacher": metrics or None, "examples": n};
    with `predictions`, one JSON line per example (id, predicted and gold label by name).
    span_options (question answering): doc_stride, max_query_length (--file), n_best,
    max_answer_length, null_threshold."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"--model {model_dir!r} is not a saved model directory")
    task = _evaluation_task(model_dir, task, cache, corpus)
    dev = resolve_device(device)
    if task.is_span:
        return _evaluate_spans(model_dir, task, cache=cache, corpus=corpus, file=file,
                               batch_size=batch_size, max_length=max_length, device=dev,
                               predictions=predictions, **(span_options or {}))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(dev)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError):
        tokenizer = None
    if file:
        rows, batches = _file_batches(model_dir, file, task, tokenizer, max_length, batch_size)
    else:
        rows, batches = _corpus_batches(model_dir, cache, corpus, model, tokenizer, batch_size)
    return _score(model, batches, rows, task, dev, predictions)


def _evaluation_task(model_dir: str, task, cache: Optional[str], corpus: Optional[str]):
    """The task to score with: the cache corpus's, else the model's, else the caller's (each
    filling in labels the caller's leaves out); checked against the model's head."""
    task = resolve_task(task)
    if cache and corpus:
        recorded = TeacherCache.open(cache).corpus_task(corpus)
        task = with_known_labels(task, recorded)
        if task is not None and recorded is not None and not task.same_labels(recorded):
            raise UsageError(f"task {task.name} disagrees with the task corpus {corpus!r} was "
                             f"built for ({recorded.name})")
        task = recorded or task
    task = with_known_labels(task, task_of_model(model_dir))
    if task is None:
        raise UsageError(f"no task for {model_dir!r}: no task file beside the model and no "
                         "cache corpus; give --task (and the columns of your data)")
    problem = head_problem(AutoConfig.from_pretrained(model_dir), task, what="model",
                           where=repr(model_dir))
    if problem:
        raise UsageError(problem)
    return task


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id \
        is not None else 0


def _file_batches(model_dir: str, file: str, task, tokenizer, max_length: int,
                  batch_size: int) -> Tuple[List[Dict[str, Any]], Batches]:
    """(rows, batches) of raw input read with the model's tokenizer."""
    if tokenizer is None:
        raise UsageError(f"{model_dir!r} has no tokenizer to read raw text with")
    rows = text_examples(read_text_records(file, task), tokenizer, max_length)
    return rows, Batches(rows, text_fetcher(_pad_id(tokenizer)), batch_size=batch_size,
                         shuffle=False)


def _corpus_batches(model_dir: str, cache: str, corpus: str, model, tokenizer,
                    batch_size: int) -> Tuple[List[Dict[str, Any]], Batches]:
    """(rows, batches) of a cache corpus, with the teacher's logits; the model must read the
    cache's token ids."""
    rows = TeacherCache.open(cache).read_corpus(corpus)
    if not rows:
        raise UsageError(f"corpus {corpus!r} is empty")
    reader = CacheReader(cache, layers=[], attentions=False)
    expected, source = cache_vocabulary(cache)
    check_vocab(model, tokenizer, expected, source=source, student=model_dir)
    embeds = model.get_input_embeddings().weight.shape[0]
    fetch = cache_fetcher(reader, pad_id=_pad_id(tokenizer), vocab_size=embeds)
    return rows, Batches(rows, fetch, batch_size=batch_size, shuffle=False)


def _score(model, batches: Batches, rows, task, device, predictions: Optional[str]
           ) -> Dict[str, object]:
    """The task's metrics of the model (and of the cached teacher) on the labelled rows; the
    predictions file when asked for."""
    logits, gold, teacher = predict(model, batches, device)
    labelled = [i for i, r in enumerate(rows) if r.get("label") is not None]
    if not labelled:
        raise UsageError("the examples have no gold labels (an unlabelled corpus): there is "
                         "nothing to score the model against")
    student = compute_metrics(task.metrics, logits[labelled], gold[labelled])
    teacher_m = (compute_metrics(task.metrics, teacher[labelled], gold[labelled])
                 if teacher is not None else None)
    if predictions:
        _write_predictions(predictions, task, rows, logits)
    return {"task": task.name, "metric": task.primary_metric, "student": student,
            "teacher": teacher_m, "examples": len(rows),
            **({"predictions": predictions} if predictions else {})}


def with_known_labels(task, known):
    """The task the caller gave (e.g. the task flags `build` took: columns, no label names),
    with the labels the cache corpus or the model records (`known`) when it gives none: kind,
    class names in order, and metrics unless it names them. None: `known`."""
    if task is None:
        return known
    if task.resolved or known is None:
        return task
    return task.replace(kind=known.kind, labels=known.labels, unanswerable=known.unanswerable,
                        metrics=task.metrics or known.metrics)


def _write_predictions(path: str, task, rows, logits) -> None:
    """One JSON line per example: id, prediction (label name or number), gold label."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, durable=False) as fh:
        for row, out in zip(rows, logits):
            pred = float(out.reshape(-1)[0]) if task.is_regression else \
                task.label_name(int(out.argmax()))
            fh.write(json.dumps({"id": row["id"], "prediction": pred,
                                 "label": task.label_name(row.get("label"))},
                                ensure_ascii=False) + "\n")


def _evaluate_spans(model_dir: str, task, *, cache, corpus, file, batch_size: int,
                    max_length: int, device, predictions: Optional[str], doc_stride: int = 128,
                    max_query_length: int = 64, n_best: int = 20, max_answer_length: int = 30,
                    null_threshold: Optional[float] = None) -> Dict[str, object]:
    """evaluate_saved for a span task: windows decoded into answers, scored as SQuAD is."""
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir).to(device)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if file:
        settings = WindowSettings(max_length=max_length, doc_stride=doc_stride,
                                  max_query_length=max_query_length)
        rows, questions = text_windows(read_text_records(file, task), tokenizer, settings)
        fetch = text_fetcher(_pad_id(tokenizer))
    else:
        rows, questions, fetch = _corpus_windows(cache, corpus, model, tokenizer)
    if not rows:
        raise UsageError("no questions to evaluate on")
    batches = SpanBatches(rows, fetch, questions=questions, task=task,
                          decode=DecodeConfig(n_best=n_best, max_answer_length=max_answer_length),
                          threshold=null_threshold, batch_size=batch_size)
    return _score_spans(model, batches, device, predictions)


def _corpus_windows(cache: str, corpus: str, model, tokenizer):
    """(window rows, {id: question row}, fetch) of a span corpus of the cache."""
    store = TeacherCache.open(cache)
    rows, questions = store.read_corpus(corpus), store.read_questions(corpus)
    if questions is None:
        raise UsageError(f"corpus {corpus!r} has no question rows: it was not built for a "
                         "question-answering task")
    questions = {q["id"]: q for q in questions}
    reader = CacheReader(cache, layers=[], attentions=False)
    check_vocab(model, tokenizer, max_token_id=max(
        int(max(o["input_ids"])) for o in reader.get_many([r["key"] for r in rows[:64]])))
    return rows, questions, cache_fetcher(reader, pad_id=_pad_id(tokenizer))


def _score_spans(model, batches: SpanBatches, device, predictions: Optional[str]
                 ) -> Dict[str, object]:
    """SQuAD's metrics of the model (and of the cached teacher); the official predictions
    file (and null odds) when asked for."""
    task, rows, questions = batches.task, batches.rows, batches.questions
    threshold = batches.threshold
    student_logits, teacher_logits = span_logits(model, batches, device)
    student, final, odds = score_spans(task, rows, student_logits, questions,
                                       decode=batches.decode, threshold=threshold)
    teacher = None if teacher_logits is None else score_spans(
        task, rows, teacher_logits, questions, decode=batches.decode, threshold=threshold)[0]
    out: Dict[str, object] = {"task": task.name, "metric": task.primary_metric,
                              "student": student, "teacher": teacher,
                              "examples": len({r["id"] for r in rows}), "windows": len(rows)}
    if predictions:
        out["predictions"] = predictions
        odds_path = write_predictions(predictions, final, odds)
        if odds_path:
            out["null_odds"] = odds_path
    return out
