"""The one reader: any input (see `distiller.taskdata.sources`) → records and dead letters, in
splits.

Every command reads through these functions: `read_records` runs them in order in one process,
`distiller.pipelines.read.ReadCorpus` runs the same `plan_splits` / `read_split` / `to_record` on
Beam workers. Line formats are cut into byte ranges at row boundaries (one scan counts rows, so ids
stay
``file:row``; in a CSV a newline inside a quoted field is no boundary), Parquet into row groups,
datasets into row ranges; a compressed file is one split.

Parsing: TSV and CSV go through pyarrow's CSV parser (TSV as GLUE ships it: no quoting; CSV with
RFC 4180 quoting, so a quoted field may hold a newline), every column read as bytes so that bad
UTF-8 becomes a dead letter of its row, not a failed file. A row with the wrong number of fields,
a blank line, invalid JSON, bad bytes, a NUL byte, an empty text or a label outside the task's
labels each becomes a `DeadLetter` naming the row and the reason. A UTF-8 byte-order mark and
CRLF line ends are handled; a UTF-16 or UTF-32 file is an error naming its encoding
(distiller.taskdata.encoding), and an empty file has no rows. A column the task names but the header
lacks is an error before any row is read. The official SQuAD JSON (format "squad") is read by
`distiller.taskdata.squad`.
"""
from __future__ import annotations

import functools
import io
import json
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from distiller.common.errors import UsageError

from .encoding import check_encoding
from .records import DeadLetter, parse_row
from .sources import Input, resolve_inputs
from .splits import Split
from .squad import FIELDS, plan_squad, read_squad_split
from .task import Task

__all__ = ["Split", "plan_splits", "read_split", "to_record", "read_records", "check_input",
           "ROWS_PER_SPLIT"]

ROWS_PER_SPLIT = 2000   # rows per parallel read unit: small enough to spread over workers
_BOM = b"\xef\xbb\xbf"
_LINE_FORMATS = ("tsv", "csv", "jsonl", "text")
Item = Tuple[int, Optional[Dict[Any, Any]], Optional[str], Optional[str]]


# ---------------------------------------------------------------------------- columns
def _needed(task: Task, labelled: bool) -> List[Any]:
    cols = [task.text_a] + ([task.text_b] if task.text_b is not None else [])
    if labelled and task.label is not None:
        cols.append(task.label)
    return cols


def _check_columns(inp: Input, task: Task, labelled: bool, names: Sequence[str],
                   header: bool) -> None:
    """A one-line error before any work when the task names a column the input lacks."""
    for col in _needed(task, labelled):
        if isinstance(col, int):
            ok = col < len(names)
        elif isinstance(col, tuple):
            ok = any(c in names for c in col)
        else:
            ok = col in names
        if ok:
            continue
        shown = list(names)[:12]
        if not header:
            raise UsageError(f"{inp.name}: column {col!r} is not there: the file has no header "
                             f"row and {len(names)} columns; give columns by 0-based position")
        hint = ("; if the file has no header row, pass --no-header and columns by 0-based "
                "position" if isinstance(col, str) else "")
        what = "label column" if col == task.label else "column"
        raise UsageError(f"{inp.name}: {what} {col!r} not found (the columns are {shown})"
                         f"{hint}")


def _split_fields(fmt: str, line: bytes) -> List[str]:
    import csv

    text = line.decode("utf-8", "replace").rstrip("\r\n")
    return text.split("\t") if fmt == "tsv" else next(csv.reader([text]), [])


def _head(inp: Input, task: Task) -> Tuple[int, Optional[Tuple[str, ...]]]:
    """(byte offset of the first data row, column names) of an uncompressed line-format file;
    no names for an empty file (no rows, nothing to check)."""
    with inp.open() as fh:
        start = 3 if fh.read(3) == _BOM else 0
        fh.seek(start)
        first = fh.readline()
    if inp.fmt not in ("tsv", "csv") or not first:
        return start, None
    fields = _split_fields(inp.fmt, first)
    if task.header:
        return start + len(first), tuple(fields)
    return start, tuple(str(i) for i in range(len(fields)))


def check_input(spec: str, task: Task, *, labelled: bool = True) -> List[Input]:
    """Resolve an input and check that it has the task's columns (headers and schemas only);
    returns the inputs. Cheap: nothing beyond a header or a schema is read."""
    inputs = resolve_inputs(spec, task.format)
    for inp in inputs:
        check_encoding(inp)
        names = _column_names(inp, task)
        if names is not None:
            _check_columns(inp, task, labelled, names,
                           task.header or inp.fmt not in ("tsv", "csv"))
    return inputs


