"""MissingKeys: what is left to score after reuse (contract 3).

Many records share a key (a duplicate sentence, an augmented copy equal to another record), and
the cache may already hold a key from an earlier build; the teacher should see each missing key
once. The cache's keys arrive as a PCollection and are joined with CoGroupByKey, so the join
scales with the runner instead of loading a key set into one worker; deduplication happens in
the same shuffle.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Optional, Tuple

import apache_beam as beam

from distiller.builders.cache.held_keys import committed_shards, shard_keys

__all__ = ["MissingKeys", "CachedKeys", "pick_representative", "list_cache_shards",
           "list_shard_keys"]


def pick_representative(item: Tuple[str, Iterable[Dict[str, Any]]]) -> Tuple[str, Dict[str, Any]]:
    """(key, records) → (key, the record with the smallest id): deterministic on every runner."""
    key, records = item
    return key, min(records, key=lambda r: r["id"])


def list_cache_shards(cache_path: str) -> Iterator[Tuple[str, str]]:
    """(cache path, shard name) for every committed shard (nothing if there is no cache yet)."""
    for name in committed_shards(cache_path):
        yield cache_path, name


def list_shard_keys(item: Tuple[str, str]) -> Iterator[str]:
    """Every key of one committed shard (its key column only is read)."""
    yield from shard_keys(*item)


class CachedKeys(beam.PTransform):
    """PBegin → (key, None) for every key the cache at `cache_path` holds, read shard by shard
    on the workers (the key set is never gathered in one place)."""

    def __init__(self, cache_path: str):
        super().__init__()
        self.cache_path = cache_path

    def expand(self, pbegin):
        return (pbegin
                | "cache_path" >> beam.Create([self.cache_path])
                | "list_shards" >> beam.FlatMap(list_cache_shards)
                | "spread_shards" >> beam.Reshuffle()
                | "read_shard_keys" >> beam.FlatMap(list_shard_keys)
                | "as_pairs" >> beam.Map(lambda k: (k, None)))


def _missing_representative(item) -> Iterator[Tuple[str, Dict[str, Any]]]:
    key, groups = item
    todo = list(groups["todo"])
    if not todo:
        return
    if any(True for _ in groups["cached"]):
        beam.metrics.Metrics.counter("distiller", "cache_hits").inc()
        return
    yield pick_representative((key, todo))


def _key_count(item, label: str) -> Tuple[str, Tuple[int, int]]:
    """(label, (1, 1 if cached else 0)) for a key the records hold, (label, (0, 0)) otherwise."""
    _, groups = item
    if not any(True for _ in groups["todo"]):
        return label, (0, 0)
    return label, (1, int(any(True for _ in groups["cached"])))


def _sum_pairs(pairs: Iterable[Tuple[int, int]]) -> Tuple[int, int]:
    distinct = hits = 0
    for d, h in pairs:
        distinct, hits = distinct + d, hits + h
    return distinct, hits


class MissingKeys(beam.PTransform):
    """keyed records → (key, the record with the smallest id) per distinct key that `cached`
    (a PCollection of (key, _)) lacks, in a single shuffle.

    With ``count=LABEL`` it returns (missing, counts): counts holds at most one element,
    (LABEL, (distinct keys of the records, of them already cached)), summed on the workers (a
    combine), so the last step learns the corpus's distinct keys without gathering them."""

    def __init__(self, cached, *, count: Optional[str] = None):
        super().__init__()
        self.cached, self.count = cached, count

    def expand(self, records):
        joined = ({"todo": records | "by_key" >> beam.Map(lambda r: (r["key"], r)),
                   "cached": self.cached}
                  | "join_with_cache" >> beam.CoGroupByKey())
        missing = joined | "keep_missing" >> beam.FlatMap(_missing_representative)
        if self.count is None:
            return missing
        counts = (joined
                  | "count_keys" >> beam.Map(_key_count, self.count)
                  | "sum_counts" >> beam.CombinePerKey(_sum_pairs))
        return missing, counts
