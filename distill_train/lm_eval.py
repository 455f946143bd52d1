"""Scoring masked and causal LM students: top-1 accuracy and perplexity at the scored positions.

Over every scored position of a set (masked_lm: the masked tokens; causal_lm: every position
but each text's last, predicting the next token), with z the student's logits there and y the
gold token:

    top1        share of positions where argmax z = y (ties: the lowest id)
    nll         mean of -log softmax(z)[y], in nats per token (all positions weigh alike)
    perplexity  exp(nll)
    positions   how many positions were scored

A top-k cache also gives the teacher's top-1 (its most likely stored token against y); its
perplexity is not known from a sparse cache. `evaluate_lm` scores a saved model on a token-level
cache corpus or on a text file (masked with a seed, token_inputs.py), for `distiller evaluate`.
"""
from __future__ import annotations

import functools
import math
import os
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch

from distiller.common.device import resolve_device
from distiller.common.errors import UsageError
from distiller.taskdata.task import Task

from .assemble import read_text_records
from .data import Batches
from .forward import scored_logits, to_device
from .lm_student import check_lm_vocab, lm_auto_class, output_vocab_size
from .student import _load_tokenizer
from .token_data import TokenRows, collate_tokens, token_fetcher
from .token_inputs import text_inputs
from .token_source import CacheTokens

__all__ = ["PRIMARY_METRIC", "LOWER_IS_BETTER", "lm_metrics", "evaluate_lm_sets", "evaluate_lm",
           "text_task"]

PRIMARY_METRIC = {"masked_lm": "top1", "causal_lm": "perplexity"}  # selects the best epoch
LOWER_IS_BETTER = ("perplexity", "nll")


def _perplexity(nll: float) -> float:
    return math.exp(nll) if nll < 700 else float("inf")


@torch.no_grad()
def lm_metrics(model, batches: Iterable[Mapping[str, Any]], device, *, autocast=None
               ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(student metrics, teacher metrics or None) over padded token-level batches
    (token_data.collate_tokens); teacher: {"top1"} when the batches carry a top-k
    distribution."""
    was_training = model.training
    model.eval()
    n = correct = t_correct = 0
    nll = 0.0
    topk = False
    for batch in batches:
        batch = to_device(batch, device)
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            z = scored_logits(model, batch).float()
        mask, gold = batch["position_mask"], batch["targets"]
        safe = torch.where(mask, gold, torch.zeros_like(gold))
        token_nll = -torch.log_softmax(z, -1).gather(-1, safe[..., None])[..., 0]
        n += int(mask.sum())
        nll += float(token_nll[mask].double().sum())
        correct += int(((z.argmax(-1) == gold) & mask).sum())
        if "teacher_log_tail" in batch:
            topk = True
            t_correct += int(((batch["teacher_ids"][..., 0] == gold) & mask).sum())
    model.train(was_training)
    if not n:
        raise UsageError("no position to score: the texts are empty (or no token was masked); "
                         "use longer texts or a higher mask probability")
    student = {"top1": correct / n, "perplexity": _perplexity(nll / n), "nll": nll / n,
               "positions": n}
    return student, ({"top1": t_correct / n} if topk else None)


def evaluate_lm_sets(model, dev_sets: Sequence[Tuple[str, Any]], device, *, autocast=None
                     ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(student, teacher or None) metrics over every dev set, a list of (name, Batches): the
    first set's under their own names, the others' prefixed with the set's name (as
    forward.evaluate_sets does for sentence-level tasks)."""
    student: Dict[str, float] = {}
    teacher: Optional[Dict[str, float]] = None
    for i, (name, batches) in enumerate(dev_sets):
        prefix = "" if i == 0 else f"{name}/"
        got, t = lm_metrics(model, (b for _, b in batches.epoch(0)), device, autocast=autocast)
        student.update({prefix + k: v for k, v in got.items()})
        if t is not None:
            teacher = teacher or {}
            teacher.update({prefix + k: v for k, v in t.items()})
    return student, teacher


def text_task(base: Optional[Task] = None) -> Task:
    """The columns texts are read from: a task's (its text_a / text_b, format, header), or one
    text per line when none is given. Labels are not read."""
    if base is None:
        return Task(name="text", text_a=0, header=False, label=None)
    return base.replace(label=None, labels=None, kind="classification", metrics=(),
                        unanswerable=False)


def evaluate_lm(model_dir: str, problem_type: str, *, cache: Optional[str] = None,
                corpus: Optional[str] = None, file: Optional[str] = None,
                task: Optional[Task] = None, batch_size: int = 128, max_length: int = 128,
                mask_prob: float = 0.15, seed: int = 0, device: str = "auto"
                ) -> Dict[str, Any]:
    """{"task": problem type, "metric": the primary metric, "student": metrics, "teacher":
    metrics or None, "examples": texts} of a saved masked / causal LM on a token-level cache
    corpus (the inputs the teacher saw) or on a text file (`task` says its columns; masked_lm:
    each non-special token masked with probability `mask_prob`, seeded per text by `seed`)."""
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"--model {model_dir!r} is not a saved model directory")
    if bool(file) == bool(cache and corpus):
        raise UsageError("evaluate needs either --cache DIR --corpus NAME or --file PATH")
    dev = resolve_device(device)
    model = lm_auto_class(problem_type).from_pretrained(model_dir).to(dev)
    tokenizer = _load_tokenizer(model_dir)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    if file:
        if tokenizer is None:
            raise UsageError(f"{model_dir!r} has no tokenizer to read raw text with")
        records = read_text_records(file, text_task(task))
        inputs = text_inputs(records, tokenizer, problem_type, max_length=max_length,
                             mask_prob=mask_prob, seed=seed)
        rows = [dict(v, key=k) for k, v in inputs.items()]
        loader = torch.utils.data.DataLoader(
            TokenRows(rows), batch_size=batch_size, shuffle=False,
            collate_fn=functools.partial(collate_tokens, pad_id=pad_id))
        batches: Iterable = loader
    else:
        source = CacheTokens(cache)
        if source.problem_type != problem_type:
            raise UsageError(f"cache {cache!r} holds a {source.problem_type} teacher, the model "
                             f"{model_dir!r} is a {problem_type} one")
        check_lm_vocab(model, tokenizer, vocab_size=source.vocab_size, tokens=source.vocab,
                       source=source.vocab_source, student=model_dir)
        rows = source.read_corpus(corpus)
        if not rows:
            raise UsageError(f"corpus {corpus!r} is empty")
        fetch = token_fetcher(source, spec=source.tokens, pad_id=pad_id,
                              embeds=int(model.get_input_embeddings().weight.shape[0]),
                              vocab_size=output_vocab_size(model))
        batches = (b for _, b in Batches(rows, fetch, batch_size=batch_size,
                                         shuffle=False).epoch(0))
    student, teacher = lm_metrics(model, batches, dev)
    return {"task": problem_type, "metric": PRIMARY_METRIC[problem_type], "student": student,
            "teacher": teacher, "examples": len(rows)}