def _column_names(inp: Input, task: Task) -> Optional[Sequence[str]]:
    """The column names an input has (None: per row, or an empty file with no rows)."""
    if inp.fmt in ("tsv", "csv"):
        if inp.compression:
            with inp.open() as fh:
                first = fh.readline()
            first = first[3:] if first.startswith(_BOM) else first
            if not first:
                return None
            fields = _split_fields(inp.fmt, first)
            return fields if task.header else [str(i) for i in range(len(fields))]
        return _head(inp, task)[1]
    if inp.fmt == "parquet":
        import pyarrow.parquet as pq

        with inp.open() as fh:
            return pq.ParquetFile(fh).schema_arrow.names
    if inp.fmt in ("saved", "hub"):
        return list(_dataset(inp).column_names)
    if inp.fmt == "squad":
        return FIELDS
    return None  # jsonl, text: per row


# ---------------------------------------------------------------------------- planning
def plan_splits(spec: Union[str, Sequence[Input]], task: Task, *,
                rows_per_split: int = ROWS_PER_SPLIT, limit: Optional[int] = None,
                labelled: bool = True) -> Iterator[Split]:
    """Cut an input into `Split`s of about `rows_per_split` rows (the first `limit` rows only)."""
    inputs = check_input(spec, task, labelled=labelled) if isinstance(spec, str) else spec
    left = limit
    for inp in inputs:
        if left is not None and left <= 0:
            return
        for split in _plan_one(inp, task, rows_per_split, left):
            if left is not None:
                left -= _rows_of(split)
            yield split


def _rows_of(split: Split) -> int:
    return split.max_rows or 0


def _plan_one(inp: Input, task: Task, rows_per_split: int, limit: Optional[int]
              ) -> Iterator[Split]:
    if inp.fmt == "squad":
        yield from plan_squad(inp, rows_per_split, limit)
    elif inp.fmt in _LINE_FORMATS:
        if inp.compression:   # no random access: one split (rows counted by a first pass)
            columns = _column_names(inp, task) if inp.fmt in ("tsv", "csv") else None
            yield from _plan_lines(inp, 0, tuple(columns) if columns else None, None, limit,
                                   header=task.header and inp.fmt in ("tsv", "csv"))
            return
        start, columns = _head(inp, task)
        yield from _plan_lines(inp, start, columns, rows_per_split, limit,
                               header=task.header and inp.fmt in ("tsv", "csv"))
    elif inp.fmt == "parquet":
        import pyarrow.parquet as pq

        with inp.open() as fh:
            meta = pq.ParquetFile(fh).metadata
        first = 0
        for group in range(meta.num_row_groups):
            if limit is not None and first >= limit:
                break
            n = meta.row_group(group).num_rows
            cap = n if limit is None else min(n, limit - first)
            yield Split(inp, first, group, group + 1, max_rows=cap)
            first += n
    else:
        total = len(_dataset(inp))
        total = total if limit is None else min(limit, total)
        for first in range(0, total, rows_per_split):
            last = min(total, first + rows_per_split)
            yield Split(inp, first, first, last, max_rows=last - first)


def _plan_lines(inp: Input, start: int, columns, rows_per_split: Optional[int],
                limit: Optional[int], header: bool = False) -> Iterator[Split]:
    """Row-boundary byte ranges (one split when rows_per_split is None: a compressed file, whose
    header and byte-order mark the reader skips). In a CSV a line ends a row only outside quotes:
    after an even number of quote characters (RFC 4180 doubles quotes inside quoted fields)."""
    quoted = inp.fmt == "csv"
    positional = columns is not None and not header
    with inp.open() as fh:
        fh.seek(start)
        row = first = 0
        offset = split_start = start
        inside = False
        skip = rows_per_split is None and header
        if skip:
            fh.readline()
        for line in fh:
            if limit is not None and row >= limit:
                break
            offset += len(line)
            if quoted:
                inside ^= bool(line.count(b'"') & 1)
                if inside:
                    continue
            row += 1
            if rows_per_split is not None and row - first == rows_per_split:
                yield Split(inp, first, split_start, offset, columns, max_rows=row - first,
                            positional=positional)
                split_start, first = offset, row
        rows = row - first + (1 if inside else 0)
        if rows_per_split is None and rows:
            yield Split(inp, 0, 0, -1, columns, max_rows=rows, skip_header=skip,
                        positional=positional)
        elif offset > split_start:
            yield Split(inp, first, split_start, offset, columns, max_rows=rows,
                        positional=positional)


# ---------------------------------------------------------------------------- reading
@functools.lru_cache(maxsize=8)
def _load_dataset(url: str, fmt: str, config: Optional[str], split: Optional[str]):
    import datasets

    if fmt == "saved":
        ds = datasets.load_from_disk(url)
    else:
        ds = datasets.load_dataset(url, config, split=split)
    if isinstance(ds, datasets.DatasetDict):
        how = "add @SPLIT to hf:NAME" if fmt == "hub" else "point at one split's directory"
        raise UsageError(f"{url!r} holds several splits {sorted(ds)}: {how}")
    return ds


def _dataset(inp: Input):
    return _load_dataset(inp.url, inp.fmt, inp.config, inp.split)


