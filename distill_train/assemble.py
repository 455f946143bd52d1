"""Assembling a run from a TrainConfig: the student, the batches and the objective.

Kept apart from the loop (train.py) so the loop reads top to bottom. `RunParts` is what the loop
needs; `assemble` builds it either from a teacher cache (distill) or from raw text files
(finetune, gold labels only, the student's own tokenizer).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from torch import nn

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.builders.cache.vocab import cache_vocabulary
from distiller.builders.teacher.qa_windows import WindowSettings
from distiller.common.errors import UsageError
from distiller.taskdata.reader import read_records
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.resolve import resolve_task

from .data import Batches, batch_lengths, cache_fetcher, text_examples, text_fetcher
from .objective import DistillObjective
from .qa_decode import DecodeConfig
from .qa_eval import SpanBatches, text_windows
from .student import build_student, check_vocab

__all__ = ["RunParts", "assemble", "teacher_shape", "read_text_records", "resolve_run_task"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunParts:
    model: nn.Module
    tokenizer: Any
    objective: DistillObjective
    train: Batches
    dev: List[Tuple[str, Batches]]   # (name, batches) per dev set; the first selects models
    lm: Any = None                   # a token-level run's token_run.LMRun (its dev metrics and
    #                                  the one that selects); None for sentence-level tasks


def resolve_run_task(config):
    """The config with its task resolved. Distillation reads the task the build recorded with
    the training corpus: a task left out (or only named) comes from there, and a task given that
    disagrees with it (other labels or kind) is an error before any work. A task file the config
    names is read first (TrainConfig.read_task_file)."""
    config = config.read_task_file()
    if config.mode != "distill" or config.cache is None:
        return config
    cache = TeacherCache.open(config.cache)
    recorded = cache.corpus_task(config.train_corpus)
    for name in config.dev_corpora:
        other = cache.corpus_task(name)
        if recorded is not None and other is not None and not other.same_labels(recorded):
            raise UsageError(f"dev corpus {name!r} was built for task {other.name} "
                             f"({_labels(other)}), the training corpus {config.train_corpus!r} "
                             f"for {recorded.name} ({_labels(recorded)})")
    given = config._task
    if recorded is None:
        if given is None:
            raise UsageError(f"corpus {config.train_corpus!r} records no task (built by an older "
                             "version): pass --task")
        return config
    if given is None:
        if isinstance(config.task, str) and config.task != recorded.name:
            raise UsageError(f"task {config.task!r}: corpus {config.train_corpus!r} was built "
                             f"for task {recorded.name!r}")
        return config.replace(task=recorded.to_dict())
    if not given.same_labels(recorded):
        raise UsageError(f"task {given.name} ({_labels(given)}) disagrees with the task corpus "
                         f"{config.train_corpus!r} was built for: {recorded.name} "
                         f"({_labels(recorded)}); leave --task out to use the cache's")
    return config


def _labels(task) -> str:
    return "regression" if task.is_regression else f"labels {list(task.labels or ())}"


def teacher_shape(provider, sample: Optional[Mapping] = None) -> Dict[str, Any]:
    """{num_hidden_layers, hidden_size, layers, attentions} of the teacher behind a provider:
    from its CacheSpec when it has one, else its attributes, else a sample output."""
    spec = getattr(provider, "spec", None)
    if spec is not None:
        return {"num_hidden_layers": spec.num_hidden_layers, "hidden_size": spec.hidden_size,
                "layers": tuple(spec.layers), "attentions": tuple(spec.attentions),
                "pooling": getattr(spec, "pooling", "none")}
    layers = tuple(sorted(sample["hidden"])) if sample is not None else ()
    width = int(sample["hidden"][layers[-1]].shape[-1]) if layers else 0
    return {"num_hidden_layers": getattr(provider, "num_hidden_layers", None)
            or (max(layers) if layers else 0),
            "hidden_size": getattr(provider, "hidden_size", width), "layers": layers,
            "attentions": tuple(sorted(sample.get("attentions") or {})) if sample else (),
            "pooling": "none"}


def _pad_id(tokenizer) -> int:
    if tokenizer is not None and tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return 0


def _objective_for(config, model, shape) -> DistillObjective:
    mcfg = model.config
    return DistillObjective(config, n_student=mcfg.num_hidden_layers,
                            n_teacher=int(shape["num_hidden_layers"]),
                            student_width=mcfg.hidden_size,
                            teacher_width=int(shape["hidden_size"]))


def assemble(config, *, provider=None, train_rows: Optional[Sequence[Mapping]] = None,
             dev_rows: Optional[Sequence[Mapping]] = None) -> RunParts:
    """Build student, objective and batches. Tests and benchmarks may inject a `provider`
    (anything with get_many) and corpus rows instead of opening `config.cache`."""
    model, tokenizer = build_student(config)
    pad_id = _pad_id(tokenizer)
    if config.mode == "finetune":
        return _assemble_finetune(config, model, tokenizer, pad_id)
    cache = _open_cache(config) if _reads_cache(config, provider, train_rows, dev_rows) else None
    train_rows, dev_sets = _corpus_rows(config, cache, train_rows, dev_rows)
    sample = provider.get_many([train_rows[0]["key"]])[0] if provider is not None else None
    shape = _teacher_states(config, provider if provider is not None else cache, sample)
    objective = _objective_for(config, model, shape)
    layers, attn_layers = _states_needed(config, model, provider, shape, objective)
    dev_provider = provider
    if provider is None:   # the cache's own readers: of those states, and of logits for dev
        provider = CacheReader(config.cache, layers=layers, attentions=list(attn_layers) or False)
        dev_provider = CacheReader(config.cache, layers=[], attentions=False)
        sample = provider.get_many([train_rows[0]["key"]])[0]
    _check_student_vocab(config, model, tokenizer, cache, sample)
    embeds = int(model.get_input_embeddings().weight.shape[0])
    fetch = cache_fetcher(provider, pad_id=pad_id, layers=layers, attn_layers=attn_layers,
                          vocab_size=embeds)
    train = Batches(train_rows, fetch, batch_size=config.batch_size, shuffle=True,
                    seed=config.seed, prefetch=bool(getattr(provider, "prefetch_safe", False)),
                    lengths=batch_lengths(config.batching, train_rows, provider))
    span = config.task_def.is_span
    dev = [(name, _dev_batches(config, rows, cache_fetcher(dev_provider, pad_id=pad_id,
                                                         vocab_size=embeds),
                               cache.read_questions(name) if span else None))
           for name, rows in dev_sets]
    log.info("distill: %d training rows, dev sets %s, teacher %s layers x %s wide, pairs %s",
             len(train_rows), {n: len(r) for n, r in dev_sets}, shape["num_hidden_layers"],
             shape["hidden_size"], objective.pairs)
    return RunParts(model, tokenizer, objective, train, dev)


def _reads_cache(config, provider, train_rows, dev_rows) -> bool:
    """Whether the run opens its cache: for what the caller did not inject, and for a question
    answering dev set (it decodes with the cache's question rows)."""
    return bool(provider is None or train_rows is None
                or (dev_rows is None and config.dev_corpus)
                or (config.task_def.is_span and config.dev_corpus))


def _open_cache(config) -> TeacherCache:
    cache = TeacherCache.open(config.cache)
    if getattr(cache.spec, "logits_topk", 0):
        raise UsageError(f"cache {config.cache!r} keeps only the top-{cache.spec.logits_topk} "
                         "logits; distillation needs full logits: build with logits_topk 0")
    return cache


def _corpus_rows(config, cache, train_rows, dev_rows
                 ) -> Tuple[Sequence[Mapping], List[Tuple[str, Sequence[Mapping]]]]:
    """(training rows, [(name, rows)] of each dev set): the injected ones, else the cache's
    corpora; --limit-train applied; none of them empty, and labelled where the run needs it."""
    if train_rows is None:
        train_rows = cache.read_corpus(config.train_corpus)
    dev_sets: List[Tuple[str, Sequence[Mapping]]] = []
    if dev_rows is not None:
        dev_sets = [((config.dev_corpora or ("dev",))[0], dev_rows)]
    elif config.dev_corpora:
        dev_sets = [(name, cache.read_corpus(name)) for name in config.dev_corpora]
    if config.limit_train:
        train_rows = list(train_rows)[:config.limit_train]
    if not train_rows:
        raise UsageError(f"training corpus {config.train_corpus!r} is empty")
    for name, rows in dev_sets:
        if not rows:
            # no dev metric: no best model to keep and a result of NaN; refused before training
            raise UsageError(f"dev corpus {name!r} of cache {config.cache!r} is empty: build it "
                             "from a file that has rows, or leave out --dev-corpus")
    _check_labels(config, train_rows, dev_sets)
    return train_rows, dev_sets


def _teacher_states(config, source, sample) -> Dict[str, Any]:
    """The teacher's shape (`teacher_shape`), refused when its hidden states are pooled and
    the objective needs them per token."""
    shape = teacher_shape(source, sample)
    if shape["pooling"] != "none" and config.inter_loss != "none":
        raise UsageError(f"the cache keeps pooled hidden states ({shape['pooling']}); inter_loss "
                         f"{config.inter_loss!r} needs per-token states: build a cache with "
                         "pooling 'none' (or use inter_loss 'none')")
    return shape


def _states_needed(config, model, provider, shape, objective) -> Tuple[List[int], List[int]]:
    """(hidden-state layers, attention-map layers) of the teacher the objective reads; each
    must be in the cache, and attention maps need as many heads in the student."""
    layers = objective.teacher_layers if not objective.needs_attentions else []
    attn_layers = objective.teacher_layers if objective.needs_attentions else []
    missing = [l for l in layers if l not in shape["layers"]]
    if missing:
        raise UsageError(f"the cache holds teacher layers {list(shape['layers'])} but the "
                         f"{config.inter_loss!r} loss with mapping {config.mapping!r} needs "
                         f"{missing}: rebuild the cache with those layers or change the mapping")
    missing = [l for l in attn_layers if l not in shape["attentions"]]
    if missing:
        raise UsageError(f"inter_loss {config.inter_loss!r} needs the teacher's attention maps of "
                         f"layers {missing}, the cache holds {list(shape['attentions'])}: build "
                         "the cache with attentions")
    if objective.needs_attentions:
        heads = getattr(getattr(provider, "spec", None), "num_heads", None)
        if heads and heads != model.config.num_attention_heads:
            raise UsageError(f"attention-map losses need the student's heads "
                             f"({model.config.num_attention_heads}) to equal the teacher's "
                             f"({heads})")
    return layers, attn_layers


def _dev_batches(config, rows, fetch, questions) -> Batches:
    """A dev set's batches; for a span task with the question rows decoding needs."""
    if not config.task_def.is_span:
        return Batches(rows, fetch, batch_size=config.eval_batch_size, shuffle=False)
    if questions is None:
        raise UsageError("a question-answering dev corpus needs its question rows (contexts, "
                         "offsets, answers), which this corpus lacks: build it with a span task")
    if isinstance(questions, list):
        questions = {q["id"]: q for q in questions}
    return SpanBatches(rows, fetch, questions=questions, task=config.task_def,
                       decode=DecodeConfig(n_best=config.n_best,
                                           max_answer_length=config.max_answer_length),
                       threshold=config.null_threshold, batch_size=config.eval_batch_size)


def _check_labels(config, train_rows, dev_sets) -> None:
    """Gold labels where the run needs them: every dev set (it scores the student), and the
    training corpus when the gold loss has weight."""
    for name, rows in dev_sets:
        if rows and all(r.get("label") is None for r in rows):
            raise UsageError(f"dev corpus {name!r} has no labels (an unlabelled build): a dev "
                             "set must be labelled to score the student")
    if config.w_gold and all(r.get("label") is None for r in train_rows):
        raise UsageError(f"training corpus {config.train_corpus!r} has no gold labels (an "
                         "unlabelled build): set w_gold 0 (learn from the teacher alone)")


def _check_student_vocab(config, model, tokenizer, cache, sample) -> None:
    """The student's vocabulary against the one the cache was tokenised with
    (distiller.builders.cache.vocab); when that is unknown, the largest id of the first row here
    and of
    every batch later."""
    expected, source = None, ""
    if cache is not None:
        expected, source = cache_vocabulary(config.cache)
        if expected is None:
            log.warning("%s: the student's vocabulary cannot be compared with the cache's; "
                        "token ids are checked batch by batch", source)
    check_vocab(model, tokenizer, expected, source=source,
                max_token_id=int(max(sample["input_ids"])), student=config.student)


def read_text_records(path: str, task, limit: Optional[int] = None) -> List[Dict]:
    """Records of any input (file, glob, dataset) for a task; dead letters are counted and
    logged with the first reason."""
    task = resolve_task(task)
    records, dead = [], []
    for rec in read_records(path, task, limit=limit):
        (dead if isinstance(rec, DeadLetter) else records).append(rec)
    if dead:
        log.warning("%s: %d rows dead-lettered (first: row %d, %s)", path, len(dead), dead[0].row,
                    dead[0].reason)
    if not records:
        raise UsageError(f"{path!r} holds no usable records for task {task.name}"
                         + (f" (all {len(dead)} rows dead-lettered, first: {dead[0].reason})"
                            if dead else ""))
    return records


def _assemble_finetune(config, model, tokenizer, pad_id: int) -> RunParts:
    if tokenizer is None:
        raise UsageError(f"fine-tuning on raw text needs a tokenizer, and {config.student!r} has "
                         "none: save one next to the model")
    task = config.task_def
    examples = _span_examples if task.is_span else _text_examples
    train_rows, _ = examples(config, read_text_records(config.train_file, task,
                                                       config.limit_train), tokenizer)
    dev = []
    for path in config.dev_files:
        dev_rows, questions = examples(config, read_text_records(path, task), tokenizer)
        dev.append((_dev_name(path), _dev_batches(config, dev_rows, text_fetcher(pad_id),
                                                  questions)))
    # Gold labels only: no teacher, no prediction or intermediate loss.
    gold_only = config.replace(mode="finetune", pred_loss="none", inter_loss="none",
                               w_kd=0.0, w_inter=0.0, w_gold=1.0)
    objective = DistillObjective(gold_only, n_student=model.config.num_hidden_layers,
                                 n_teacher=model.config.num_hidden_layers,
                                 student_width=model.config.hidden_size,
                                 teacher_width=model.config.hidden_size)
    train = Batches(train_rows, text_fetcher(pad_id), batch_size=config.batch_size, shuffle=True,
                    seed=config.seed, lengths=batch_lengths(config.batching, train_rows))
    return RunParts(model, tokenizer, objective, train, dev)


def _text_examples(config, records, tokenizer):
    return text_examples(records, tokenizer, config.max_length), None


def _span_examples(config, records, tokenizer):
    """Context windows of question records, made with the model's own tokenizer."""
    settings = WindowSettings(max_length=config.max_length, doc_stride=config.doc_stride,
                              max_query_length=config.max_query_length)
    return text_windows(records, tokenizer, settings)


def _dev_name(path: str) -> str:
    """A dev input's name in reports: its file stem (dev_matched, dev_mismatched, ...)."""
    return os.path.splitext(os.path.basename(path.rstrip("/")))[0] or path
