"""MissingKeys: what is left to score after reuse (contract 3).

Many records share a key (a duplicate sentence, an augmented copy equal to another record), and
the cache may already hold a key from an earlier build; the teacher should see each missing key
once. The cache's keys arrive as a PCollection and are joined with CoGroupByKey, so the join
scales with the runner instead of loading a key set into one worker; deduplication happens in
the same shuffle.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Iterator, Tuple

import apache_beam as beam

__all__ = ["MissingKeys", "CachedKeys", "pick_representative", "list_cache_shards",
           "list_shard_keys"]


def pick_representative(item: Tuple[str, Iterable[Dict[str, Any]]]) -> Tuple[str, Dict[str, Any]]:
    """(key, records) → (key, the record with the smallest id): deterministic on every runner."""
    key, records = item
    return key, min(records, key=lambda r: r["id"])


def list_cache_shards(cache_path: str) -> Iterator[Tuple[str, str]]:
    """(cache path, shard name) for every committed shard (nothing if there is no cache yet)."""
    from builders.cachekeys import committed_shards

    for name in committed_shards(cache_path):
        yield cache_path, name


def list_shard_keys(item: Tuple[str, str]) -> Iterator[str]:
    """Every key of one committed shard (its key column only is read)."""
    from builders.cachekeys import shard_keys

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


class MissingKeys(beam.PTransform):
    """keyed records → (key, the record with the smallest id) per distinct key that `cached`
    (a PCollection of (key, _)) lacks, in a single shuffle."""

    def __init__(self, cached):
        super().__init__()
        self.cached = cached

    def expand(self, records):
        return ({"todo": records | "by_key" >> beam.Map(lambda r: (r["key"], r)),
                 "cached": self.cached}
                | "join_with_cache" >> beam.CoGroupByKey()
                | "keep_missing" >> beam.FlatMap(_missing_representative))
