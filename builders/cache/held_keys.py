"""The keys a cache holds, shard by shard: the public API a distributed build joins against.

A build asks which of its keys a cache already holds without loading the key set in one place:
it lists the committed shards (`committed_shards`), spreads them over workers and reads each
shard's key column (`shard_keys`). Both go through the manifest and the shard reader, so a
damaged shard is the reader's clear error here too.
"""
from __future__ import annotations

import os
from typing import List

from .files import entry_path
from .manifest import MANIFEST, SHARD_DIR
from .shards import read_shard_table
from .store import TeacherCache

__all__ = ["committed_shards", "shard_keys"]


def committed_shards(cache_path: str) -> List[str]:
    """Names of the committed shards of the cache at `cache_path` ([] if there is no cache yet)."""
    if not os.path.exists(os.path.join(cache_path, MANIFEST)):
        return []
    return [info.name for info in TeacherCache.open(cache_path).shards()]


def shard_keys(cache_path: str, name: str) -> List[str]:
    """Every key of the committed shard `name` (its key column only is read)."""
    path = entry_path(os.path.abspath(cache_path), SHARD_DIR, name, what="shard")
    table = read_shard_table(path, name, columns=["key"])
    return table.column("key").to_pylist()
