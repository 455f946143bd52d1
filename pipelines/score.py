"""ScoreWithTeacher: Beam RunInference with our own ModelHandler for the teacher.

Why our own handler: Beam's stock PyTorch/Hugging Face handlers stack equal-length tensors and
split outputs per example in ways that mis-assign tuples of hidden states. Ours hands a whole
*work unit* of records to `distiller.builders.teacher.model.Teacher.score`, which pads per forward
batch
and length-buckets inside the unit (distiller.builders.teacher.batching.plan_batches).

Work units are formed deterministically before RunInference: records are grouped by a coarse
token-length bucket and a hash of their key, sorted by key and cut into units of at most
`unit_size`. The units depend only on the set of keys to score, never on the runner, the worker
count or bundle boundaries, so the same forward batches run everywhere and the cache content is
byte-identical by key.

Output modes (``write_shards``):
- True (default): the scoring step writes the unit's outputs as one cache shard
  (`TeacherCache.write_shard`, invisible until committed) and passes on only the small `ShardInfo`;
  tensors never travel through a shuffle.
- False: outputs (numpy tensors) are passed on, grouped per unit, and written by a later step;
  kept to measure the difference (benchmarks/bench_pipeline.py).
One teacher per worker process (`distiller.pipelines.workers.get_teacher`), on the device the
process claims from the build's `distiller.pipelines.devices.DevicePlan` (one worker per GPU); with
``share_model=True`` RunInference shares one copy between the processes of a machine where the
runner supports it (on the one device its loading process claims).
"""
from __future__ import annotations

import bisect
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference

from distiller.common.errors import UsageError
from distiller.pipelines.keying import carried_tokens, strip_internal
from distiller.pipelines.workers import get_cache, get_teacher

__all__ = ["ScoreWithTeacher", "TeacherModelHandler", "assign_unit", "cut_units",
           "LENGTH_BUCKETS", "write_unit_shard"]

LENGTH_BUCKETS = (16, 32, 64, 128, 256)  # token-length bucket boundaries for work units
HASH_PARTS = 4  # units per bucket before cutting by size: spreads a bucket over workers


def assign_unit(item: Tuple[str, Dict[str, Any]], parts: int = HASH_PARTS):
    """(key, record) → ((length bucket, hash part), record)."""
    key, record = item
    bucket = bisect.bisect_right(LENGTH_BUCKETS, int(record["n_tokens"]))
    return (bucket, int(key[:8], 16) % parts), record


def cut_units(item, unit_size: int) -> Iterator[List[Dict[str, Any]]]:
    """((bucket, part), records) → units of at most unit_size records, sorted by key."""
    _, records = item
    records = sorted(records, key=lambda r: r["key"])
    n_units = -(-len(records) // unit_size)
    for u in range(n_units):  # balanced cut: sizes differ by at most one
        yield records[u * len(records) // n_units:(u + 1) * len(records) // n_units]


def _report_progress(progress_dir: Optional[str], unit_id: str, n: int) -> None:
    if progress_dir and os.path.isdir(progress_dir):
        with open(os.path.join(progress_dir, unit_id), "w") as fh:
            fh.write(str(n))


class TeacherModelHandler(ModelHandler):
    """ModelHandler[unit of records → ShardInfo | (unit id, output)] for a `TeacherConfig`."""

    def __init__(self, teacher_config, *, cache_path: str, write_shards: bool = True,
                 share_model: bool = False, progress_dir: Optional[str] = None,
                 mixup: bool = False, devices=None):
        super().__init__(large_model=share_model)
        self.teacher_config, self.cache_path, self.mixup = teacher_config, cache_path, mixup
        self.write_shards, self.progress_dir = write_shards, progress_dir
        # distiller.pipelines.devices.DevicePlan: one device per worker process
        self.devices = devices

    def load_model(self):
        return get_teacher(self.teacher_config, self.devices)

    def run_inference(self, batch: Sequence[Dict[str, Any]], model,
                      inference_args: Optional[Dict[str, Any]] = None) -> Iterable[Any]:
        unit = list(batch)
        if self.mixup:  # pair rows (distiller.pipelines.mixup): interpolated word embeddings
            outputs = model.score_mixed([(r["a"], r["b"], r["mix_lam"]) for r in unit])
            for out in outputs:
                out.pop("mix", None)  # the pairing lives in the corpus rows, not in the cache
        else:
            # Outputs written here come in the cache's storage dtype (float16: converted once per
            # forward batch, half the memory); passed-on tensors stay float32.
            store_as = None
            if self.write_shards:
                store_as = get_cache(self.cache_path).spec.dtype
            outputs = model.score([strip_internal(r) for r in unit],
                                  tokens=carried_tokens(unit), store_as=store_as)
        beam.metrics.Metrics.counter("distiller", "newly_scored").inc(len(outputs))
        unit_id = unit[0]["key"]
        _report_progress(self.progress_dir, unit_id, len(outputs))
        if self.write_shards:
            return [write_unit_shard(self.cache_path, outputs)]
        return [(unit_id, out) for out in outputs]

    def get_num_bytes(self, batch: Sequence[Dict[str, Any]]) -> int:
        def chars(r):
            return len(r["text_a"]) + len(r.get("text_b") or "")

        if self.mixup:
            return sum(chars(r["a"]) + chars(r["b"]) for r in batch)
        return sum(chars(r) for r in batch)

    def get_metrics_namespace(self) -> str:
        return "distiller_teacher"


def write_unit_shard(cache_path: str, outputs: List[Dict[str, Any]]):
    """Write one unit's outputs as an uncommitted shard; returns its ShardInfo."""
    info = get_cache(cache_path).write_shard(outputs)
    beam.metrics.Metrics.counter("distiller", "shards_written").inc()
    return info


def _write_grouped(item, cache_path: str):
    _, outputs = item
    return write_unit_shard(cache_path, sorted(outputs, key=lambda o: o["key"]))


class ScoreWithTeacher(beam.PTransform):
    """(key, record) pairs to score → ShardInfo per written shard (uncommitted).

    With ``mixup=True`` the records are mixup pair rows (distiller.pipelines.mixup) scored on their
    interpolated embeddings."""

    def __init__(self, teacher_config, *, cache_path: str, unit_size: int = 1024,
                 write_shards: bool = True, share_model: bool = False,
                 progress_dir: Optional[str] = None, mixup: bool = False, devices=None):
        super().__init__()
        if unit_size < 1:
            raise UsageError(f"unit_size must be >= 1, got {unit_size}")
        self.handler = TeacherModelHandler(teacher_config, cache_path=cache_path,
                                           write_shards=write_shards, share_model=share_model,
                                           progress_dir=progress_dir, mixup=mixup,
                                           devices=devices)
        self.cache_path, self.unit_size, self.write_shards = cache_path, unit_size, write_shards

    def expand(self, pairs):
        units = (pairs
                 | "bucket_by_length" >> beam.Map(assign_unit)
                 | "group_buckets" >> beam.GroupByKey()
                 | "cut_units" >> beam.FlatMap(cut_units, self.unit_size))
        scored = units | "run_teacher" >> RunInference(self.handler.with_no_batching())
        if self.write_shards:
            return scored
        return (scored
                | "group_outputs_by_unit" >> beam.GroupByKey()
                | "write_shards" >> beam.Map(_write_grouped, self.cache_path))
