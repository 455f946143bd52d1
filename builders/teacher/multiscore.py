"""`distiller score` on several devices: one teacher replica per device, chunks shared out.

The local scorer (distiller.builders.teacher.scoring) runs one teacher. With ``--devices
cuda:0,cuda:1`` the
same chunks (cut in the same order, so the same shards) are scored by one replica per device, each
on its own thread (a forward pass releases the GIL while its device works), and written and
committed by the writer threads of `distiller.builders.teacher.scoring.ShardWriter`, as
`score_into_cache`
does. A chunk's outputs do not depend on which replica scored it when the replicas are of one kind
(CPUs, or GPUs of one model): the cache is the same as with one device.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
from typing import TYPE_CHECKING, Any, Dict, List, Sequence

from distiller.common.errors import UsageError

from .devices import usable_cpus
from .factory import make_teacher
from .scoring import (ShardWriter, default_writers, missing_records, plan_chunks, score_chunk,
                      score_into_cache, summary)

if TYPE_CHECKING:
    from ..cache.store import TeacherCache
    from .model import Teacher, TeacherConfig

__all__ = ["load_replicas", "score_on_devices"]

log = logging.getLogger(__name__)


def load_replicas(config: "TeacherConfig", devices: Sequence[str]) -> List["Teacher"]:
    """A loaded teacher per device (CPU replicas share this process's CPUs between them)."""
    n_cpu = sum(1 for d in devices if d == "cpu")
    threads = config.num_threads or (max(1, usable_cpus() // n_cpu) if n_cpu else None)
    return [make_teacher(dataclasses.replace(config, device=d, num_threads=threads)).load()
            for d in devices]


def score_on_devices(teachers: Sequence["Teacher"], cache: "TeacherCache",
                     records: Sequence[Any], *, chunk: int = 2048) -> Dict[str, Any]:
    """`distiller.builders.teacher.scoring.score_into_cache` with one replica per device; same
    result
    dict."""
    if len(teachers) == 1:
        return score_into_cache(teachers[0], cache, records, chunk=chunk)
    fingerprints = {t.fingerprint for t in teachers}
    if len(fingerprints) != 1 or len({t.compute_dtype for t in teachers}) != 1:
        raise UsageError("the teacher replicas differ (fingerprint or precision): the devices "
                         "must run one teacher at one precision")
    pending, pending_keys, reused = missing_records(teachers[0], cache, records)
    toks, chunks = plan_chunks(teachers[0], pending, chunk)
    free: "queue.Queue" = queue.Queue()
    for teacher in teachers:
        free.put(teacher)

    def score(batches: List[List[int]]):
        teacher = free.get()
        try:
            return score_chunk(teacher, pending, toks, pending_keys, batches, cache.spec.dtype)
        finally:
            free.put(teacher)

    writer = ShardWriter(cache, writers=default_writers(teachers))
    try:
        with concurrent.futures.ThreadPoolExecutor(len(teachers), "teacher-replica") as scorers:
            scoring: List[Any] = []
            for i, batches in enumerate(chunks):
                scoring.append(scorers.submit(score, batches))
                if len(scoring) > len(teachers):   # one chunk queued per replica, no more
                    writer.put(scoring.pop(0).result())
                log.info("scoring chunk %d/%d", i + 1, len(chunks))
            for future in scoring:
                writer.put(future.result())
    finally:
        added = writer.close()
    return summary(records, pending, reused, added)
