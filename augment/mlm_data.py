"""Text and masks for `distiller mlm-adapt`: the corpus read through the one reader, deduplicated,
with text that must never be trained on removed; BERT-style masking; length-bucketed batches.

Texts: every record's text_a and text_b (both sides of a pair) are sentences of the corpus.
Two texts are the same when they match after case folding and whitespace collapsing; the first
spelling seen is kept. Excluded and held-out texts are matched the same way, so a dev sentence
never reaches training whatever its case or spacing.

Masking (Devlin et al. 2019): each unit (a token, or with whole-word masking every piece of a
word) is chosen with probability ``mask_prob``; a chosen unit becomes [MASK] with probability 0.8,
random vocabulary tokens with 0.1, and stays as it is with 0.1; the loss is taken at the chosen
positions only. Every draw comes from a generator seeded by (seed, purpose, epoch, text index),
so masks never depend on batch composition or on where a run was interrupted. Held-out masks
are fixed (seeded once, epoch-independent) and always [MASK]: what the contextual augmenter asks.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from distiller.common.config import Allowed, Rule, Wording, setting, validate
from distiller.common.errors import UsageError
from distiller.common.seeding import make_numpy_rng, make_rng
from distiller.taskdata import builtin_task
from distiller.taskdata.reader import read_records
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.resolve import default_task_name
from distiller.taskdata.sources import resolve_inputs
from distiller.taskdata.task import Task

__all__ = ["TextSource", "Corpus", "text_key", "collect_texts", "infer_source_task",
           "MaskingConfig", "mask_units", "apply_masks", "epoch_batches", "IGNORE"]

log = logging.getLogger(__name__)
IGNORE = -100  # label of a position the loss skips (torch's cross_entropy ignore_index)


def text_key(text: str) -> str:
    """The identity of a text for dedupe and exclusion: case-folded, whitespace collapsed."""
    return " ".join(text.split()).casefold()


@dataclasses.dataclass(frozen=True)
class TextSource:
    """An input spec (file, glob, saved dataset, hf:NAME) and the task that says where its texts
    are (None: each file's task is inferred from its path; see `infer_source_task`)."""

    spec: str
    task: object = None


def infer_source_task(inp) -> object:
    """The task of one resolved input when no task flags were given: a plain .txt file is one
    text per line; a file in a folder named after a built-in task (glue/SST-2/train.tsv) is that
    task. Raises ValueError naming the flags to give otherwise."""
    if inp.fmt == "text":
        stem = os.path.splitext(os.path.basename(inp.name))[0] or "text"
        return Task(name=stem, text_a=0, format="text")
    task = builtin_task(default_task_name(inp.url if inp.fmt != "hub" else "hf:" + inp.url))
    if task is None:
        raise UsageError(f"input {inp.name!r}: cannot tell which column holds its text; give "
                         "--task NAME (a built-in task) or --text-a COLUMN [--text-b COLUMN], "
                         "or use a .txt file with one sentence per line")
    return task


def _records(source: TextSource):
    """(input name, record or DeadLetter) for every row of a source."""
    if source.task is not None:
        inputs = resolve_inputs(source.spec, source.task.format)
        yield from ((source.spec, r) for r in read_records(inputs, source.task, labelled=False))
        return
    for inp in resolve_inputs(source.spec):
        task = infer_source_task(inp)
        log.info("%s: read as task %s", inp.name, task.name)
        yield from ((inp.name, r) for r in read_records([inp], task, labelled=False))


def _texts(sources: Sequence[TextSource], counts: Counter, dead: Counter) -> Iterable[str]:
    for source in sources:
        for _, rec in _records(source):
            if isinstance(rec, DeadLetter):
                dead[rec.reason.split(":")[0]] += 1
                continue
            counts["records"] += 1
            for side in ("text_a", "text_b"):
                text = rec.get(side)
                if text and text.strip():
                    yield text


@dataclasses.dataclass
class Corpus:
    """Training and held-out texts plus what reading them found (counts for the summary)."""

    train: List[str]
    held_out: List[str]
    stats: Dict[str, int]
    dead_letters: Dict[str, int]


def collect_texts(inputs: Sequence[TextSource], *, exclude: Sequence[TextSource] = (),
                  held_out: Sequence[TextSource] = (), held_out_fraction: float = 0.02,
                  held_out_max: Optional[int] = 2000, min_words: int = 1, seed: int = 0
                  ) -> Corpus:
    """Read, deduplicate and split the corpus (see the module docstring).

    held_out: texts to measure on (never trained on); when none are given, a seeded
    `held_out_fraction` of the corpus is held out. held_out_max caps the held-out texts (a seeded
    choice) so an evaluation stays cheap. Texts with fewer than `min_words` words are dropped.
    """
    counts: Counter = Counter()
    dead: Counter = Counter()
    banned = {text_key(t) for t in _texts(exclude, Counter(), Counter())}
    counts["exclude_texts"] = len(banned)
    evaluation: Dict[str, str] = {}
    for t in _texts(held_out, Counter(), dead):
        evaluation.setdefault(text_key(t), t)
    train: Dict[str, str] = {}
    for t in _texts(inputs, counts, dead):
        counts["texts_read"] += 1
        key = text_key(t)
        if len(key.split()) < min_words:
            counts["too_short"] += 1
        elif key in banned:
            counts["excluded"] += 1
        elif key in evaluation and held_out:
            counts["held_out_overlap"] += 1
        elif key in train:
            counts["duplicates"] += 1
        else:
            train[key] = t
    if not held_out:
        rng = make_rng(seed, "mlm-held-out")
        keys = sorted(train)
        n = max(1, round(held_out_fraction * len(keys))) if len(keys) > 1 else 0
        for key in rng.sample(keys, n):
            evaluation[key] = train.pop(key)
    if held_out_max is not None and len(evaluation) > held_out_max:
        rng = make_rng(seed, "mlm-held-out-cap")
        evaluation = {k: evaluation[k] for k in sorted(rng.sample(sorted(evaluation),
                                                                  held_out_max))}
    if not train:
        raise UsageError("no training text left: every text was empty, too short, excluded or "
                         f"held out ({dict(counts)}); check --input/--exclude/--eval")
    if not evaluation:
        raise UsageError("no held-out text to measure on: give --eval or a corpus of at least "
                         "two texts")
    counts.update(train_texts=len(train), held_out_texts=len(evaluation))
    return Corpus(train=list(train.values()), held_out=list(evaluation.values()),
                  stats=dict(counts), dead_letters=dict(dead))


_SHARE = Allowed(kind="number", low=0, high=1)
_MASKING = Wording(field="mlm-adapt masking {key!r}", whole="mlm-adapt masking")
_MASKING_RULES = (
    Rule("a share of the chosen units", key="random_frac",
         holds=lambda m: m.mask_frac + m.random_frac <= 1.0,
         says="mask_frac + random_frac must be <= 1 (mask_frac is {self.mask_frac})"),
)


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    """BERT masking: choose units with mask_prob; of them mask_frac -> [MASK], random_frac ->
    a random token, the rest kept. whole_word: a unit is all the pieces of one word."""

    mask_prob: float = setting(0.15, _SHARE, low_open=True)  # above 0: else nothing is learned
    mask_frac: float = setting(0.8, _SHARE)
    random_frac: float = setting(0.1, _SHARE)
    whole_word: bool = setting(False, kind="bool")

    def __post_init__(self) -> None:
        validate(self, _MASKING_RULES, _MASKING)   # each field as declared, then the rule


def mask_units(word_ids: Sequence[Optional[int]], whole_word: bool) -> List[List[int]]:
    """Positions grouped into masking units: one per token, or one per word (all its pieces).
    word_ids: per position the word index from a fast tokenizer, None for special tokens."""
    units: List[List[int]] = []
    last = None
    for pos, word in enumerate(word_ids):
        if word is None:
            last = None
            continue
        if whole_word and units and word == last:
            units[-1].append(pos)
        else:
            units.append([pos])
        last = word
    return units


def apply_masks(ids: Sequence[int], units: Sequence[Sequence[int]], cfg: MaskingConfig, rng, *,
                mask_id: int, random_ids, always_mask: bool = False
                ) -> Tuple[List[int], List[int]]:
    """(input ids, labels) of one text: labels hold the original id at chosen positions and
    IGNORE elsewhere. rng: a numpy Generator; random_ids: ids a random replacement is drawn from
    (a 1-d numpy array); always_mask: every chosen unit becomes [MASK] (held-out masks)."""
    inputs, labels = list(ids), [IGNORE] * len(ids)
    if not units:
        return inputs, labels
    chosen = rng.random(len(units)) < cfg.mask_prob
    actions = rng.random(len(units))
    for unit, pick, action in zip(units, chosen, actions):
        if not pick:
            continue
        for pos in unit:
            labels[pos] = ids[pos]
        if always_mask or action < cfg.mask_frac:
            for pos in unit:
                inputs[pos] = mask_id
        elif action < cfg.mask_frac + cfg.random_frac:
            for pos in unit:
                inputs[pos] = int(random_ids[rng.integers(len(random_ids))])
    return inputs, labels


def example_rng(seed: int, purpose: str, epoch: int, index: int):
    """The generator of one text's masks: independent of batches and of interruptions."""
    return make_numpy_rng(seed, purpose, epoch, index)


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  *, bucket: int = 50) -> List[List[int]]:
    """The batches of one epoch (indices into `lengths`), seeded by (seed, epoch): a shuffle,
    then within windows of `bucket` batches the texts sorted by length (little padding), then
    the batches shuffled again."""
    rng = make_numpy_rng(seed, "mlm-order", epoch)
    order = rng.permutation(len(lengths)).tolist()
    window = batch_size * bucket
    batches: List[List[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches)).tolist()]
