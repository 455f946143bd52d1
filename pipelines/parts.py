"""WriteParts: what the last step indexes (corpus rows, mixup rows, dead letters), written by the
workers as sorted part files; only a small descriptor per part travels on
(distiller.builders.cache.corpusparts).

Each element becomes one JSON line (the exact line of the final file) plus what the summary
counts; lines are batched (Beam's BatchElements, or a shuffle on the Dask runner, which loses what
a DoFn emits from ``finish_bundle``), each batch sorted and written as one part of at most
`PART_ROWS` lines. A descriptor says the part's file, its rows and its counts (originals,
truncated texts, dead-letter reasons), so the committing step sums numbers instead of rows.
"""
from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterator, List, Tuple

import apache_beam as beam

from distiller.common.errors import UsageError
from distiller.common.seeding import stable_hash
from distiller.builders.cache.corpus_rows import SPAN_FIELDS, corpus_item
from distiller.builders.cache.corpusparts import PART_ROWS, write_part
from distiller.pipelines.mixup import mixup_corpus_row

__all__ = ["WriteParts", "corpus_row", "reason_category", "row_entry", "mix_entry",
           "dead_entry", "add_counts"]

_REASON_CATEGORIES = (
    ("malformed row", re.compile(r"^malformed row")),
    ("empty text", re.compile(r"^empty text")),
    ("undecodable bytes", re.compile(r"^undecodable bytes")),
    ("NUL byte", re.compile(r"^NUL byte")),
    ("wrong type", re.compile(r"^wrong type")),
    ("missing label", re.compile(r"^missing label")),
    ("unknown label", re.compile(r"^unknown label|^label .* is not")),
    ("text too long", re.compile(r"^text over the length limit")),
    ("malformed row", re.compile(r"^malformed entry")),
    ("answer not in context", re.compile(r"^answer text .* is not at its answer_start")),
    ("no answer", re.compile(r"^question without an answer")),
    ("duplicate id", re.compile(r"^duplicate question id")),
)
_SHUFFLE_GROUPS = 64


def reason_category(reason: str) -> str:
    """A short category of a dead-letter reason ('malformed row', 'empty text', ...)."""
    for name, pattern in _REASON_CATEGORIES:
        if pattern.search(reason):
            return name
    return "other"


def corpus_row(record: Dict[str, Any]) -> Dict[str, Any]:
    """The corpus-index row of a keyed record (originals: parent_id None, chain 'original');
    a question-answering window keeps its window fields
    (distiller.builders.cache.store.SPAN_FIELDS)."""
    row = {"id": record["id"], "key": record["key"], "label": record.get("label"),
           "parent_id": record.get("parent_id"), "chain": record.get("chain", "original"),
           "copy": int(record.get("copy", 0))}
    if record.get("window") is not None:
        row.update({f: record[f] for f in SPAN_FIELDS})
    return row


def _line(item: Dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True)


def row_entry(record: Dict[str, Any]) -> Tuple[str, Dict[str, int]]:
    """(corpus line, counts) of a keyed record."""
    item = corpus_item(corpus_row(record))
    # a question's windows share its id: records count once, by their first window
    first = int(record.get("window") or 0) == 0
    return _line(item), {"originals": int(item["parent_id"] is None and first),
                         "records": int(first), "windows": int(record.get("window") is not None),
                         "truncated": int(bool(record.get("truncated")))}


def mix_entry(pair: Dict[str, Any]) -> Tuple[str, Dict[str, int]]:
    """(corpus line, counts) of a mixup pair row (its pairing fields kept for the trainer)."""
    return _line(corpus_item(mixup_corpus_row(pair))), {}


def dead_entry(dead) -> Tuple[str, Dict[str, int]]:
    """(dead-letter line, counts) of a `distiller.taskdata.records.DeadLetter`."""
    line = json.dumps(dead.to_dict(), ensure_ascii=False, sort_keys=True)
    return line, {f"reason:{reason_category(dead.reason)}": 1}


def add_counts(total: Dict[str, int], more: Dict[str, int]) -> Dict[str, int]:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value
    return total


def _write(batch: List[Tuple[str, Dict[str, int]]], directory: str, kind: str
           ) -> Dict[str, Any]:
    descriptor = write_part(directory, kind, (line for line, _ in batch))
    counts: Dict[str, int] = {}
    for _, c in batch:
        add_counts(counts, c)
    return dict(descriptor, counts=counts)


def _group(entry: Tuple[str, Dict[str, int]]) -> Tuple[int, Tuple[str, Dict[str, int]]]:
    return int(stable_hash("part", entry[0], digest_size=4), 16) % _SHUFFLE_GROUPS, entry


def _cut(item, size: int) -> Iterator[List[Tuple[str, Dict[str, int]]]]:
    _, entries = item
    entries = list(entries)
    for start in range(0, len(entries), size):
        yield entries[start:start + size]


class WriteParts(beam.PTransform):
    """elements → one descriptor {"kind", "file", "rows", "counts"} per part file written into
    `directory` (a staging directory of the cache, reachable by every worker)."""

    _ENTRIES = {"rows": row_entry, "mix": mix_entry, "dead": dead_entry}

    def __init__(self, directory: str, kind: str, *, by_shuffle: bool = False,
                 part_rows: int = PART_ROWS):
        super().__init__()
        if kind not in self._ENTRIES:
            raise UsageError(f"kind must be one of {sorted(self._ENTRIES)}, got {kind!r}")
        self.directory, self.kind, self.by_shuffle = directory, kind, by_shuffle
        self.part_rows = part_rows

    def expand(self, elements):
        entries = elements | "to_lines" >> beam.Map(self._ENTRIES[self.kind])
        if self.by_shuffle:
            batches = (entries
                       | "hash_group" >> beam.Map(_group)
                       | "group" >> beam.GroupByKey()
                       | "cut_parts" >> beam.FlatMap(_cut, self.part_rows))
        else:
            batches = entries | "batch" >> beam.BatchElements(
                min_batch_size=self.part_rows, max_batch_size=self.part_rows)
        return batches | "write_parts" >> beam.Map(_write, self.directory, self.kind)
