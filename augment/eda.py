"""EDA word operations over real WordNet: synonym replacement, random insertion, swap, deletion.

Two ways to use them:

- single operations (``eda_synonym``, ``eda_insert``, ``eda_swap``, ``eda_delete``) changing a
  fraction ``aug_p`` of the words, as the Distiller study used random swap. Our defaults edit only
  the chosen words' character spans, so case, punctuation and spacing elsewhere are kept;
- ``eda``: EDA's published algorithm (Wei & Zou 2019) as a named mode: per-operation counts
  n = max(1, int(alpha * words)), deletion with probability p_rd per word, and its copy
  allocation (int(copies/4)+1 candidates per operation, shuffled, the first ``copies`` kept).
  With ``text="reference"`` the text is first normalised as EDA does (lower-case, letters and
  spaces only) and synonym replacement replaces every occurrence of the chosen word, exactly as
  in EDA's code; with ``text="preserve"`` (default) the same counts/allocation are applied with our
  span-preserving edits.

Differences from EDA's code, on purpose: stop words and names (capitalised words inside a
sentence) are never replaced or used as insertion sources (EDA inserts synonyms of any word);
candidate lists are sorted before sampling; every choice comes from a per-job generator rather
than the global ``random`` state.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import List, Optional, Sequence

from distiller.common.errors import UsageError
from distiller.common.seeding import make_rng

from .base import Job, check_choice, check_fraction, check_positive
from .wordnet import synonyms
from .words import (STOP_WORDS, Word, apply_edits, editable, is_clitic, looks_like_name,
                    match_case, n_to_change, split_words)

__all__ = ["EdaOpConfig", "EdaOp", "EdaConfig", "Eda", "OPS", "apply_op"]

OPS = ("synonym", "insert", "swap", "delete")


@dataclasses.dataclass(frozen=True)
class EdaOpConfig:
    """One EDA operation applied to a fraction aug_p of the words (at least aug_min words)."""

    op: str = "swap"
    aug_p: float = 0.3
    aug_min: int = 1
    aug_max: Optional[int] = None

    def __post_init__(self) -> None:
        check_choice("EdaOpConfig", "op", self.op, OPS)
        check_fraction("EdaOpConfig", "aug_p", self.aug_p)
        check_positive("EdaOpConfig", "aug_min", self.aug_min, allow_zero=True)
        if self.aug_max is not None:
            check_positive("EdaOpConfig", "aug_max", self.aug_max)


def _synonym_edits(text: str, words: List[Word], k: int, rng) -> list:
    slots = [i for i, w in enumerate(words) if editable(text, w, skip_stop_words=True)
             and not looks_like_name(text, w) and synonyms(w.text)]
    edits = []
    for i in sorted(rng.sample(slots, min(k, len(slots)))):
        w = words[i]
        edits.append((w.start, w.end, match_case(w.text, rng.choice(synonyms(w.text)))))
    return edits


def _insert_edits(text: str, words: List[Word], k: int, rng) -> list:
    sources = [w for w in words if editable(text, w, skip_stop_words=True)
               and not looks_like_name(text, w) and synonyms(w.text)]
    if not sources:
        return []
    edits = []
    for _ in range(k):
        new = rng.choice(synonyms(rng.choice(sources).text))
        gap = rng.randrange(len(words) + 1)  # before word `gap`, or after the last word
        if gap < len(words):
            at = words[gap].start
            edits.append((at, at, new + " "))
        else:
            at = words[-1].end
            edits.append((at, at, " " + new))
    return edits


def _swap_edits(text: str, words: List[Word], k: int, rng) -> list:
    order = list(range(len(words)))
    if len(words) < 2:
        return []
    n = len(words)
    for _ in range(k):
        i = rng.randrange(n)
        j = (i + 1 + rng.randrange(n - 1)) % n  # a different position, uniformly
        order[i], order[j] = order[j], order[i]
    return [(w.start, w.end, words[order[i]].text) for i, w in enumerate(words) if order[i] != i]


def _delete_edits(text: str, words: List[Word], k: int, rng) -> list:
    k = min(k, len(words) - 1)  # never delete every word
    if k <= 0:
        return []
    edits = []
    for i in sorted(rng.sample(range(len(words)), k)):
        w = words[i]
        end = w.end
        while end < len(text) and text[end] == " ":  # take the following spaces with it
            end += 1
        if end == len(text) and i > 0:  # last word: take the preceding spaces instead
            start = w.start
            while start > words[i - 1].end and text[start - 1] == " ":
                start -= 1
            edits.append((start, w.end, ""))
        else:
            edits.append((w.start, end, ""))
    return edits


_EDITS = {"synonym": _synonym_edits, "insert": _insert_edits, "swap": _swap_edits,
          "delete": _delete_edits}


def apply_op(op: str, text: str, k: int, rng, words: Optional[List[Word]] = None) -> str:
    """Apply EDA operation `op` k times (k words) to text with span edits."""
    if words is None:
        words = split_words(text)
    words = [w for w in words if not is_clitic(text, w)]
    if not words or k <= 0:
        return text
    edits = _EDITS[op](text, words, k, rng)
    # Deletions next to each other can produce overlapping whitespace spans: merge them.
    merged: list = []
    for start, end, new in sorted(edits):
        if merged and start < merged[-1][1] and not new and not merged[-1][2]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), "")
        else:
            merged.append((start, end, new))
    return apply_edits(text, merged)


class EdaOp:
    """A single EDA operation at aug_p (``eda_swap`` etc.)."""

    VERSION = "eda-op-1"

    def __init__(self, config: EdaOpConfig) -> None:
        self.config = config
        self.name = f"eda_{config.op}"

    def load(self) -> None:
        if self.config.op in ("synonym", "insert"):
            synonyms("good")  # loads WordNet now, with a clear error if it is missing

    def augment(self, jobs: Sequence[Job]):
        c = self.config
        out, stats = [], Counter()
        for job in jobs:
            rng = make_rng(job.seed, self.name)
            words = split_words(job.text)
            k = n_to_change(c.aug_p, len(words), c.aug_min, c.aug_max)
            new = apply_op(c.op, job.text, k, rng, words)
            stats["noop" if new == job.text else "changed"] += 1
            out.append(new)
        return out, stats


@dataclasses.dataclass(frozen=True)
class EdaConfig:
    """EDA's published algorithm: alphas per operation and its copy allocation."""

    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1
    text: str = "preserve"

    def __post_init__(self) -> None:
        for field in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd"):
            check_fraction("EdaConfig", field, getattr(self, field), allow_zero=True)
        if not any((self.alpha_sr, self.alpha_ri, self.alpha_rs, self.p_rd)):
            raise UsageError("EdaConfig: at least one of alpha_sr, alpha_ri, alpha_rs, p_rd must "
                             "be > 0, got all 0")
        check_choice("EdaConfig", "text", self.text, ("preserve", "reference"))


