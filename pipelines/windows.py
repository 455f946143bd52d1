"""WindowRecords: question-answering records → context windows, keyed like KeyRecords' records.

A span task's record (question, context, answers: distiller.taskdata.squad) becomes one record per
context window (distiller.builders.teacher.qa_windows): the question's fields without its answers,
plus the
window's index, where its context tokens are, its gold [start, end] token positions (``label``), its
cache key (distiller.builders.teacher.qa_teacher: the window's content), ``n_tokens`` and the token
ids, so
the scoring step does not tokenize again. Windows then flow through the same dedupe, scoring and
commit steps as any record. Each original question also yields its question row (context, token
offsets, gold answers: what decoding and the metric need), tagged apart. A question cut at
max_query_length is counted as truncated, or dead-lettered with ``reject_long``.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Iterator, List

import apache_beam as beam

from distiller.builders.teacher.qa_windows import question_row
from distiller.pipelines.batching import BatchRecords
from distiller.pipelines.keying import strip_internal
from distiller.pipelines.workers import get_teacher
from distiller.taskdata.records import DeadLetter

__all__ = ["WindowRecords", "WindowRecordsFn"]


class WindowRecordsFn(beam.DoFn):
    """Batch of question records → ("window", window record), ("question", question row) and
    ("dead", DeadLetter) tuples."""

    def __init__(self, teacher_config, *, reject_long: bool, source: str,
                 question_rows: bool = True):
        self.teacher_config, self.reject_long, self.source = teacher_config, reject_long, source
        self.question_rows = question_rows
        self.truncated = beam.metrics.Metrics.counter("distiller", "questions_truncated")
        self.windows = beam.metrics.Metrics.counter("distiller", "windows")

    def setup(self):
        self.teacher = get_teacher(self.teacher_config)

    def process(self, batch: List[Dict[str, Any]]) -> Iterator:
        batch = [strip_internal(r) for r in batch]
        for record, (windowed, rows) in zip(batch, self.teacher.window_records(batch)):
            if windowed.question_truncated:
                if self.reject_long:
                    yield ("dead", _long_question(record, self.source,
                                                  self.teacher_config.max_query_length))
                    continue
                self.truncated.inc()
            self.windows.inc(len(rows))
            if self.question_rows and record.get("parent_id") is None:
                yield ("question", question_row(record, windowed))
            for row in rows:
                ids, tts = row.pop("input_ids"), row.pop("token_type_ids")
                row.update(n_tokens=int(len(ids)), token_ids=ids.tobytes(),
                           token_types=tts.tobytes())
                yield ("window", row)


def _long_question(record: Dict[str, Any], source: str, limit: int) -> DeadLetter:
    original = record["id"].split("#", 1)[0]
    return DeadLetter(source=source, row=-1,
                      reason=f"text over the length limit: question {original} has more than "
                             f"max_query_length={limit} tokens (pass --max-query-length or drop "
                             "--reject-long to cut it)",
                      raw=json.dumps({k: record.get(k) for k in ("id", "text_a")},
                                     ensure_ascii=False))


class WindowRecords(beam.PTransform):
    """question records → (window records, question rows, dead letters)."""

    def __init__(self, teacher_config, *, reject_long: bool = False, source: str = "",
                 question_rows: bool = True, batch_size: int = 64,
                 batch_by_shuffle: bool = False):
        super().__init__()
        self.fn = WindowRecordsFn(teacher_config, reject_long=reject_long, source=source,
                                  question_rows=question_rows)
        self.batch_size, self.batch_by_shuffle = batch_size, batch_by_shuffle

    def expand(self, records):
        tagged = (records
                  | "batch" >> BatchRecords(min_batch_size=min(8, self.batch_size),
                                            max_batch_size=self.batch_size,
                                            by_shuffle=self.batch_by_shuffle)
                  | "window_and_key" >> beam.ParDo(self.fn))
        out = []
        for tag in ("window", "question", "dead"):
            out.append(tagged | f"{tag}s" >> beam.Filter(lambda t, tag=tag: t[0] == tag)
                       | f"untag_{tag}s" >> beam.Map(lambda t: t[1]))
        return tuple(out)
