"""`score_file`: what `distiller score` runs, local scoring of one input into a cache (no Beam).

Read top to bottom, one step per function: name the corpus and check where it goes, read the
input (bad rows become dead letters), load the teacher, turn the records into what is scored (a
question-answering task: one row per context window, and the question rows), then either
estimate the cache's size (a dry run) or open the cache and score into it
(distiller.builders.teacher.multiscore) and write the corpus index.

`score_config` is the step before: the TeacherConfig of the command's flags for a task (the
head its kind asks for, the kept layers, a language model's token form and masking).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.taskdata.reader import read_records
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.resolve import resolve_task
from distiller.taskdata.task import Task

from ..cache.corpus_rows import check_corpus_name
from ..cache.leftovers import remove_dead_temp_files
from ..cache.manifest import MANIFEST
from ..cache.planning import length_histogram, plan
from ..cache.spec import CacheSpec
from ..cache.store import TeacherCache
from ..cache.vocab import record_vocabulary
from .config import TeacherConfig, head_for
from .factory import make_teacher
from .model import Teacher
from .multiscore import load_replicas, score_on_devices
from .qa_windows import question_row

__all__ = ["score_file", "score_config", "kept_layers"]

# what the corpus index records of an original (not augmented) row
_ORIGINAL = {"parent_id": None, "chain": "original", "copy": 0}


@dataclasses.dataclass
class _ToScore:
    """The rows to score, their cache keys and, when known, their tokens (input_ids,
    token_type_ids, truncated); question rows and window counts for a span task."""

    records: List[Dict[str, Any]]
    keys: List[str]
    tokens: Optional[List[Tuple[Any, Any, bool]]] = None
    questions: Optional[List[Dict[str, Any]]] = None
    described: Dict[str, Any] = dataclasses.field(default_factory=dict)


def score_config(task: Task, *, model: str, layers: Optional[str] = None, tokens: str = "",
                 mask_prob: float = 0.15, mask_seed: int = 0, **settings: Any) -> TeacherConfig:
    """The TeacherConfig `distiller score` runs for `task`: the head its kind asks for
    (config.head_for), `layers` as `kept_layers` reads the flag, and a language model's token
    form (`tokens`, required for one, refused for any other task) and masking; `settings` are
    TeacherConfig's other fields (max_length, device, amp, ...)."""
    if task.is_lm and not tokens:
        raise UsageError(f"task {task.name} is a {task.kind} task: give --tokens topk:K or "
                         "--tokens sample:N (what is kept per predicted token)")
    if tokens and not task.is_lm:
        raise UsageError(f"--tokens is for language-model tasks (--kind masked_lm or "
                         f"causal_lm); task {task.name} is {task.kind}")
    return TeacherConfig(model=model, layers=kept_layers(layers, task), head=head_for(task),
                         tokens=tokens, mask_prob=mask_prob, mask_seed=mask_seed, **settings)


def kept_layers(text: Optional[str], task: Task):
    """The hidden states a --layers flag keeps: "all", "none" (()) or comma-separated indices;
    not given: all, or none for a language model (its cache holds the sparse distributions)."""
    text = text or ("none" if task.is_lm else "all")
    if text in ("all", "none"):
        return "all" if text == "all" else ()
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--layers must be 'all', 'none' or comma-separated integers, got "
                         f"{text!r}") from None


