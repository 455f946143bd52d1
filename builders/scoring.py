"""Local scoring into a cache: score chunk k+1 while chunk k is written and committed.

Used by `distiller score` and the benchmark (the Beam pipeline has its own fan-out). Writing
(float16 encoding, Parquet, sha256, fsync) runs on one background thread; it mostly runs outside
the GIL, so on a multi-core machine it hides behind the next chunk's forward pass.
"""
from __future__ import annotations

import concurrent.futures
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Sequence

if TYPE_CHECKING:
    from .cache import TeacherCache
    from .shards import ShardInfo
    from .teacher import Teacher

__all__ = ["score_into_cache"]

log = logging.getLogger(__name__)


def score_into_cache(teacher: "Teacher", cache: "TeacherCache", records: Sequence[Any], *,
                     chunk: int = 2048) -> Dict[str, Any]:
    """Score the records whose keys `cache` lacks (each distinct key once), committing one shard
    per chunk. Returns {"scored", "reused" (records whose key was already committed),
    "duplicates" (repeats of a key within `records`), "shards", "rows_committed"}.

    A failure in a write re-raises here; chunks committed before it stay committed.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    keys = [teacher.record_key(r) for r in records]
    todo = set(cache.missing(keys))
    unique: Dict[str, Any] = {}
    for r, k in zip(records, keys):
        if k in todo and k not in unique:
            unique[k] = r
    pending = list(unique.values())
    added: List["ShardInfo"] = []

    def write(outputs) -> List["ShardInfo"]:
        return cache.commit([cache.write_shard(outputs)])

    with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="cache-writer") as pool:
        inflight = None
        for start in range(0, len(pending), chunk):
            outputs = teacher.score(pending[start:start + chunk])
            if inflight is not None:
                added.extend(inflight.result())     # at most one chunk waits in memory
            inflight = pool.submit(write, outputs)
            log.info("scored %d/%d", min(start + chunk, len(pending)), len(pending))
        if inflight is not None:
            added.extend(inflight.result())
    reused = sum(1 for k in keys if k not in todo)
    return {"scored": len(pending), "reused": reused,
            "duplicates": len(records) - reused - len(pending),
            "shards": len(added), "rows_committed": sum(i.rows for i in added)}
