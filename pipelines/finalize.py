"""CommitAndIndex: the build's last step — commit shards, write corpora, dead letters and the
run summary, with memory that does not grow with the corpus.

The workers write the corpus rows, mixup rows and dead letters as sorted part files into a
staging directory of the cache (distiller.pipelines.parts); what converges on one worker under one
key is small: the ShardInfos of the scoring step (without their key lists), one descriptor per part
(file, rows, counts) and the distinct-key counts of the deduplication join. There, in order: the
commit (one atomic manifest replace; keys are checked only against shards committed since the
build started, `TeacherCache.commit(known=...)`), then the corpus files, merged from the parts and
recorded in one manifest replace (they refer only to committed keys: every key was either in the
cache when the build joined against it or scored into a shard committed just before, and the
shard rows are checked against the join's counts), then the dead-letter JSONL and the summary
JSON. Being the last transform of the pipeline, it also makes every runner (the Dask one computes
only the final step's graph) run the whole build.

Where files go: the corpus files, the staging parts and the shards live in the cache directory
(a local or shared filesystem path, as the cache itself); the dead-letter and summary files are
written with plain file operations, so they too must be paths the committing worker can write
(local, or a shared filesystem), not fsspec URLs.
"""
from __future__ import annotations

import dataclasses
import json
import resource
import shutil
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam

from distiller.builders.cache.corpusparts import (CorpusFile, install_corpora, merged_lines,
                                                  write_text_atomic)
from distiller.builders.cache.errors import CacheError
from distiller.builders.cache.store import TeacherCache
from distiller.pipelines.parts import WriteParts, add_counts, corpus_row, reason_category

__all__ = ["CommitAndIndex", "corpus_row", "reason_category", "finalize_build"]


