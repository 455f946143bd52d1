"""Local scoring into a cache: forward passes never wait for the writing of earlier chunks.

Used by `distiller score` and the benchmark (the Beam pipeline has its own fan-out). The records
to score are tokenized once and put in one length-bucketed batch plan, cut into chunks of whole
batches (`plan_chunks`): the forwards are the ones a single call over everything would run, not
smaller and less sorted batches per chunk. The teacher scores chunk after chunk on the calling
thread; each finished chunk goes through a bounded queue to the writer threads, which encode it
(one vectorised conversion per column, encoding.py), write the Parquet shard (sha256, fsync) and
commit it. Memory is bounded: at most `queue_chunks` chunks wait, plus those being written and
the one being scored. The teacher hands over hidden states already in the cache's float16 when
that is the storage dtype (half the memory, no second conversion). Writing mostly runs outside
the GIL (numpy, Arrow, hashing, fsync).
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError

from .batching import plan_batches
from .devices import usable_cpus

if TYPE_CHECKING:
    from ..cache.store import TeacherCache
    from ..cache.shards import ShardInfo
    from .model import Teacher

__all__ = ["score_into_cache", "ShardWriter"]

log = logging.getLogger(__name__)


class ShardWriter:
    """Writer threads fed through a bounded queue: `put(outputs)` blocks only when
    `queue_chunks` chunks already wait. `close()` waits for the rest and re-raises the first
    write error (later chunks are then dropped, uncommitted); so does a `put` after an error.

    writers > 1 writes that many shards at once (a GPU outruns one writer: encoding, hashing and
    fsync of one shard use one core and wait on the disk); shards then commit in the order they
    finish, which changes nothing a reader sees (rows are found by key)."""

    def __init__(self, cache: "TeacherCache", *, queue_chunks: int = 1, writers: int = 1) -> None:
        if queue_chunks < 1 or writers < 1:
            raise UsageError(f"queue_chunks and writers must be >= 1, got {queue_chunks}, "
                             f"{writers}")
        self.cache = cache
        self.added: List["ShardInfo"] = []
        self.write_seconds = 0.0
        self._queue: "queue.Queue[Optional[Sequence[Dict[str, Any]]]]" = queue.Queue(queue_chunks)
        self._error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"cache-writer-{i}", daemon=True)
                         for i in range(writers)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        import time

        while True:
            outputs = self._queue.get()
            if outputs is None:
                return
            if self._error is not None:
                continue                    # drain: the caller learns of the error
            try:
                start = time.perf_counter()
                added = self.cache.commit([self.cache.write_shard(outputs)])
                with self._lock:
                    self.added.extend(added)
                    self.write_seconds += time.perf_counter() - start
            except BaseException as exc:    # re-raised on the caller's thread
                with self._lock:
                    self._error = self._error or exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, outputs: Sequence[Dict[str, Any]]) -> None:
        self._raise()
        self._queue.put(outputs)

    def close(self) -> List["ShardInfo"]:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._raise()
        return self.added


def missing_records(teacher: "Teacher", cache: "TeacherCache", records: Sequence[Any]):
    """(the records to score: the first of each distinct key the cache lacks, their keys, how
    many records had a key the cache already holds)."""
    keys = [teacher.record_key(r) for r in records]
    todo = set(cache.missing(keys))
    unique: Dict[str, Any] = {}
    for r, k in zip(records, keys):
        if k in todo and k not in unique:
            unique[k] = r
    reused = sum(1 for k in keys if k not in todo)
    return list(unique.values()), list(unique), reused


def summary(records: Sequence[Any], pending: Sequence[Any], reused: int,
            added: Sequence[Any]) -> Dict[str, Any]:
    """What a scoring call reports (see `score_into_cache`)."""
    return {"scored": len(pending), "reused": reused,
            "duplicates": len(records) - reused - len(pending),
            "shards": len(added), "rows_committed": sum(i.rows for i in added)}


def default_writers(teachers: Sequence["Teacher"]) -> int:
    """Writer threads for teachers of these devices: one when they all run on a CPU (whose
    cores the forward already fills), else up to 4 per GPU, at most half the usable CPUs
    (measured on an H200: 4 writers doubled one's rate, benchmarks/README.md)."""
    gpus = sum(1 for t in teachers if t.device is not None and t.device.type == "cuda")
    return 1 if not gpus else max(1, min(4 * gpus, usable_cpus() // 2))


def plan_chunks(teacher: "Teacher", records: Sequence[Any], chunk: int,
                tail_pieces: int = 4) -> Tuple[List[Any], List[List[List[int]]]]:
    """(the records' tokens, the chunks they are scored and written in: each a list of forward
    batches, lists of indices into `records`).

    One length-bucketed batch plan over all the records (the teacher's token budget and sort
    window), cut into chunks of whole batches of about `chunk` records: scoring chunk by chunk
    (`score_chunk`) runs exactly the batches of that plan (a batch holds at most `chunk`
    records), and the last chunk's batches are cut into up to `tail_pieces` smaller shards (only
    the last write waits with nothing to overlap it)."""
    if chunk < 1:
        raise UsageError(f"chunk must be >= 1, got {chunk}")
    toks = teacher.tokenize(records)
    cfg = teacher.config
    batches = plan_batches([len(t[0]) for t in toks], max_tokens=cfg.max_tokens_per_batch,
                           max_batch_size=min(cfg.max_batch_size, chunk), window=cfg.sort_window)
    groups: List[List[List[int]]] = [[]]
    size = 0                                    # records in groups[-1]
    for batch in batches:
        if size >= chunk:
            groups.append([])
            size = 0
        groups[-1].append(batch)
        size += len(batch)
    last = groups.pop()
    per = max(1, -(-len(last) // tail_pieces))
    groups.extend(last[i:i + per] for i in range(0, len(last), per))
    return toks, [group for group in groups if group]


def score_chunk(teacher: "Teacher", records: Sequence[Any], toks: Sequence[Any],
                keys: Sequence[str], batches: Sequence[Sequence[int]],
                store_as: Optional[str]) -> List[Dict[str, Any]]:
    """The teacher's outputs for one chunk of `plan_chunks`, scored as its planned batches."""
    idx = [i for b in batches for i in b]
    local, at = [], 0
    for b in batches:
        local.append(range(at, at + len(b)))
        at += len(b)
    return teacher.score([records[i] for i in idx], tokens=[toks[i] for i in idx],
                         keys=[keys[i] for i in idx], store_as=store_as, batches=local)


def score_into_cache(teacher: "Teacher", cache: "TeacherCache", records: Sequence[Any], *,
                     chunk: int = 2048, queue_chunks: int = 1,
                     writers: Optional[int] = None) -> Dict[str, Any]:
    """Score the records whose keys `cache` lacks (each distinct key once), committing one shard
    per chunk of whole batches (`plan_chunks`; the last in a few smaller shards). Returns
    {"scored", "reused" (records whose key was already committed), "duplicates" (repeats of a
    key within `records`), "shards", "rows_committed"}.

    A failure in a write re-raises here; chunks committed before it stay committed. writers:
    shards written at once (see ShardWriter; None: `default_writers`).
    """
    pending, pending_keys, reused = missing_records(teacher, cache, records)
    toks, chunks = plan_chunks(teacher, pending, chunk)
    if writers is None:
        writers = default_writers([teacher])
    writer = ShardWriter(cache, queue_chunks=queue_chunks, writers=writers)
    try:
        done = 0
        for batches in chunks:
            outputs = score_chunk(teacher, pending, toks, pending_keys, batches, cache.spec.dtype)
            writer.put(outputs)
            done += len(outputs)
            log.info("scored %d/%d", done, len(pending))
    finally:
        added = writer.close()
    log.info("writer thread: %.1f s, overlapped with scoring", writer.write_seconds)
    return summary(records, pending, reused, added)
