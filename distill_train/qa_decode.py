"""Decoding start/end logits of context windows into answers (BERT's run_squad procedure).

For each window: the `n_best` highest start logits and the `n_best` highest end logits among its
context tokens give candidate spans (end >= start, at most `max_answer_length` tokens, a start
token only in the window where it has the most context on both sides, as BERT does for
overlapping windows); a span's score is start logit + end logit. A question's answer is its best
candidate over all its windows, turned into characters through the token offsets of its context;
its null score is the smallest [CLS] score (start + end at the "no answer" position) over its
windows, and its null odds are null score - best span score (SQuAD 2.0: answer "" above a
threshold, distiller.taskdata.squad_metrics).

Inputs: window rows of a corpus (``id``, ``window``, ``ctx_start``, ``ctx_end``, ``ctx_first``,
``cls_index``; distiller.builders.teacher.qa_windows) with their logits float[L, 2], and question
rows
(``context``,
``offsets``, flat character spans of the context's tokens); an augmented copy's question is its
parent's (``parent_id``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from distiller.common.errors import MissingEntryError, UsageError

__all__ = ["DecodeConfig", "Span", "decode_spans", "question_of"]


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """n_best: start and end candidates per window; max_answer_length: tokens per answer."""

    n_best: int = 20
    max_answer_length: int = 30

    def __post_init__(self) -> None:
        for name in ("n_best", "max_answer_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Span:
    """A question's decoded answer: text, character span in the context, its score, and the
    null ([CLS]) score; odds = null_score - score."""

    text: str
    start: int
    end: int
    score: float
    null_score: float

    @property
    def odds(self) -> float:
        return self.null_score - self.score if math.isfinite(self.score) else 1e9


def question_of(row: Mapping[str, Any], questions: Mapping[str, Mapping[str, Any]]
                ) -> Mapping[str, Any]:
    """A window row's question row (an augmented copy's is its parent's)."""
    found = questions.get(row["id"])
    if found is None and row.get("parent_id") is not None:
        found = questions.get(row["parent_id"])
    if found is None:
        raise MissingEntryError(f"no question row for {row['id']!r}: the corpus's questions "
                                "file lacks it (build the corpus again)")
    return found


def _max_context(windows: List[Tuple[int, int]]) -> Dict[int, np.ndarray]:
    """window index -> bool [n] over its context tokens: whether the window is the one where
    that token has the most context (min of left and right context, + 0.01 x window size)."""
    if len(windows) == 1:
        return {0: np.ones(windows[0][1], dtype=bool)}
    total = max(first + n for first, n in windows)
    best = np.full(total, -np.inf)
    owner = np.zeros(total, dtype=np.int64)
    for w, (first, n) in enumerate(windows):
        j = np.arange(first, first + n)
        score = np.minimum(j - first, first + n - 1 - j) + 0.01 * n
        better = score > best[j]
        best[j[better]], owner[j[better]] = score[better], w
    return {w: owner[first:first + n] == w for w, (first, n) in enumerate(windows)}


def _window_best(logits: np.ndarray, row: Mapping[str, Any], allowed_start: np.ndarray,
                 cfg: DecodeConfig) -> Tuple[float, int, int]:
    """(score, start, end) of a window's best candidate (context-token indices in the window),
    or (-inf, -1, -1)."""
    s0, s1 = int(row["ctx_start"]), int(row["ctx_end"])
    start_l, end_l = logits[s0:s1, 0], logits[s0:s1, 1]
    k = min(cfg.n_best, s1 - s0)
    starts = np.argsort(-start_l, kind="stable")[:k]
    starts = starts[allowed_start[starts]]
    ends = np.argsort(-end_l, kind="stable")[:k]
    if not len(starts):
        return -math.inf, -1, -1
    score = start_l[starts][:, None] + end_l[ends][None, :]          # [k_s, k_e]
    length = ends[None, :] - starts[:, None]
    score = np.where((length >= 0) & (length < cfg.max_answer_length), score, -np.inf)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    if not np.isfinite(score[i, j]):
        return -math.inf, -1, -1
    return float(score[i, j]), int(starts[i]), int(ends[j])


def decode_spans(rows: Sequence[Mapping[str, Any]], logits: Sequence[np.ndarray],
                 questions: Mapping[str, Mapping[str, Any]], cfg: DecodeConfig = DecodeConfig()
                 ) -> Dict[str, Span]:
    """{record id: Span} over window rows and their logits [L, 2] (rows of one record may be
    anywhere in the list)."""
    if len(rows) != len(logits):
        raise UsageError(f"{len(rows)} window rows but {len(logits)} logits")
    groups: Dict[str, List[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["id"], []).append(i)
    out: Dict[str, Span] = {}
    for rid, members in groups.items():
        members.sort(key=lambda i: int(rows[i]["window"]))
        question = question_of(rows[members[0]], questions)
        offsets = np.asarray(question["offsets"], dtype=np.int64).reshape(-1, 2)
        spans = [(int(rows[i]["ctx_first"]), int(rows[i]["ctx_end"]) - int(rows[i]["ctx_start"]))
                 for i in members]
        allowed = _max_context(spans)
        best = (-math.inf, 0, 0)
        null = math.inf
        for w, i in enumerate(members):
            z = np.asarray(logits[i], dtype=np.float64)
            cls = int(rows[i]["cls_index"])
            null = min(null, float(z[cls, 0] + z[cls, 1]))
            score, s, e = _window_best(z, rows[i], allowed[w], cfg)
            if score > best[0]:
                first = spans[w][0]
                best = (score, int(offsets[first + s, 0]), int(offsets[first + e, 1]))
        score, start, end = best
        text = question["context"][start:end] if math.isfinite(score) else ""
        out[rid] = Span(text=text, start=start, end=end, score=score, null_score=null)
    return out