def _status_mb(field: str) -> Optional[float]:
    """A VmRSS/VmHWM figure of this process in MB (Linux), None elsewhere."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def _reset_peak_rss() -> Optional[float]:
    """Start measuring this step's own peak RSS (Linux: VmHWM reset through clear_refs, so what
    the worker ran before does not count); returns the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float:
    """The peak RSS since `_reset_peak_rss` (Linux), else of the whole process."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0), 1)


def _write_corpora(cache, staging: str, parts: Dict[str, List[dict]], corpus_names, mixup: bool,
                   task, labelled: bool, questions=None) -> List[int]:
    """Merge the row (and mixup) parts into the corpus files; returns their row counts in the
    order of `corpus_names`. Originals: rows without a parent; then originals and copies; with
    mixup, the last corpus adds the pair rows after those rows (as `write_corpus` was given)."""
    files = [CorpusFile(cache.path, name) for name in corpus_names]
    try:
        originals, everything = files[0], files[1:]
        for line in merged_lines(staging, [p["file"] for p in parts["rows"]], "rows"):
            if json.loads(line)["parent_id"] is None:
                originals.write(line)
            for f in everything:
                f.write(line)
        if mixup:
            for line in merged_lines(staging, [p["file"] for p in parts["mix"]], "mix"):
                files[-1].write(line)
        install_corpora(cache, files, task=task, labelled=labelled, questions=questions)
    except BaseException:
        for f in files:
            f.discard()
        raise
    return [f.rows for f in files]


@dataclasses.dataclass
class _Gathered:
    """What the build's workers sent to the committing step: the shards they wrote (sorted by
    name), the part files by kind ("rows", "mix", "dead") and their summed counts, the key
    counts of the deduplication join ({"rows"|"mix": (distinct, cached)}) and, for a span
    task, the question rows."""

    infos: List[Any]
    parts: Dict[str, List[dict]]
    counts: Dict[str, Dict[str, int]]
    keys: Dict[str, Tuple[int, int]]
    questions: List[dict]


def finalize_build(item, *, cache_path: str, corpus_names: Sequence[str], dead_letter_path: str,
                   summary_path: str, staging_dir: str, known_shards: Sequence[str] = (),
                   mixup: bool = False, task: Optional[Dict[str, Any]] = None,
                   labelled: bool = True) -> Dict[str, Any]:
    """Commit, index, write dead letters and the summary; returns the summary dict.

    item: (_, tagged) with ("shard", ShardInfo), ("part", descriptor), ("keys", (label,
    (distinct, cached))) and, for a span task, ("question", question row) elements (written
    beside every corpus: decoding and scoring; copies use their parent's). corpus_names:
    [originals-only name] or [originals-only name, originals+copies name], then with ``mixup``
    the name of the corpus that adds the mixup pair rows. known_shards: the shards committed
    when the build started (TeacherCache.commit).
    task (a Task's dict) is recorded with every corpus; labelled False marks them unlabelled.
    """
    start_rss = _reset_peak_rss()  # the committing step's own memory (benchmarks/bench_finalize)
    got = _gather(item[1])
    cache = TeacherCache.open(cache_path)
    before = {name: dict(entry) for name, entry in cache.manifest.get("corpora", {}).items()}
    added = _commit(cache, got, known_shards, cache_path)
    span = bool(got.counts["rows"].get("windows", 0) or got.questions)
    corpus_rows = _write_corpora(cache, staging_dir, got.parts, corpus_names, mixup, task,
                                 labelled,
                                 sorted(got.questions, key=lambda q: q["id"]) if span else None)
    replaced = _replaced(before, cache.manifest.get("corpora", {}), corpus_names)
    dead_n = write_text_atomic(dead_letter_path, merged_lines(
        staging_dir, [p["file"] for p in got.parts["dead"]], "dead"))
    summary = _counts_summary(got, added, dead_n)
    summary.update({
        "corpora": dict(zip(corpus_names, corpus_rows)),
        "corpora_replaced": replaced,
        "dead_letter_file": dead_letter_path,
        # the committing process's RSS when this step began, and its peak during the step
        "commit_rss_mb": {"start": start_rss, "peak": _peak_rss_mb()},
    })
    if span:
        summary["windows"] = got.counts["rows"].get("windows", 0)
    write_text_atomic(summary_path, [json.dumps(summary, ensure_ascii=False, sort_keys=True)])
    shutil.rmtree(staging_dir, ignore_errors=True)
    return summary


def _gather(items) -> _Gathered:
    """Sort the tagged elements the workers sent (see `finalize_build`) by kind."""
    infos, keys = [], {"rows": (0, 0), "mix": (0, 0)}
    parts: Dict[str, List[dict]] = {"rows": [], "mix": [], "dead": []}
    questions: List[dict] = []
    for kind, value in items:
        if kind == "shard":
            infos.append(value)
        elif kind == "question":
            questions.append(value)
        elif kind == "part":
            parts[value["kind"]].append(value)
        elif kind == "keys":
            keys[value[0]] = value[1]
    counts: Dict[str, Dict[str, int]] = {k: {} for k in parts}
    for kind, descriptors in parts.items():
        for d in descriptors:
            add_counts(counts[kind], dict(d["counts"], rows=d["rows"]))
    infos.sort(key=lambda i: i.name)
    return _Gathered(infos, parts, counts, keys, questions)


def _commit(cache: TeacherCache, got: _Gathered, known_shards: Sequence[str], cache_path: str):
    """Commit the build's shards (TeacherCache.commit); returns those added. Nothing is
    committed unless the shards hold as many rows as the join found keys missing."""
    scored = sum(i.rows for i in got.infos)  # records' and mixup pairs' outputs alike
    to_score = sum(distinct - cached for distinct, cached in got.keys.values())
    if scored != to_score:
        raise CacheError(f"the build scored {scored} row(s) but {to_score} key(s) were missing "
                         f"from cache {cache_path!r}: nothing committed; run the build again")
    return cache.commit(got.infos, known=known_shards)


def _replaced(before: Dict[str, dict], after: Dict[str, dict],
              corpus_names: Sequence[str]) -> Dict[str, Dict[str, int]]:
    """The corpora of these names that held other rows before the build. A corpus of the same
    name from another input (another sample, another file) is replaced: said in the summary,
    since trainers that name the corpus now read other rows."""
    return {name: {"rows_before": before[name]["rows"], "rows_after": after[name]["rows"]}
            for name in corpus_names
            if name in before and before[name].get("sha256") != after[name].get("sha256")}


def _counts_summary(got: _Gathered, added, dead_n: int) -> Dict[str, Any]:
    """The summary's counts: records, copies, keys, rows scored and committed, shards, dead
    letters (by reason), mixup pairs and part files."""
    rows = got.counts["rows"]
    originals_n = rows.get("originals", 0)
    scored = sum(i.rows for i in got.infos)
    reasons = {name.split(":", 1)[1]: n for name, n in got.counts["dead"].items()
               if name.startswith("reason:")}
    return {
        "records_read": originals_n,
        "augmented_copies": rows.get("records", rows.get("rows", 0)) - originals_n,
        "unique_keys": got.keys["rows"][0],
        "newly_scored": scored,
        "cache_hits": got.keys["rows"][1] + got.keys["mix"][1],  # of records' and pairs' keys
        "committed_rows": sum(i.rows for i in added),
        # rows this build scored that another writer committed first (commit skips those keys)
        "committed_by_other": scored - sum(i.rows for i in added),
        "shards_written": len(got.infos),
        "bytes_written": sum(i.bytes for i in got.infos),
        "truncated": rows.get("truncated", 0),
        "dead_letters": dead_n,
        "dead_letter_reasons": dict(sorted(reasons.items())),
        "mixup_pairs": got.counts["mix"].get("rows", 0),
        "mixup_unique_keys": got.keys["mix"][0],
        # how many sorted part files the workers wrote, merged here (corpus rows, mixup, dead)
        "part_files": {kind: len(descriptors) for kind, descriptors in got.parts.items()},
    }


def _strip_keys(info):
    """A ShardInfo without its key list (the commit does not need it: keys stay on disk)."""
    return dataclasses.replace(info, keys=())


class CommitAndIndex(beam.PTransform):
    """(ShardInfos, keyed records, dead letters, mixup pairs, key counts, question rows) → one
    summary dict,
    after commit and indexing. `staging_dir` (distiller.builders.cache.corpusparts.staging_dir)
    receives
    the parts; `known_shards` are the shards committed when the build started."""

    def __init__(self, *, cache_path: str, corpus_names: Sequence[str], dead_letter_path: str,
                 summary_path: str, staging_dir: str, known_shards: Sequence[str] = (),
                 mixup: bool = False, task: Optional[Dict[str, Any]] = None,
                 labelled: bool = True, by_shuffle: bool = False):
        super().__init__()
        self.staging_dir, self.by_shuffle = staging_dir, by_shuffle
        self.kwargs = dict(cache_path=cache_path, corpus_names=list(corpus_names),
                           dead_letter_path=dead_letter_path, summary_path=summary_path,
                           staging_dir=staging_dir, known_shards=list(known_shards), mixup=mixup,
                           task=task, labelled=labelled)

    def expand(self, inputs):
        shard_infos, records, dead_letters, pairs, key_counts, questions = inputs
        parts = [
            records | "corpus_parts" >> WriteParts(self.staging_dir, "rows",
                                                   by_shuffle=self.by_shuffle),
            dead_letters | "dead_letter_parts" >> WriteParts(self.staging_dir, "dead",
                                                             by_shuffle=self.by_shuffle),
            pairs | "mixup_parts" >> WriteParts(self.staging_dir, "mix",
                                                by_shuffle=self.by_shuffle),
        ]
        tagged = (
            shard_infos | "tag_shards" >> beam.Map(lambda i: ("shard", _strip_keys(i))),
            parts | "all_parts" >> beam.Flatten() | "tag_parts" >> beam.Map(
                lambda d: ("part", d)),
            key_counts | "tag_key_counts" >> beam.Map(lambda c: ("keys", c)),
            questions | "tag_questions" >> beam.Map(lambda q: ("question", q)),
            # one element always present, so an empty corpus still gets its summary
            shard_infos.pipeline | "always_one" >> beam.Create([("start", None)]),
        )
        return (tagged
                | "merge" >> beam.Flatten()
                | "to_one_worker" >> beam.Map(lambda x: (None, x))
                | "gather" >> beam.GroupByKey()
                | "commit_index_report" >> beam.Map(finalize_build, **self.kwargs))
