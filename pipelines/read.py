"""ReadCorpus: an input (files, globs, a saved or hub dataset) → records and dead letters, read in
parallel splits by the workers.

The reading itself is `distiller.taskdata.reader` — the same `plan_splits`, `read_split` and
`to_record` every local command uses — so a build and `distiller finetune` read a file identically.
The splits are reshuffled so that several workers read at once.
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import apache_beam as beam

from distiller.taskdata.reader import (ROWS_PER_SPLIT, Split, check_input, plan_splits, read_split,
                                       to_record)
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.task import Task

__all__ = ["ReadCorpus", "read_tagged", "is_record", "is_dead_letter"]

_ROWS = beam.metrics.Metrics.counter("distiller", "rows_read")
_DEAD = beam.metrics.Metrics.counter("distiller", "dead_letters_on_read")


def read_tagged(split: Split, *, task: Task, labelled: bool = True) -> List[Tuple[str, Any]]:
    """("record", record) or ("dead", DeadLetter) for every row of a split."""
    out = []
    for item in read_split(split, task):
        _ROWS.inc()
        parsed = to_record(item, task=task, source=split.input.name, labelled=labelled)
        if isinstance(parsed, DeadLetter):
            _DEAD.inc()
            out.append(("dead", parsed))
        else:
            out.append(("record", parsed))
    return out


def is_record(tagged) -> bool:
    return tagged[0] == "record"


def is_dead_letter(tagged) -> bool:
    return tagged[0] == "dead"


class ReadCorpus(beam.PTransform):
    """PBegin → (records, dead letters) of one input, read in parallel splits.

    Records are ``{"id", "text_a", "text_b", "label"}`` dicts (ids ``<file>:<row>`` or
    ``<file>:<id column>=<value>``), dead letters are `DeadLetter`s. The input is resolved and its
    columns checked here, at construction, so a wrong column is an error before the pipeline
    starts. Tagging uses plain tuples (no multi-output ParDo) so every runner, Dask's too, runs
    it."""

    def __init__(self, spec: str, *, task: Task, labelled: bool = True,
                 limit: Optional[int] = None, rows_per_split: int = ROWS_PER_SPLIT):
        super().__init__()
        self.inputs = check_input(spec, task, labelled=labelled)
        self.task, self.labelled, self.limit = task, labelled, limit
        self.rows_per_split = rows_per_split

    def expand(self, pbegin):
        tagged = (
            pbegin
            | "inputs" >> beam.Create([tuple(self.inputs)])
            | "plan_splits" >> beam.FlatMap(lambda inputs: plan_splits(
                list(inputs), self.task, rows_per_split=self.rows_per_split, limit=self.limit,
                labelled=self.labelled))
            | "spread_splits" >> beam.Reshuffle()
            | "read_rows" >> beam.FlatMap(read_tagged, task=self.task, labelled=self.labelled))
        records = tagged | "records" >> beam.Filter(is_record) | "untag_records" >> beam.Map(
            lambda t: t[1])
        dead = tagged | "dead_letters" >> beam.Filter(is_dead_letter) | "untag_dead" >> beam.Map(
            lambda t: t[1])
        return records, dead