def read_split(split: Split, task: Task) -> Iterator[Item]:
    """(row index, row dict or None, error or None, raw text) for every row of a split; a row
    that cannot be parsed at all comes with row None and the reason."""
    inp = split.input
    if inp.fmt == "squad":
        items = read_squad_split(split)
    elif inp.fmt in _LINE_FORMATS:
        with inp.open() as fh:
            if split.end < 0:
                data = fh.read()
                data = data[3:] if data.startswith(_BOM) else data
                if split.skip_header:
                    data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
            else:
                fh.seek(split.start)
                data = fh.read(split.end - split.start)
        if inp.fmt in ("tsv", "csv"):
            items = _read_delimited(data, inp.fmt, split)
        else:
            items = _read_lines(data, inp.fmt, split, task)
    elif inp.fmt == "parquet":
        import pyarrow.parquet as pq

        with inp.open() as fh:
            rows = pq.ParquetFile(fh).read_row_group(split.start).to_pylist()
        items = ((split.first_row + i, row, None, None) for i, row in enumerate(rows))
    else:
        rows = _dataset(inp).select(range(split.start, split.end))
        items = ((split.first_row + i, row, None, None) for i, row in enumerate(rows))
    for n, item in enumerate(items):
        if split.max_rows is not None and n >= split.max_rows:
            break
        yield item


def _read_lines(data: bytes, fmt: str, split: Split, task: Task) -> Iterator[Item]:
    for i, line in enumerate(io.BytesIO(data)):   # splits on b"\n" only
        index = split.first_row + i
        try:
            text = line.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield index, None, "undecodable bytes", line.decode("utf-8", "replace").rstrip("\r\n")
            continue
        if fmt == "text":
            yield index, {task.text_a: text}, None, text
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = ("malformed row: blank line" if not text.strip() else
                      f"malformed row: invalid JSON ({exc.msg})")
            yield index, None, reason, text
            continue
        if not isinstance(obj, dict):
            yield index, None, "malformed row: JSON value is not an object", text
            continue
        yield index, obj, None, text


def _read_delimited(data: bytes, fmt: str, split: Split) -> Iterator[Item]:
    """TSV (no quoting, as GLUE ships it) or CSV (RFC 4180 quoting) through pyarrow's parser,
    every column as bytes; rows with the wrong number of fields come back as errors."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = list(split.columns or ())
    keys: List[Any] = list(range(len(names))) if split.positional else names
    bad: Dict[int, Tuple[str, str]] = {}

    def on_invalid(row) -> str:
        reason = (f"malformed row: {row.actual_columns} fields, expected "
                  f"{row.expected_columns}")
        bad[int(row.number)] = (reason, row.text)
        return "skip"

    unique = [f"c{i}" for i in range(len(names))]  # header names may repeat or be empty
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=unique, use_threads=False,
                                          block_size=max(1 << 20, len(data) + 1)),
            parse_options=pcsv.ParseOptions(
                delimiter="\t" if fmt == "tsv" else ",",
                quote_char=False if fmt == "tsv" else '"', newlines_in_values=fmt == "csv",
                ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(column_types={c: pa.binary() for c in unique},
                                                null_values=[], strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        yield split.first_row, None, f"malformed row: cannot parse from here on ({exc})", \
            data[:500].decode("utf-8", "replace")
        return
    columns = [table.column(c).to_pylist() for c in unique]
    total = table.num_rows + len(bad)
    delim = "\t" if fmt == "tsv" else ","
    valid = 0
    for number in range(1, total + 1):
        index = split.first_row + number - 1
        if number in bad:
            reason, text = bad[number]
            yield index, None, reason, text
            continue
        values = [col[valid] for col in columns]
        valid += 1
        raw = delim.join(v.decode("utf-8", "replace") for v in values)
        if not any(values) and len(values) > 1:
            yield index, None, "malformed row: blank line", ""
            continue
        yield index, dict(zip(keys, values)), None, raw


def to_record(item: Item, *, task: Task, source: str, labelled: bool = True
              ) -> Union[Dict[str, Any], DeadLetter]:
    """A record or a DeadLetter for one (index, row, error, raw) item of `read_split`."""
    index, row, error, raw = item
    if row is None:
        return DeadLetter(source=source, row=index, reason=error or "unreadable row",
                          raw=raw or "")
    return parse_row(row, task=task, source=source, index=index, raw=raw, labelled=labelled)


def read_records(spec: Union[str, Sequence[Input]], task: Task, *, labelled: bool = True,
                 limit: Optional[int] = None
                 ) -> Iterator[Union[Dict[str, Any], DeadLetter]]:
    """Records or DeadLetters for every row of an input (the first `limit` rows), in order."""
    for split in plan_splits(spec, task, limit=limit, labelled=labelled):
        for item in read_split(split, task):
            yield to_record(item, task=task, source=split.input.name, labelled=labelled)
