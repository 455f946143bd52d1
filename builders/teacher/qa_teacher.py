"""The question-answering teacher: any Hugging Face ``...ForQuestionAnswering`` model (or a bare
encoder, which gets a start/end head initialised from seed 0) scoring context windows.

A record is a *window record*: the question's record (``text_a`` question, ``text_b`` context)
plus ``window`` (its index, distiller.builders.teacher.qa_windows). Each window is one cache row
keyed by
its content: hash(teacher fingerprint, window settings + window index, question, context). Its
logits are float32[L, 2] (start, end per token), stored trimmed to the window's length like
hidden states; the cache spec says so (problem_type "question_answering", num_labels 2).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError
from distiller.taskdata.task import SPAN_PROBLEM_TYPE

from ..cache.keys import cache_key as _cache_key
from .qa_windows import Windowed, WindowSettings, make_windows, window_row
from .model import Teacher

__all__ = ["QATeacher"]

log = logging.getLogger(__name__)

# question-level fields that stay out of window records (their question row keeps the answers)
_QUESTION_ONLY = ("answers", "is_impossible", "plausible_answers", "label")


class QATeacher(Teacher):
    """A teacher over context windows (TeacherConfig.head == "span")."""

    auto_class = "AutoModelForQuestionAnswering"

    def load(self) -> "QATeacher":
        if self.loaded is not None:
            return self
        super().load()
        if not getattr(self.tokenizer, "is_fast", False):
            raise UsageError(f"teacher {self.config.model!r}: question answering needs a fast "
                             "tokenizer (character offsets of tokens)")
        self.window_settings.tokenization(True)   # validates the settings early
        return self

    @property
    def window_settings(self) -> WindowSettings:
        cfg = self.config
        return WindowSettings(max_length=cfg.max_length, doc_stride=cfg.doc_stride,
                              max_query_length=cfg.max_query_length)

    @property
    def num_labels(self) -> int:
        return 2   # a start and an end logit per token

    @property
    def problem_type(self) -> str:
        return SPAN_PROBLEM_TYPE

    @property
    def tokenization_settings(self) -> Dict[str, Any]:
        self._require_loaded()
        first = getattr(self.tokenizer, "padding_side", "right") == "right"
        return self.window_settings.tokenization(first)

    # ----------------------------------------------------------------- keys and windows
    def window_key(self, question: str, context: str, window: int) -> str:
        """Key of one window: its index joins the settings, so each window is its own row."""
        if isinstance(window, bool) or not isinstance(window, int) or window < 0:
            raise UsageError(f"a window index is an integer >= 0, got {window!r}")
        return _cache_key(self.fingerprint, dict(self.tokenization_settings, window=window),
                          question, context)

    def record_key(self, record: Any) -> str:
        if not isinstance(record, Mapping) or "window" not in record:
            raise UsageError("a question-answering teacher scores window records (a record "
                             "with 'text_a', 'text_b' and 'window'; see "
                             "distiller.builders.teacher.qa_windows), "
                             f"got {record!r:.200}")
        return self.window_key(record["text_a"], record["text_b"], int(record["window"]))

    def windows(self, records: Sequence[Mapping[str, Any]]) -> List[Windowed]:
        """The windows of each question record (text_a, text_b), in order."""
        self._require_loaded()
        for r in records:
            for field in ("text_a", "text_b"):
                if not isinstance(r.get(field), str) or not r[field].strip():
                    raise UsageError(f"empty or missing {field} in {r.get('id')!r}: bad rows "
                                     "must be dead-lettered before scoring")
        return make_windows(self.tokenizer, [(r["text_a"], r["text_b"]) for r in records],
                            self.window_settings)

    def window_records(self, records: Sequence[Mapping[str, Any]]
                       ) -> List[Tuple[Windowed, List[Dict[str, Any]]]]:
        """(windows, window records) per question record. A window record is the question's
        record without its answers, plus the window's corpus fields
        (distiller.builders.teacher.qa_windows
        .window_row: window, ctx_start, ctx_end, ctx_first, cls_index, label [start, end]),
        its key, input_ids, token_type_ids and truncated (the question was cut)."""
        out = []
        for record, windowed in zip(records, self.windows(records)):
            base = {k: v for k, v in record.items() if k not in _QUESTION_ONLY}
            rows = []
            for w in windowed.windows:
                row = dict(base, **window_row(record, w, windowed.offsets))
                row.update(key=self.window_key(record["text_a"], record["text_b"], w.index),
                           input_ids=w.input_ids, token_type_ids=w.token_type_ids,
                           truncated=windowed.question_truncated)
                rows.append(row)
            out.append((windowed, rows))
        return out

    def tokenize(self, records: Sequence[Any]) -> List[Tuple[np.ndarray, np.ndarray, bool]]:
        """(input_ids, token_type_ids, question truncated) of each window record: its own ids
        when the records carry them (window_records), else each question windowed again."""
        if records and all(isinstance(r, Mapping) and "input_ids" in r for r in records):
            return [(np.asarray(r["input_ids"], dtype=np.int32),
                     np.asarray(r["token_type_ids"], dtype=np.int8), bool(r.get("truncated")))
                    for r in records]
        windowed = self.windows(records) if records else []
        out = []
        for record, wd in zip(records, windowed):
            index = int(record["window"])
            if index >= len(wd.windows):
                raise UsageError(f"record {record.get('id')!r} has {len(wd.windows)} window(s), "
                                 f"window {index} was asked for")
            w = wd.windows[index]
            out.append((w.input_ids, w.token_type_ids, wd.question_truncated))
        return out

    # ----------------------------------------------------------------- scoring
    def score_mixed(self, pairs) -> List[Dict[str, Any]]:
        raise UsageError("mixup is for classification and regression tasks, not for question "
                         "answering")

    def describe_windows(self, windowed: Sequence[Windowed]) -> Dict[str, Any]:
        """Counts for plans and summaries: questions, windows, windows per question."""
        counts = [len(w.windows) for w in windowed]
        return {"questions": len(counts), "windows": int(sum(counts)),
                "max_windows_per_question": max(counts, default=0),
                "questions_truncated": int(sum(w.question_truncated for w in windowed))}

    def lengths(self, windowed: Sequence[Windowed]) -> List[int]:
        return [len(w.input_ids) for wd in windowed for w in wd.windows]
