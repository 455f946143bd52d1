"""Errors raised by the teacher cache. Each says what was wrong, the value found and the fix.

All derive from `CacheError`, itself a `UsageError` (distiller.common.errors, a ValueError), so
the `distiller` dispatcher reports them as one line on stderr, exit code 2, instead of a
traceback.
"""
from __future__ import annotations

from distiller.common.errors import UsageError

__all__ = [
    "CacheError", "CacheSpecMismatch", "ForeignDirectoryError", "CorruptShardError",
    "MissingShardError", "UnsafeEntryError", "FingerprintError", "UnsatisfiableRequest",
]


class CacheError(UsageError):
    """Base class of every teacher-cache error."""


class CacheSpecMismatch(CacheError):
    """The cache on disk stores something other than what was asked for (spec or fingerprint)."""


class ForeignDirectoryError(CacheError):
    """The directory is not a teacher cache (no or unreadable manifest) or is someone else's."""


class CorruptShardError(CacheError):
    """A committed shard is truncated, altered or unreadable; `.shard` names it."""

    def __init__(self, message: str, shard: str = "") -> None:
        super().__init__(message)
        self.shard = shard


class MissingShardError(CorruptShardError):
    """The manifest lists a shard whose file is gone."""


class UnsafeEntryError(CorruptShardError):
    """A cache's own file names an entry (shard, corpus, vocabulary) that is not a plain regular
    file inside the cache: a path out of it, a symbolic link, a FIFO or device
    (distiller.builders.cache.files). `.shard` names the entry, `.problem` says what it is."""

    def __init__(self, message: str, entry: str = "", problem: str = "") -> None:
        super().__init__(message, shard=entry)
        self.problem = problem


class FingerprintError(CacheError):
    """Something the teacher loaded cannot be fingerprinted (a random key is never used)."""


class UnsatisfiableRequest(CacheSpecMismatch):
    """A reader or a loss configuration asks for layers/attentions the cache does not keep."""
