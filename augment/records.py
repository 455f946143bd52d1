"""Records and local-file readers shared by the CLI commands and the Beam pipelines.

A record is a plain dict: ``id`` (stable, derived from the source file and row unless an id column
is given), ``text_a``, ``text_b`` (None for single sentences), ``label`` (int, float or None) and,
for augmented copies, provenance (``parent_id``, ``chain``, ``copy``, ``seed``).

Bad input never disappears: `parse_row` returns a `DeadLetter` with the reason instead of a record.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Any, Dict, Iterator, Optional, Sequence, Union

__all__ = [
    "ColumnMap", "DeadLetter", "TASK_COLUMNS", "column_map_for_task", "parse_row",
    "iter_rows", "read_records", "record_id",
]

csv.field_size_limit(1 << 24)


@dataclasses.dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold text_a, text_b, label and (optionally) a record id.

    labels: for classification, the allowed label values as they appear in the file (strings);
    None with ``regression=True`` means a float label; None otherwise accepts any integer.
    """

    text_a: str
    text_b: Optional[str] = None
    label: Optional[str] = None
    id: Optional[str] = None
    labels: Optional[Sequence[str]] = None
    regression: bool = False
    label_required: bool = True

    def __post_init__(self) -> None:
        if not self.text_a:
            raise ValueError("ColumnMap.text_a must name a column, got an empty name")


TASK_COLUMNS: Dict[str, ColumnMap] = {
    "sst2": ColumnMap(text_a="sentence", label="label", labels=("0", "1")),
    "rte": ColumnMap(text_a="sentence1", text_b="sentence2", label="label", id="idx",
                     labels=("0", "1")),
    "stsb": ColumnMap(text_a="sentence1", text_b="sentence2", label="score", regression=True),
}
_TASK_ALIASES = {"sst-2": "sst2", "sst_2": "sst2", "sts-b": "stsb", "sts_b": "stsb"}


def column_map_for_task(task: str) -> ColumnMap:
    """The column map of a known GLUE task (sst2, rte, stsb); a clear error otherwise."""
    name = _TASK_ALIASES.get(task.lower(), task.lower())
    if name not in TASK_COLUMNS:
        raise ValueError(
            f"unknown task {task!r}: known tasks are {sorted(TASK_COLUMNS)}; for another file "
            "give the columns explicitly (--text-a/--text-b/--label)")
    return TASK_COLUMNS[name]


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A row that could not become a record, with where it came from and why."""

    source: str
    row: int
    reason: str
    raw: str

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def record_id(source: str, row: int) -> str:
    """Stable id from the source file's base name and the 0-based data row number."""
    return f"{os.path.basename(source)}:{row}"


def parse_row(row: Dict[str, Any], *, columns: ColumnMap, source: str, index: int,
              raw: Optional[str] = None) -> Union[Dict[str, Any], DeadLetter]:
    """Turn one source row (column -> value) into a record, or a DeadLetter with the reason."""
    raw_text = raw if raw is not None else json.dumps(row, default=str, ensure_ascii=False)

    def dead(reason: str) -> DeadLetter:
        return DeadLetter(source=source, row=index, reason=reason, raw=raw_text)

    texts = {}
    for field, column in (("text_a", columns.text_a), ("text_b", columns.text_b)):
        if column is None:
            texts[field] = None
            continue
        if column not in row:
            return dead(f"malformed row: missing column {column!r}")
        value = row[column]
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return dead(f"undecodable bytes in column {column!r}")
        if value is None or not str(value).strip():
            return dead(f"empty text in column {column!r}")
        value = str(value)
        if "\ufffd" in value:
            return dead(f"undecodable bytes in column {column!r}")
        texts[field] = value

    label: Any = None
    if columns.label is not None:
        value = row.get(columns.label)
        if value is None or str(value).strip() == "":
            if columns.label_required:
                return dead(f"missing label in column {columns.label!r}")
        else:
            value = str(value).strip()
            if columns.regression:
                try:
                    label = float(value)
                except ValueError:
                    return dead(f"label {value!r} is not a number")
            elif columns.labels is not None:
                if value not in columns.labels:
                    return dead(f"unknown label {value!r} (expected one of {list(columns.labels)})")
                label = list(columns.labels).index(value)
            else:
                try:
                    label = int(value)
                except ValueError:
                    return dead(f"label {value!r} is not an integer class id")

    if columns.id is not None and row.get(columns.id) not in (None, ""):
        rid = f"{os.path.basename(source)}:{columns.id}={row[columns.id]}"
    else:
        rid = record_id(source, index)
    return {"id": rid, "text_a": texts["text_a"], "text_b": texts["text_b"], "label": label}


