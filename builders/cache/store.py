"""TeacherCache: the handle on a teacher cache that every command and build uses.

It is a `CacheDirectory` (directory.py: shards, keys, commits, corpora) plus what works on a
whole cache: `verify`, leftovers and `clean`, adopting uncommitted shards, `merge`
(maintenance.py, leftovers.py) and the satisfiability of a reader's request (planning.py). Those
modules take a `CacheDirectory`, so they sit below this one and never import it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

from .corpus_rows import (CORPUS_FIELDS, MIXUP_FIELDS, SPAN_FIELDS,  # noqa: F401 (re-exported)
                          check_corpus_name, corpus_item)
from .directory import CacheDirectory
from .leftovers import clean_cache, leftover_warnings
from .maintenance import adopt_uncommitted, merge_into, verify_cache, verify_corpora
from .planning import satisfiable
from .shards import ShardInfo
from .spec import CacheSpec

__all__ = ["TeacherCache", "CacheSpec", "ShardInfo", "CORPUS_FIELDS", "check_corpus_name",
           "corpus_item"]


class TeacherCache(CacheDirectory):
    """Handle on one cache directory. Cheap to construct; methods re-read the manifest as needed."""

    def verify(self) -> List[str]:
        """Problems found, one line each ([] when the cache is sound): maintenance.verify_cache."""
        return verify_cache(self)

    def verify_corpora(self, names: Sequence[str]):
        """(problems, shards checked, rows) for the shards corpora `names` read, each checked in
        full (maintenance.verify_corpora)."""
        return verify_corpora(self, names)

    def leftovers(self) -> List[str]:
        """Temp files and uncommitted shards left by writers, one line each
        (distiller.builders.cache.leftovers); warnings, not problems: nothing committed depends on
        them."""
        return leftover_warnings(self)

    def clean(self) -> Dict[str, list]:
        """Remove dead writers' temp files and unusable uncommitted shards
        (distiller.builders.cache.leftovers)."""
        return clean_cache(self)

    def adopt_uncommitted(self) -> List[ShardInfo]:
        """Commit whole shards an interrupted build left uncommitted (maintenance.py)."""
        return adopt_uncommitted(self)

    def merge(self, other_path: str) -> List[ShardInfo]:
        """Copy in the shards and corpora of the cache at `other_path` (maintenance.merge_into)."""
        return merge_into(self, other_path)

    def satisfiable(self, requirements: Dict[str, Any]):
        return satisfiable(self.spec, requirements)