def eda_clean(text: str) -> str:
    """EDA's get_only_chars: lower-case, letters and single spaces only."""
    text = text.replace("\u2019", "").replace("'", "").replace("-", " ").replace("\t", " ")
    text = text.replace("\n", " ").lower()
    text = "".join(c if c in "qwertyuiopasdfghjklzxcvbnm " else " " for c in text)
    return re.sub(" +", " ", text).strip()


class Eda:
    """EDA reference mode (``eda``): one operation per copy from EDA's allocation."""

    VERSION = "eda-ref-1"

    def __init__(self, config: EdaConfig) -> None:
        self.config = config
        self.name = "eda"

    def load(self) -> None:
        synonyms("good")

    def allocation(self, record_seed: int, copies: int) -> List[str]:
        """EDA's copy allocation: int(copies/4)+1 candidates per enabled op, shuffled."""
        c = self.config
        per_op = int(copies / 4) + 1
        enabled = [op for op, a in zip(OPS, (c.alpha_sr, c.alpha_ri, c.alpha_rs, c.p_rd)) if a]
        alloc = [op for op in enabled for _ in range(per_op)]
        make_rng(record_seed, "eda-allocation").shuffle(alloc)
        return alloc

    def _one(self, job: Job, rng) -> str:
        c = self.config
        op = self.allocation(job.record_seed, job.copies)
        op = op[job.copy % len(op)]
        text = eda_clean(job.text) if c.text == "reference" else job.text
        words = split_words(text)
        if not words:
            return text
        n = len(words)
        if op == "delete":  # EDA: each word deleted with probability p_rd, never all
            keep = [rng.random() > c.p_rd for _ in words]
            if not any(keep):
                keep[rng.randrange(n)] = True
            k_del = [i for i, kept in enumerate(keep) if not kept]
            return apply_edits(text, _delete_spans(text, words, k_del)) if k_del else text
        alpha = {"synonym": c.alpha_sr, "insert": c.alpha_ri, "swap": c.alpha_rs}[op]
        k = max(1, int(alpha * n))
        if op == "synonym" and c.text == "reference":
            return _replace_all_occurrences(text, words, k, rng)
        return apply_op(op, text, k, rng)

    def augment(self, jobs: Sequence[Job]):
        out, stats = [], Counter()
        for job in jobs:
            new = self._one(job, make_rng(job.seed, self.name))
            stats["noop" if new == job.text else "changed"] += 1
            out.append(new)
        return out, stats


def _delete_spans(text: str, words: List[Word], indices: List[int]) -> list:
    """Edits deleting words[indices] with the spaces after them (before, for a final word)."""
    spans = []
    for i in indices:
        w = words[i]
        nxt = words[i + 1].start if i + 1 < len(words) else None
        if nxt is not None and text[w.end:nxt].strip() == "":
            spans.append((w.start, nxt, ""))
        else:
            prev = words[i - 1].end if i > 0 else 0
            start = w.start
            while start > prev and text[start - 1] == " ":
                start -= 1
            spans.append((start, w.end, ""))
    merged: list = []
    for s, e, _ in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]), "")
        else:
            merged.append((s, e, ""))
    return merged


def _replace_all_occurrences(text: str, words: List[Word], k: int, rng) -> str:
    """EDA's synonym_replacement: up to k distinct words, every occurrence replaced."""
    distinct = sorted({w.text for w in words if w.text not in STOP_WORDS})
    rng.shuffle(distinct)
    chosen, replaced = {}, 0
    for word in distinct:
        syns = synonyms(word)
        if syns:
            chosen[word] = rng.choice(syns)
            replaced += 1
        if replaced >= k:
            break
    return apply_edits(text, [(w.start, w.end, chosen[w.text]) for w in words
                              if w.text in chosen])


def _op_factory(op: str):
    def build(config: EdaOpConfig) -> EdaOp:
        if config.op != op:
            raise UsageError(f"augmenter eda_{op} always applies op={op!r}, got op={config.op!r}; "
                             f"use eda_{config.op} instead")
        return EdaOp(config)
    return build


def _op_config(op: str) -> type:
    """The config class of augmenter eda_OP: EdaOpConfig with op fixed to OP."""
    return dataclasses.make_dataclass(
        f"Eda{op.title()}Config", [("op", str, dataclasses.field(default=op))],
        bases=(EdaOpConfig,), frozen=True)


# this module's augmenters, {name: (config class, factory)}, for the registry (registry.py)
AUGMENTERS = {**{f"eda_{op}": (_op_config(op), _op_factory(op)) for op in OPS},
              "eda": (EdaConfig, Eda)}