def _detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    formats = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
               ".parquet": "parquet"}
    if ext in formats:
        return formats[ext]
    if os.path.isdir(path):
        return "hf"
    raise ValueError(f"cannot tell the format of {path!r}: use .tsv, .csv, .jsonl, .parquet, a "
                     "saved `datasets` directory, or pass the format explicitly")


def iter_rows(path: str, fmt: Optional[str] = None) -> Iterator[tuple]:
    """Yield (index, row dict or None, raw line) for each data row of a local file.

    A row that cannot be parsed at all (wrong field count, bad JSON, bad bytes) comes with
    ``row=None`` and the reason in place of the dict, so the caller can dead-letter it.
    GLUE TSV files have a header row and no quoting (csv.QUOTE_NONE).
    """
    fmt = fmt or _detect_format(path)
    if fmt in ("tsv", "csv"):
        with open(path, "rb") as fh:
            header_raw = fh.readline()
            delim = "\t" if fmt == "tsv" else ","
            header = header_raw.decode("utf-8-sig").rstrip("\r\n").split(delim) if fmt == "tsv" \
                else next(csv.reader([header_raw.decode("utf-8-sig")]))
            for index, line in enumerate(fh):
                try:
                    text = line.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    yield index, None, "undecodable bytes", line.decode("utf-8", "replace")
                    continue
                if not text.strip():
                    yield index, None, "malformed row: blank line", text
                    continue
                if fmt == "tsv":
                    fields = text.split("\t")
                else:
                    fields = next(csv.reader([text]))
                if len(fields) != len(header):
                    yield (index, None, f"malformed row: {len(fields)} fields, header has "
                           f"{len(header)}", text)
                    continue
                yield index, dict(zip(header, fields)), None, text
    elif fmt == "jsonl":
        with open(path, "rb") as fh:
            for index, line in enumerate(fh):
                try:
                    text = line.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError:
                    yield index, None, "undecodable bytes", line.decode("utf-8", "replace")
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield index, None, f"malformed row: invalid JSON ({exc.msg})", text
                    continue
                if not isinstance(obj, dict):
                    yield index, None, "malformed row: JSON value is not an object", text
                    continue
                yield index, obj, None, text
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        for index, row in enumerate(pq.read_table(path).to_pylist()):
            yield index, row, None, None
    elif fmt == "hf":
        import datasets

        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            raise ValueError(f"{path!r} holds several splits {list(ds)}: point at one split's "
                             "directory")
        for index, row in enumerate(ds):
            yield index, row, None, None
    else:
        raise ValueError(f"unknown input format {fmt!r}: use tsv, csv, jsonl, parquet or hf")


def read_records(path: str, columns: ColumnMap, fmt: Optional[str] = None,
                 limit: Optional[int] = None) -> Iterator[Union[Dict[str, Any], DeadLetter]]:
    """Yield records or DeadLetters for every data row of a local file (first `limit` rows)."""
    for index, row, error, raw in iter_rows(path, fmt):
        if limit is not None and index >= limit:
            break
        if row is None:
            yield DeadLetter(source=path, row=index, reason=error, raw=raw or "")
        else:
            yield parse_row(row, columns=columns, source=path, index=index, raw=raw)
