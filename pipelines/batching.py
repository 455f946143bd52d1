"""BatchRecords: records → lists of records, on every runner.

By default Beam's BatchElements (adaptive batch sizes within a bundle). The Dask runner drops
what a DoFn emits from ``finish_bundle`` (BatchElements emits its last, partial batch there:
a 300-record corpus came out as 256), so there batches are formed by a shuffle instead: records
are grouped by a stable hash of their id and each group is cut into batches. Both give the same
records; augmentation and keys depend on the record only, never on the batch it travelled in.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

import apache_beam as beam

from distiller.common.seeding import stable_hash

__all__ = ["BatchRecords", "SHUFFLE_GROUPS", "uses_shuffle_batching"]

SHUFFLE_GROUPS = 64  # groups of the shuffle batching (spread over the workers)


def uses_shuffle_batching(pipeline_args) -> bool:
    """Whether this runner needs shuffle batching (it loses finish_bundle output)."""
    return any(a.startswith("--runner=") and "dask" in a.lower() for a in pipeline_args)


def _group_of(record: Dict[str, Any]) -> Tuple[int, Dict[str, Any]]:
    return int(stable_hash("batch", record["id"], digest_size=4), 16) % SHUFFLE_GROUPS, record


def _cut(item, max_batch_size: int) -> Iterator[List[Dict[str, Any]]]:
    _, records = item
    records = sorted(records, key=lambda r: r["id"])
    for start in range(0, len(records), max_batch_size):
        yield records[start:start + max_batch_size]


class BatchRecords(beam.PTransform):
    """records → batches of at most max_batch_size records."""

    def __init__(self, *, min_batch_size: int = 1, max_batch_size: int = 64,
                 by_shuffle: bool = False):
        super().__init__()
        self.min_batch_size, self.max_batch_size = min_batch_size, max_batch_size
        self.by_shuffle = by_shuffle

    def expand(self, records):
        if not self.by_shuffle:
            return records | "batch_elements" >> beam.BatchElements(
                min_batch_size=self.min_batch_size, max_batch_size=self.max_batch_size)
        return (records
                | "hash_group" >> beam.Map(_group_of)
                | "group" >> beam.GroupByKey()
                | "cut_batches" >> beam.FlatMap(_cut, self.max_batch_size))
