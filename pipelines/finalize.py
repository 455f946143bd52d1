"""CommitAndIndex: the build's single last step — commit shards, write corpora, dead letters and
the run summary.

Everything small converges here: the ShardInfos of the scoring step (never tensors), one corpus
row per record, and the dead letters. They are gathered on one worker under a single key and
handled in order: commit (one atomic manifest replace; keys another build committed meanwhile are
skipped), then the corpus index (which refers only to committed keys), then the dead-letter
JSONL and the summary JSON. Being the last transform of the pipeline, it also makes every runner
(the Dask one computes only the final step's graph) run the whole build.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Iterable, Optional, Sequence

import apache_beam as beam

from pipelines.mixup import mixup_corpus_row

__all__ = ["CommitAndIndex", "corpus_row", "reason_category", "finalize_build"]

_REASON_CATEGORIES = (
    ("malformed row", re.compile(r"^malformed row")),
    ("empty text", re.compile(r"^empty text")),
    ("undecodable bytes", re.compile(r"^undecodable bytes")),
    ("missing label", re.compile(r"^missing label")),
    ("unknown label", re.compile(r"^unknown label|^label .* is not")),
    ("text too long", re.compile(r"^text over the length limit")),
    ("malformed row", re.compile(r"^malformed entry")),
    ("answer not in context", re.compile(r"^answer text .* is not at its answer_start")),
    ("no answer", re.compile(r"^question without an answer")),
    ("duplicate id", re.compile(r"^duplicate question id")),
)


def reason_category(reason: str) -> str:
    """A short category of a dead-letter reason ('malformed row', 'empty text', ...)."""
    for name, pattern in _REASON_CATEGORIES:
        if pattern.search(reason):
            return name
    return "other"


def corpus_row(record: Dict[str, Any]) -> Dict[str, Any]:
    """The corpus-index row of a keyed record (originals: parent_id None, chain 'original');
    a question-answering window keeps its window fields (builders.cache.SPAN_FIELDS)."""
    from builders.cache import SPAN_FIELDS

    row = {"id": record["id"], "key": record["key"], "label": record.get("label"),
           "parent_id": record.get("parent_id"), "chain": record.get("chain", "original"),
           "copy": int(record.get("copy", 0))}
    if record.get("window") is not None:
        row.update({f: record[f] for f in SPAN_FIELDS})
    return row


def _write_jsonl_atomic(path: str, rows: Iterable[Dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def finalize_build(item, *, cache_path: str, corpus_names: Sequence[str],
                   dead_letter_path: str, summary_path: str, mixup: bool = False,
                   task: Optional[Dict[str, Any]] = None, labelled: bool = True
                   ) -> Dict[str, Any]:
    """Commit, index, write dead letters and the summary; returns the summary dict.

    corpus_names: [originals-only name] or [originals-only name, originals+copies name], then
    with ``mixup`` the name of the corpus that adds the mixup pair rows. task (a Task's dict) is
    recorded with every corpus; labelled False marks them unlabelled.
    """
    from builders.cache import TeacherCache

    _, items = item
    infos, rows, dead, mixed, questions = [], [], [], [], []
    truncated = 0
    for kind, value, *extra in items:
        if kind == "shard":
            infos.append(value)
        elif kind == "row":
            rows.append(value)
            truncated += int(bool(extra and extra[0]))
        elif kind == "dead":
            dead.append(value)
        elif kind == "mix":
            mixed.append(value)
        elif kind == "question":
            questions.append(value)
    cache = TeacherCache.open(cache_path)
    before = {name: dict(entry) for name, entry in cache.manifest.get("corpora", {}).items()}
    infos.sort(key=lambda i: i.name)
    added = cache.commit(infos)
    rows.sort(key=lambda r: (r["id"], r.get("window") or 0))
    originals = [r for r in rows if r["parent_id"] is None]
    plain_names = corpus_names[:-1] if mixup else corpus_names
    span = any(r.get("window") is not None for r in rows) or bool(questions)
    meta = dict(task=task, labelled=labelled)
    if span:   # question rows: decoding and scoring of each corpus (copies use their parent's)
        meta["questions"] = sorted(questions, key=lambda q: q["id"])
    cache.write_corpus(plain_names[0], originals, **meta)
    if len(plain_names) > 1:
        cache.write_corpus(plain_names[1], rows, **meta)
    if mixup:  # builders keeps (and checks) the pairing fields of mixup rows
        mixed.sort(key=lambda r: r["id"])
        cache.write_corpus(corpus_names[-1], rows + mixed, **meta)
    # A corpus of the same name from another input (another sample, another file) is replaced:
    # said in the summary, since trainers that name the corpus now read other rows.
    after = cache.manifest.get("corpora", {})
    replaced = {name: {"rows_before": before[name]["rows"], "rows_after": after[name]["rows"]}
                for name in corpus_names
                if name in before and before[name].get("sha256") != after[name].get("sha256")}
    dead.sort(key=lambda d: (d.source, d.row, d.reason))
    _write_jsonl_atomic(dead_letter_path, (d.to_dict() for d in dead))
    reasons: Dict[str, int] = {}
    for d in dead:
        reasons[reason_category(d.reason)] = reasons.get(reason_category(d.reason), 0) + 1
    unique_keys = len({r["key"] for r in rows})
    mixup_keys = len({r["key"] for r in mixed})
    scored = sum(i.rows for i in infos)  # records' and mixup pairs' outputs alike
    n_originals = len({r["id"] for r in originals})   # windows of a question share its id
    summary = {
        "records_read": n_originals,
        "augmented_copies": len({r["id"] for r in rows}) - n_originals,
        "unique_keys": unique_keys,
        "newly_scored": scored,
        "cache_hits": unique_keys + mixup_keys - scored,  # of records' and pairs' keys
        "committed_rows": sum(i.rows for i in added),
        # rows this build scored that another writer committed first (commit skips those keys)
        "committed_by_other": scored - sum(i.rows for i in added),
        "shards_written": len(infos),
        "bytes_written": sum(i.bytes for i in infos),
        "truncated": truncated,
        "dead_letters": len(dead),
        "dead_letter_reasons": dict(sorted(reasons.items())),
        "mixup_pairs": len(mixed),
        "mixup_unique_keys": mixup_keys,
        "corpora": {name: (len(originals) if n == 0 else len(rows) + (
            len(mixed) if mixup and n == len(corpus_names) - 1 else 0))
            for n, name in enumerate(corpus_names)},
        "corpora_replaced": replaced,
        "dead_letter_file": dead_letter_path,
    }
    if span:
        summary["windows"] = len(rows)
    _write_jsonl_atomic(summary_path, [summary])
    return summary


class CommitAndIndex(beam.PTransform):
    """(ShardInfos, keyed records, dead letters) → one summary dict, after commit and indexing."""

    def __init__(self, *, cache_path: str, corpus_names: Sequence[str], dead_letter_path: str,
                 summary_path: str, mixup: bool = False, task: Optional[Dict[str, Any]] = None,
                 labelled: bool = True):
        super().__init__()
        self.kwargs = dict(cache_path=cache_path, corpus_names=list(corpus_names),
                           dead_letter_path=dead_letter_path, summary_path=summary_path,
                           mixup=mixup, task=task, labelled=labelled)

    def expand(self, inputs):
        shard_infos, records, dead_letters, pairs, questions = inputs
        tagged = (
            shard_infos | "tag_shards" >> beam.Map(lambda i: ("shard", i)),
            records | "tag_rows" >> beam.Map(lambda r: ("row", corpus_row(r), r["truncated"])),
            dead_letters | "tag_dead" >> beam.Map(lambda d: ("dead", d)),
            pairs | "tag_pairs" >> beam.Map(lambda p: ("mix", mixup_corpus_row(p))),
            questions | "tag_questions" >> beam.Map(lambda q: ("question", q)),
            # one element always present, so an empty corpus still gets its summary
            shard_infos.pipeline | "always_one" >> beam.Create([("start", None)]),
        )
        return (tagged
                | "merge" >> beam.Flatten()
                | "to_one_worker" >> beam.Map(lambda x: (None, x))
                | "gather" >> beam.GroupByKey()
                | "commit_index_report" >> beam.Map(finalize_build, **self.kwargs))
