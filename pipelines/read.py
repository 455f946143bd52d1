"""ReadCorpus: a local corpus file → records and dead letters, read in parallel splits.

Formats: GLUE TSV (header, no quoting), CSV (header), JSONL, Parquet, and a `datasets` dataset
saved with ``save_to_disk``. Line formats are cut into byte-range splits at line boundaries (one
cheap scan counts rows so ids stay ``file:row``), Parquet into row groups, `datasets` into row
ranges; the splits are reshuffled so several workers read at once. Every row goes through
`augment.records.parse_row` — the same validation as the local readers — and a row that cannot
become a record becomes a `DeadLetter` with its reason. Nothing is dropped silently.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
from typing import Any, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam

from augment.records import ColumnMap, DeadLetter, parse_row
from augment.records import _detect_format  # one place decides what a path's format is

__all__ = ["ReadCorpus", "Split", "plan_splits", "read_split", "to_record_or_dead_letter",
           "is_record", "is_dead_letter"]

_ROWS = beam.metrics.Metrics.counter("distiller", "rows_read")
_DEAD = beam.metrics.Metrics.counter("distiller", "dead_letters_on_read")

ROWS_PER_SPLIT = 2000  # rows per parallel read unit; small enough to spread over workers


@dataclasses.dataclass(frozen=True)
class Split:
    """One unit of parallel reading: rows [first_row, first_row + num_rows) of a file.

    For line formats ``start``/``end`` are byte offsets; for Parquet ``start`` is a row group;
    for a `datasets` directory ``start``/``end`` are row numbers.
    """

    path: str
    fmt: str
    first_row: int
    start: int
    end: int
    header: Optional[Tuple[str, ...]] = None


def _read_header(fmt: str, header_raw: bytes) -> Tuple[str, ...]:
    text = header_raw.decode("utf-8-sig")
    if fmt == "tsv":
        return tuple(text.rstrip("\r\n").split("\t"))
    return tuple(next(csv.reader([text])))


def plan_splits(path: str, fmt: Optional[str] = None, *, rows_per_split: int = ROWS_PER_SPLIT,
                limit: Optional[int] = None) -> Iterator[Split]:
    """Cut a file into `Split`s of about `rows_per_split` rows (the first `limit` rows only)."""
    fmt = fmt or _detect_format(path)
    if fmt in ("tsv", "csv", "jsonl"):
        with open(path, "rb") as fh:
            header = _read_header(fmt, fh.readline()) if fmt != "jsonl" else None
            start = fh.tell()
            row = first = 0
            offset = start
            for line in fh:
                if limit is not None and row >= limit:
                    break
                offset += len(line)
                row += 1
                if row - first == rows_per_split:
                    yield Split(path, fmt, first, start, offset, header)
                    start, first = offset, row
            if row > first:
                yield Split(path, fmt, first, start, offset, header)
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
        first = 0
        for group in range(meta.num_row_groups):
            if limit is not None and first >= limit:
                break
            n = meta.row_group(group).num_rows
            yield Split(path, fmt, first, group, group + 1)
            first += n
    elif fmt == "hf":
        import datasets

        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            raise ValueError(f"{path!r} holds several splits {list(ds)}: point --input at one "
                             "split's directory")
        total = len(ds) if limit is None else min(limit, len(ds))
        for first in range(0, total, rows_per_split):
            last = min(total, first + rows_per_split)
            yield Split(path, fmt, first, first, last)
    else:
        raise ValueError(f"unknown input format {fmt!r}: use tsv, csv, jsonl, parquet or hf")


def _parse_line(fmt: str, header: Optional[Tuple[str, ...]], line: bytes):
    """(row dict or None, error or None, raw text) for one line; mirrors records.iter_rows."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None, "undecodable bytes", line.decode("utf-8", "replace").rstrip("\r\n")
    if fmt == "jsonl":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"malformed row: invalid JSON ({exc.msg})", text
        if not isinstance(obj, dict):
            return None, "malformed row: JSON value is not an object", text
        return obj, None, text
    if not text.strip():
        return None, "malformed row: blank line", text
    fields = text.split("\t") if fmt == "tsv" else next(csv.reader([text]))
    if len(fields) != len(header):
        return None, f"malformed row: {len(fields)} fields, header has {len(header)}", text
    return dict(zip(header, fields)), None, text


