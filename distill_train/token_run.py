"""Assembling a token-level run — a masked or causal LM student distilled from a token-level
cache — into the parts the training loop (train.py) runs, as assemble.assemble does for
sentence-level tasks.

The trainer calls `assemble_tokens` when `token_source.token_problem` finds the run's teacher
token-level (the cache's problem type is masked_lm or causal_lm). The student is built as an LM
(lm_student.py) and refused before any training when its vocabulary is not the teacher's; the
batches are token_data's (the cache's corpus rows, their teacher rows read through the source);
the objective is token_objective's; dev sets are scored by lm_eval (top-1 and perplexity; the
best epoch is chosen by top-1 for masked_lm, perplexity for causal_lm).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Dict, Mapping, Optional, Sequence, Tuple

from distiller.builders.cache.store import TeacherCache
from distiller.common.errors import UsageError

from .assemble import RunParts, _pad_id
from .data import Batches, batch_lengths
from .lm_eval import LOWER_IS_BETTER, PRIMARY_METRIC, evaluate_lm_sets
from .lm_student import build_lm_student, check_lm_vocab, output_vocab_size
from .token_data import token_fetcher
from .token_objective import TOKEN_PRED_LOSSES, TokenObjective
from .token_source import CacheTokens

__all__ = ["LMRun", "assemble_tokens"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LMRun:
    """What the loop needs to know of a token-level run: how to score the dev sets and which of
    their metrics selects the best epoch (and in which direction)."""

    problem_type: str

    @property
    def metric(self) -> str:
        return PRIMARY_METRIC[self.problem_type]

    def better(self, value: float, best: float) -> bool:
        return value < best if self.metric in LOWER_IS_BETTER else value > best

    def evaluate(self, model, dev_sets, device, *, autocast=None
                 ) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
        return evaluate_lm_sets(model, dev_sets, device, autocast=autocast)


def _check_config(config) -> None:
    if config.inter_loss != "none":
        raise UsageError(f"inter_loss {config.inter_loss!r}: a token-level cache keeps no "
                         "hidden states or attention maps; use inter_loss none")
    if config.pred_loss not in TOKEN_PRED_LOSSES:
        raise UsageError(f"pred_loss {config.pred_loss!r} does not apply to a masked or causal "
                         f"LM teacher: use one of {TOKEN_PRED_LOSSES} (none: the LM loss alone)")


def _rows(config, source, name: str):
    read = getattr(source, "read_corpus", None) or TeacherCache.open(config.cache).read_corpus
    return read(name)


def assemble_tokens(config, problem_type: str, *, provider=None,
                    train_rows: Optional[Sequence[Mapping]] = None,
                    dev_rows: Optional[Sequence[Mapping]] = None) -> RunParts:
    """Student, objective and batches of a token-level run. `provider` (a source with
    problem_type, tokens, vocab_size, get_many; token_data.InMemoryTokens, token_online.
    OnlineSparseTeacher) and corpus rows (each with a `key`) replace the cache (tests, the
    online baseline)."""
    _check_config(config)
    source = provider if provider is not None else CacheTokens(config.cache)
    if source.problem_type != problem_type:
        raise UsageError(f"the teacher is a {source.problem_type} one, the run was set up for "
                         f"{problem_type}")
    model, tokenizer = build_lm_student(config, problem_type)
    check_lm_vocab(model, tokenizer, vocab_size=source.vocab_size,
                   tokens=getattr(source, "vocab", None),
                   source=getattr(source, "vocab_source", ""), student=config.student)
    if train_rows is None:
        train_rows = _rows(config, source, config.train_corpus)
    if config.limit_train:
        train_rows = list(train_rows)[:config.limit_train]
    if not train_rows:
        raise UsageError(f"training corpus {config.train_corpus!r} is empty")
    if dev_rows is not None:
        dev_sets = [((config.dev_corpora or ("dev",))[0], dev_rows)]
    else:
        dev_sets = [(name, _rows(config, source, name)) for name in config.dev_corpora]
    for name, rows in dev_sets:
        if not rows:
            raise UsageError(f"dev corpus {name!r} is empty: build it from a file that has "
                             "rows, or leave out --dev-corpus")
    fetch = token_fetcher(source, spec=source.tokens, pad_id=_pad_id(tokenizer),
                          embeds=int(model.get_input_embeddings().weight.shape[0]),
                          vocab_size=output_vocab_size(model))
    train = Batches(train_rows, fetch, batch_size=config.batch_size, shuffle=True,
                    seed=config.seed, prefetch=bool(getattr(source, "prefetch_safe", False)),
                    lengths=batch_lengths(config.batching, train_rows, source))
    dev = [(name, Batches(rows, fetch, batch_size=config.eval_batch_size, shuffle=False))
           for name, rows in dev_sets]
    objective = TokenObjective(form=source.tokens.kind, loss=config.pred_loss,
                               temperature=config.temperature, scale_by_t2=config.scale_by_t2,
                               w_kd=config.w_kd, w_gold=config.w_gold)
    log.info("token-level %s run (%s): %d training rows, dev sets %s", problem_type,
             source.tokens, len(train_rows), {n: len(r) for n, r in dev_sets})
    return RunParts(model, tokenizer, objective, train, dev, lm=LMRun(problem_type))
