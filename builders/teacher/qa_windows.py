"""Context windows for extractive question answering: one (question, context) → windows.

A window is ``[CLS] question [SEP] context tokens [SEP]`` (or whatever the tokenizer's pair
template is) of at most `max_length` tokens. Its context tokens are a contiguous run of the whole
context's tokens: window w starts at context token ``w * step`` with ``step = min(doc_stride,
room)`` (room: the context tokens a window holds beside the question), so consecutive windows
overlap by ``room - step`` tokens and together cover every context token. `doc_stride` is the
distance between window starts, as in BERT's run_squad.py and the study (Hugging Face's
run_qa.py passes its --doc_stride as the overlap instead). Questions longer than
`max_query_length` tokens are cut there (and counted as truncated).

The cutting is the fast tokenizer's own overflow mechanism (so any Hugging Face tokenizer with a
pair template works); every window's context offsets are checked against the others', so a
tokenizer that cut differently is an error, not a silent misalignment. What a window carries:

    input_ids int32[L], token_type_ids int8[L]
    ctx_start, ctx_end   its context tokens' positions [ctx_start, ctx_end) in the window
    ctx_first            the index of its first context token among the context's tokens
    cls_index            the position a "no answer" points at (the [CLS] token)

and the question's context `offsets` (int32[n, 2], character span of every context token)
map any window position back to characters: ``offsets[ctx_first + (pos - ctx_start)]``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

__all__ = ["WINDOWS_VERSION", "WindowSettings", "Window", "Windowed", "make_windows",
           "gold_span", "window_label", "window_row", "question_row"]

WINDOWS_VERSION = "qa-windows/v1"   # bumped when the windows of the same input change


@dataclasses.dataclass(frozen=True)
class WindowSettings:
    """max_length: tokens per window, special tokens included; doc_stride: context tokens between
    the starts of consecutive windows; max_query_length: question tokens kept."""

    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64

    def __post_init__(self) -> None:
        for name in ("max_length", "doc_stride", "max_query_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"window setting {name} must be a positive integer, got "
                                 f"{value!r}")
        if self.max_query_length >= self.max_length - 2:
            raise UsageError(f"max_query_length {self.max_query_length} leaves no room for the "
                             f"context in windows of max_length {self.max_length}")

    def tokenization(self, question_first: bool = True) -> Dict[str, Any]:
        """The settings that decide a window's tokens (part of every cache key)."""
        return {"max_length": self.max_length, "doc_stride": self.doc_stride,
                "max_query_length": self.max_query_length, "add_special_tokens": True,
                "truncation": "only_second" if question_first else "only_first",
                "windows": WINDOWS_VERSION}


@dataclasses.dataclass(frozen=True)
class Window:
    index: int
    input_ids: np.ndarray        # int32 [L]
    token_type_ids: np.ndarray   # int8 [L]
    ctx_start: int
    ctx_end: int
    ctx_first: int
    cls_index: int


@dataclasses.dataclass(frozen=True)
class Windowed:
    """The windows of one (question, context) and the character span of every context token."""

    windows: Tuple[Window, ...]
    offsets: np.ndarray          # int32 [n_context_tokens, 2]
    question_truncated: bool


def _question_first(tokenizer) -> bool:
    # Models padded on the left (XLNet) put the context first, as transformers' run_qa does.
    return getattr(tokenizer, "padding_side", "right") == "right"


def _cut_questions(tokenizer, questions: List[str], limit: int) -> Tuple[List[str], List[bool]]:
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out, cut = [], []
    for q, ids, offsets in zip(questions, enc["input_ids"], enc["offset_mapping"]):
        if len(ids) > limit:
            out.append(q[:offsets[limit - 1][1]])
            cut.append(True)
        else:
            out.append(q)
            cut.append(False)
    return out, cut


def make_windows(tokenizer, pairs: Sequence[Tuple[str, str]], settings: WindowSettings
                 ) -> List[Windowed]:
    """The windows of each (question, context), in order. Needs a fast tokenizer (offsets)."""
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(f"question answering needs a fast tokenizer (character offsets); "
                         f"{type(tokenizer).__name__} is not one")
    if not pairs:
        return []
    questions, cut = _cut_questions(tokenizer, [q for q, _ in pairs], settings.max_query_length)
    lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    special = tokenizer.num_special_tokens_to_add(pair=True)
    first = _question_first(tokenizer)
    groups: Dict[int, List[int]] = {}
    for i, n in enumerate(lengths):     # one tokenizer call per question length (same overlap)
        groups.setdefault(n, []).append(i)
    out: List[Optional[Windowed]] = [None] * len(pairs)
    for n_q, members in sorted(groups.items()):
        room = settings.max_length - n_q - special
        if room < 1:
            raise UsageError(f"a question of {n_q} tokens leaves no room for the context in "
                             f"windows of max_length {settings.max_length}: raise max_length or "
                             "lower max_query_length")
        step = min(settings.doc_stride, room)
        qs = [questions[i] for i in members]
        cs = [pairs[i][1] for i in members]
        enc = tokenizer(qs if first else cs, cs if first else qs,
                        truncation="only_second" if first else "only_first",
                        max_length=settings.max_length, stride=room - step,
                        return_overflowing_tokens=True, return_offsets_mapping=True,
                        return_token_type_ids=True)
        per_sample: Dict[int, List[int]] = {}
        for k, sample in enumerate(enc["overflow_to_sample_mapping"]):
            per_sample.setdefault(int(sample), []).append(k)
        for sample, ks in per_sample.items():
            i = members[sample]
            out[i] = _assemble(tokenizer, enc, ks, step, 1 if first else 0, cut[i], pairs[i])
    return out  # type: ignore[return-value]