def read_split(split: Split) -> Iterator[Tuple[int, Optional[Dict[str, Any]], Optional[str],
                                               Optional[str]]]:
    """Yield (row index, row dict or None, error or None, raw text) for every row of a split."""
    if split.fmt in ("tsv", "csv", "jsonl"):
        with open(split.path, "rb") as fh:
            fh.seek(split.start)
            data = fh.read(split.end - split.start)
        for i, line in enumerate(io.BytesIO(data)):  # splits on b"\n" only, like iter_rows
            row, error, raw = _parse_line(split.fmt, split.header, line)
            yield split.first_row + i, row, error, raw
    elif split.fmt == "parquet":
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(split.path).read_row_group(split.start).to_pylist()
        for i, row in enumerate(rows):
            yield split.first_row + i, row, None, None
    elif split.fmt == "hf":
        import datasets

        ds = datasets.load_from_disk(split.path).select(range(split.start, split.end))
        for i, row in enumerate(ds):
            yield split.first_row + i, row, None, None
    else:
        raise ValueError(f"unknown split format {split.fmt!r}")


def to_record_or_dead_letter(item, *, columns: ColumnMap, source: str,
                             limit: Optional[int] = None) -> List[Tuple[str, Any]]:
    """[("record", record)] or [("dead", DeadLetter)] for one (index, row, error, raw) item."""
    index, row, error, raw = item
    if limit is not None and index >= limit:
        return []
    _ROWS.inc()
    if row is None:
        parsed = DeadLetter(source=source, row=index, reason=error, raw=raw or "")
    else:
        parsed = parse_row(row, columns=columns, source=source, index=index, raw=raw)
    if isinstance(parsed, DeadLetter):
        _DEAD.inc()
        return [("dead", parsed)]
    return [("record", parsed)]


def is_record(tagged) -> bool:
    return tagged[0] == "record"


def is_dead_letter(tagged) -> bool:
    return tagged[0] == "dead"


class ReadCorpus(beam.PTransform):
    """PBegin → (records, dead letters): one input file, read in parallel splits.

    Records are ``{"id", "text_a", "text_b", "label"}`` dicts with ids ``<file name>:<row>``
    (or ``<file name>:<id column>=<value>``), dead letters are `DeadLetter`s. Tagging is done on
    plain tuples (no multi-output ParDo) so every runner, the Dask one included, runs it.
    """

    def __init__(self, path: str, *, columns: ColumnMap, fmt: Optional[str] = None,
                 limit: Optional[int] = None, rows_per_split: int = ROWS_PER_SPLIT):
        super().__init__()
        self.path, self.columns, self.limit = path, columns, limit
        self.fmt = fmt or _detect_format(path)
        self.rows_per_split = rows_per_split

    def expand(self, pbegin):
        tagged = (
            pbegin
            | "input_path" >> beam.Create([self.path])
            | "plan_splits" >> beam.FlatMap(plan_splits, self.fmt,
                                            rows_per_split=self.rows_per_split, limit=self.limit)
            | "spread_splits" >> beam.Reshuffle()
            | "read_rows" >> beam.FlatMap(read_split)
            | "parse_rows" >> beam.FlatMap(to_record_or_dead_letter, columns=self.columns,
                                           source=self.path, limit=self.limit))
        records = tagged | "records" >> beam.Filter(is_record) | "untag_records" >> beam.Map(
            lambda t: t[1])
        dead = tagged | "dead_letters" >> beam.Filter(is_dead_letter) | "untag_dead" >> beam.Map(
            lambda t: t[1])
        return records, dead