def score_file(config: TeacherConfig, *, input_path: str, task, cache_dir: str,
               dtype: str = "float16", logits_topk: int = 0, dry_run: bool = False,
               chunk: int = 2048, limit: Optional[int] = None, corpus: Optional[str] = None,
               labelled: bool = True, devices: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Score every good row of an input into the cache; returns counts (the CLI prints them).

    task: a `taskdata.Task` (or a built-in name). Only keys the cache lacks are scored; each chunk
    is committed as it finishes. Also writes the corpus index TASK-SPLIT (originals: parent_id
    None, chain "original", copy 0) with the task recorded. A span task (question answering)
    is scored window by window: the corpus has a row per window and its question rows; the
    dry run counts windows. devices: several device names score with one teacher replica each
    (distiller.builders.teacher.multiscore); None runs on `config.device`.
    """
    task = resolve_task(task)
    name = corpus or f"{task.name}-{os.path.splitext(os.path.basename(input_path))[0]}"
    if not dry_run:  # what the run writes, checked before the teacher scores anything
        _check_destination(name, cache_dir)
    records, dead = _read_input(input_path, task, limit=limit, labelled=labelled)
    teacher = make_teacher(config).load()
    spec = teacher.spec(dtype, logits_topk=logits_topk)
    summary: Dict[str, Any] = {"input": input_path, "records": len(records),
                               "dead_letters": len(dead), "fingerprint": spec.fingerprint,
                               "dead_letter_examples": [d.to_dict() for d in dead[:20]]}
    todo = _to_score(teacher, task, records, tokenize=dry_run)
    summary.update(todo.described)
    if dry_run:
        summary.update(_size_estimate(spec, todo.tokens, cache_dir))
        return summary
    cache = _open_cache(cache_dir, spec, teacher.tokenizer)
    replicas = [teacher] + (load_replicas(config, devices[1:]) if devices else [])
    result = score_on_devices(replicas, cache, todo.records, chunk=chunk)
    cache.write_corpus(name, [dict(r, key=k, **_ORIGINAL) for r, k in zip(todo.records, todo.keys)],
                       task=task.to_dict(), labelled=labelled, questions=todo.questions)
    summary.update({"scored": result["scored"], "reused": result["reused"],
                    "duplicates": result["duplicates"],
                    "truncated": teacher.truncated_count, "corpus": name,
                    "cache": cache.path, "stats": cache.stats()})
    return summary


def _check_destination(name: str, cache_dir: str) -> None:
    """UsageError unless `name` can name a corpus and `cache_dir` can be a cache directory."""
    try:
        check_corpus_name(name)
    except ValueError as exc:
        raise UsageError(f"{exc}: pass --corpus NAME") from None
    if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
        raise UsageError(f"--cache {cache_dir!r} is a file, not a cache directory")


def _read_input(input_path: str, task: Task, *, limit: Optional[int], labelled: bool
                ) -> Tuple[List[Dict[str, Any]], List[DeadLetter]]:
    """(records, dead letters) of the input, in input order."""
    records: List[Dict[str, Any]] = []
    dead: List[DeadLetter] = []
    for rec in read_records(input_path, task, limit=limit, labelled=labelled):
        (dead if isinstance(rec, DeadLetter) else records).append(rec)
    return records, dead


def _to_score(teacher: Teacher, task: Task, records: List[Dict[str, Any]], *,
              tokenize: bool) -> _ToScore:
    """What is scored: the records themselves (tokenized only when `tokenize`: the dry run), or
    for a span task one row per context window with its tokens, and the question rows."""
    if not task.is_span:
        keys = [teacher.cache_key(r["text_a"], r["text_b"]) for r in records]
        return _ToScore(records, keys, teacher.tokenize(records) if tokenize else None)
    parts = teacher.window_records(records)
    windows = [dict(w, **_ORIGINAL) for _, rows in parts for w in rows]
    return _ToScore(
        records=windows, keys=[r["key"] for r in windows],
        tokens=[(r["input_ids"], r["token_type_ids"], r["truncated"]) for r in windows],
        questions=[question_row(r, wd) for r, (wd, _) in zip(records, parts)],
        described=teacher.describe_windows([wd for wd, _ in parts]))


def _size_estimate(spec: CacheSpec, tokens: List[Tuple[Any, Any, bool]],
                   cache_dir: str) -> Dict[str, Any]:
    """The dry run's part of the summary: truncations and the cache's estimated size against
    the free disk where it would be written."""
    hist = length_histogram(len(t[0]) for t in tokens)
    where = cache_dir if os.path.isdir(cache_dir) else (os.path.dirname(
        os.path.abspath(cache_dir)) or ".")
    estimate = plan(spec, hist, where)
    out = {"dry_run": True, "truncated": int(sum(t[2] for t in tokens)), "estimate": estimate}
    if not estimate["fits"]:
        out["warning"] = "the cache would be larger than the free disk"
    return out


def _open_cache(cache_dir: str, spec: CacheSpec, tokenizer) -> TeacherCache:
    """The cache at `cache_dir` for `spec` (created if absent; CacheSpecMismatch if it stores
    something else), with the teacher's vocabulary recorded and dead writers' temp files gone."""
    cache = (TeacherCache.open(cache_dir, spec) if os.path.exists(os.path.join(cache_dir, MANIFEST))
             else TeacherCache.create(cache_dir, spec))
    record_vocabulary(cache, tokenizer)
    remove_dead_temp_files(cache.path)
    return cache
