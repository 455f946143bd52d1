"""The names of a cache directory's entries (docs/cache.md): the manifest, the lock and the
shard and corpus subdirectories. Both the manifest code and the file checks need them, so they
live here, below both."""
from __future__ import annotations

__all__ = ["MANIFEST", "FORMAT", "LOCK", "SHARD_DIR", "CORPUS_DIR"]

MANIFEST = "manifest.json"
LOCK = ".lock"
SHARD_DIR = "shards"
CORPUS_DIR = "corpora"
FORMAT = "distiller-teacher-cache"
