"""KeyRecords: give each record its cache key and token count; over-long texts are counted
(truncated, the default) or become dead letters (``reject_long``).

The key comes from the teacher actually loaded (`Teacher.cache_key`, contract 2), so the teacher
is loaded in the worker (``setup``, once per process via `distiller.pipelines.workers`); tokenizing
here also gives the length used for bucketing before scoring.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List

import apache_beam as beam

from distiller.taskdata.records import DeadLetter
from distiller.pipelines.batching import BatchRecords
from distiller.pipelines.workers import get_teacher

__all__ = ["KeyRecords", "KeyRecordsFn", "INTERNAL_FIELDS", "strip_internal", "carried_tokens"]

# Fields this package adds to records on their way through the pipeline. The token ids (bytes of
# int32 / int8) ride along so that the scoring step does not tokenize every text a second time.
INTERNAL_FIELDS = ("key", "n_tokens", "truncated", "token_ids", "token_types")
_ROW_IN_ID = re.compile(r":(\d+)$")


def strip_internal(record: Dict[str, Any]) -> Dict[str, Any]:
    """The record without the pipeline's own fields (what augmenters and users see)."""
    return {k: v for k, v in record.items() if k not in INTERNAL_FIELDS}


def _long_dead_letter(record: Dict[str, Any], source: str, max_length: int) -> DeadLetter:
    """The dead letter of an over-long record; source and row as the reader names them (from
    the record's id ``<source>:<row>``; an augmented copy's from its parent's)."""
    original = record["id"].split("#", 1)[0]
    match = _ROW_IN_ID.search(original)
    if ":" in original:
        source = original.rsplit(":", 1)[0]
    return DeadLetter(
        source=source, row=int(match.group(1)) if match else -1,
        reason=f"text over the length limit: more than max_length={max_length} tokens "
               f"(record {record['id']}; pass --max-length or drop --reject-long to truncate)",
        raw=json.dumps(strip_internal(record), ensure_ascii=False, default=str))


class KeyRecordsFn(beam.DoFn):
    """Batch of records → ("record", record + key/n_tokens/truncated) or ("dead", DeadLetter)."""

    def __init__(self, teacher_config, *, reject_long: bool, source: str, devices=None):
        self.teacher_config, self.reject_long, self.source = teacher_config, reject_long, source
        self.devices = devices  # distiller.pipelines.devices.DevicePlan: the scoring step's teacher
        self.truncated = beam.metrics.Metrics.counter("distiller", "truncated")
        self.rejected = beam.metrics.Metrics.counter("distiller", "rejected_long")

    def setup(self):
        self.teacher = get_teacher(self.teacher_config, self.devices)

    def process(self, batch: List[Dict[str, Any]]) -> Iterator:
        tokens = self.teacher.tokenize(batch)
        for record, (ids, tts, truncated) in zip(batch, tokens):
            if truncated and self.reject_long:
                self.rejected.inc()
                yield ("dead", _long_dead_letter(record, self.source,
                                                 self.teacher_config.max_length))
                continue
            if truncated:
                self.truncated.inc()
            yield ("record", dict(record, key=self.teacher.cache_key(record["text_a"],
                                                                     record.get("text_b")),
                                  n_tokens=int(len(ids)), truncated=bool(truncated),
                                  token_ids=ids.tobytes(), token_types=tts.tobytes()))


def carried_tokens(records: List[Dict[str, Any]]):
    """The (ids, token types, truncated) KeyRecords left on each record, or None if any lacks
    them: the input `distiller.builders.teacher.model.Teacher.score` takes instead of tokenizing
    again."""
    import numpy as np

    if not all("token_ids" in r and "token_types" in r for r in records):
        return None
    return [(np.frombuffer(r["token_ids"], dtype=np.int32),
             np.frombuffer(r["token_types"], dtype=np.int8), bool(r["truncated"]))
            for r in records]


class KeyRecords(beam.PTransform):
    """records → (keyed records, dead letters for over-long texts when ``reject_long``)."""

    def __init__(self, teacher_config, *, reject_long: bool = False, source: str = "",
                 batch_size: int = 256, batch_by_shuffle: bool = False, devices=None):
        super().__init__()
        self.fn = KeyRecordsFn(teacher_config, reject_long=reject_long, source=source,
                               devices=devices)
        self.batch_size, self.batch_by_shuffle = batch_size, batch_by_shuffle

    def expand(self, records):
        tagged = (records
                  | "batch" >> BatchRecords(min_batch_size=min(32, self.batch_size),
                                            max_batch_size=self.batch_size,
                                            by_shuffle=self.batch_by_shuffle)
                  | "tokenize_and_key" >> beam.ParDo(self.fn))
        keyed = tagged | "keyed" >> beam.Filter(lambda t: t[0] == "record") | "untag" >> beam.Map(
            lambda t: t[1])
        dead = tagged | "too_long" >> beam.Filter(lambda t: t[0] == "dead") | "untag_dead" >> (
            beam.Map(lambda t: t[1]))
        return keyed, dead