def _assemble(tokenizer, enc, ks: List[int], step: int, ctx_seq: int, cut: bool,
              pair: Tuple[str, str]) -> Windowed:
    windows, offsets = [], []
    cls_id = tokenizer.cls_token_id
    for w, k in enumerate(ks):
        ids = enc["input_ids"][k]
        seq = enc.sequence_ids(k)
        ctx = [p for p, s in enumerate(seq) if s == ctx_seq]
        if not ctx or ctx[-1] - ctx[0] + 1 != len(ctx):
            raise UsageError(f"window {w} of question {pair[0][:60]!r} has no contiguous "
                             "context tokens: the tokenizer's pair template is not supported")
        spans = [tuple(enc["offset_mapping"][k][p]) for p in ctx]
        first = w * step
        overlap = spans[:max(0, len(offsets) - first)]
        if first > len(offsets) or overlap != offsets[first:first + len(overlap)]:
            raise UsageError(f"the tokenizer cut the context of question {pair[0][:60]!r} into "
                             "windows that do not line up (window starts every "
                             f"{step} tokens expected)")
        offsets.extend(spans[len(overlap):])
        tts = enc["token_type_ids"][k] if "token_type_ids" in enc else [0] * len(ids)
        cls_index = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
        windows.append(Window(index=w, input_ids=np.asarray(ids, dtype=np.int32),
                              token_type_ids=np.asarray(tts, dtype=np.int8),
                              ctx_start=ctx[0], ctx_end=ctx[-1] + 1, ctx_first=first,
                              cls_index=cls_index))
    return Windowed(windows=tuple(windows), offsets=np.asarray(offsets, dtype=np.int32)
                    .reshape(-1, 2), question_truncated=cut)


def gold_span(window: Window, offsets: np.ndarray, start_char: int, end_char: int
              ) -> Tuple[int, int]:
    """Token positions (start, end) in `window` of the answer at characters [start_char,
    end_char); (cls_index, cls_index) when the window does not hold the whole answer."""
    n = window.ctx_end - window.ctx_start
    spans = offsets[window.ctx_first:window.ctx_first + n]
    if n == 0 or start_char < spans[0, 0] or end_char > spans[-1, 1]:
        return window.cls_index, window.cls_index
    start = int(np.searchsorted(spans[:, 0], start_char, side="right")) - 1
    end = int(np.searchsorted(spans[:, 1], end_char, side="left"))
    return window.ctx_start + max(start, 0), window.ctx_start + min(end, n - 1)


def window_label(record: Mapping[str, Any], window: Window, offsets: np.ndarray
                 ) -> Optional[List[int]]:
    """The training target [start, end] of a window: the first gold answer's tokens, or the
    [CLS] position for a question without an answer or a window without it; None unlabelled."""
    if record.get("answers") is None:
        return None
    if record.get("is_impossible") or not record["answers"]:
        return [window.cls_index, window.cls_index]
    ans = record["answers"][0]
    start = int(ans["answer_start"])
    return list(gold_span(window, offsets, start, start + len(ans["text"])))


def window_row(record: Mapping[str, Any], window: Window, offsets: np.ndarray
               ) -> Dict[str, Any]:
    """The corpus-index fields of one window (training and decoding need them)."""
    return {"window": window.index, "ctx_start": window.ctx_start, "ctx_end": window.ctx_end,
            "ctx_first": window.ctx_first, "cls_index": window.cls_index,
            "label": window_label(record, window, offsets)}


def question_row(record: Mapping[str, Any], windowed: Windowed) -> Dict[str, Any]:
    """What decoding and the metric need of a question, once per question: its context, the
    character spans of the context's tokens (flat [s0, e0, s1, e1, ...]) and the gold answers."""
    answers = record.get("answers")
    return {"id": record["id"], "context": record["text_b"],
            "offsets": windowed.offsets.reshape(-1).tolist(),
            "answers": None if answers is None else [a["text"] for a in answers],
            "is_impossible": record.get("is_impossible")}
