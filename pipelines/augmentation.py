"""AugmentCorpus: records → augmented copies from an `distiller.augment.policy.AugmentationPolicy`.

The policy (WordNet, MLM or translation models) is loaded once per worker process in ``setup``;
records travel in batches (BatchElements) to its batched entry point; every copy's randomness
comes from (base seed, record id, policy, copy index), so the output does not depend on how Beam
cut the batches, the worker count or the runner. Originals are not emitted here (the caller
keeps them alongside the copies).
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Sequence

import apache_beam as beam

from distiller.pipelines.batching import BatchRecords
from distiller.pipelines.keying import strip_internal
from distiller.pipelines.workers import get_policy

__all__ = ["AugmentCorpus", "AugmentBatchFn"]

_STAT_COUNTERS = ("requested", "produced", "shortfall", "noop")


class AugmentBatchFn(beam.DoFn):
    """A batch of records → their augmented copies (provenance: parent_id, chain, copy, seed)."""

    def __init__(self, policy_spec: Any, base_seed: int,
                 fields: Sequence[str] = ("text_a", "text_b")):
        self.policy_spec, self.base_seed, self.fields = policy_spec, base_seed, tuple(fields)
        self.counters = {name: beam.metrics.Metrics.counter("distiller", f"augment_{name}")
                         for name in _STAT_COUNTERS}

    def setup(self):
        self.policy = get_policy(self.policy_spec)

    def process(self, batch: List[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        copies, stats = self.policy.augment_records([strip_internal(r) for r in batch],
                                                    self.base_seed, fields=self.fields)
        for name, counter in self.counters.items():
            counter.inc(int(stats.get(name, 0)))
        yield from copies


class AugmentCorpus(beam.PTransform):
    """records → augmented copies (originals not included). fields: the texts changed (a task's
    augment_fields: a question-answering task changes the question only)."""

    def __init__(self, policy_spec: Any, *, base_seed: int, max_batch_size: int = 64,
                 batch_by_shuffle: bool = False, fields: Sequence[str] = ("text_a", "text_b")):
        super().__init__()
        self.fn = AugmentBatchFn(policy_spec, base_seed, fields)
        self.max_batch_size, self.batch_by_shuffle = max_batch_size, batch_by_shuffle

    def expand(self, records):
        return (records
                | "batch" >> BatchRecords(min_batch_size=min(8, self.max_batch_size),
                                          max_batch_size=self.max_batch_size,
                                          by_shuffle=self.batch_by_shuffle)
                | "augment_batch" >> beam.ParDo(self.fn))
