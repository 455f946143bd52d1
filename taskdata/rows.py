"""One source row, cell by cell: a cell's value by column (`column_value`, `MISSING` when the row
lacks it), its text or why it has none (`cell_text`, `Unusable`), a row's stable id
(`record_id`) and the `DeadLetter` a row that cannot become a record is. The row parsers of
records.py and squad.py both stand on this module.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Dict, Mapping, Optional, Union

__all__ = ["MISSING", "DeadLetter", "record_id", "column_value", "Unusable", "cell_text",
           "cell_kind"]

MISSING = object()   # a column the row does not have


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
    """Stable id from the source's name (a file's base name) and the 0-based data row number."""
    return f"{source}:{row}"


def column_value(row: Mapping[Any, Any], column) -> Any:
    """The value of `column` in `row`: by name, by 0-based position, or the first present of
    alternatives (a tuple of names); MISSING when absent."""
    if isinstance(column, tuple):
        for name in column:
            if name in row:
                return row[name]
        return MISSING
    if column in row:
        return row[column]
    if isinstance(column, int) and not isinstance(column, bool):
        values = list(row.values())
        return values[column] if column < len(values) else MISSING
    return MISSING


@dataclasses.dataclass(frozen=True)
class Unusable:
    """Why a cell cannot be a text: the reason its row becomes a dead letter. A value of its own
    type, so that no text (whatever its first character) can be mistaken for a reason."""

    reason: str


def cell_text(value: Any, column) -> Union[str, Unusable]:
    """The text of a cell, or `Unusable` with the reason it is not a text.

    Strings and UTF-8 bytes are texts; a number (a JSONL or Parquet cell such as ``42`` or
    ``1.5``) is taken as its decimal text. A list, a mapping or a boolean is not a text (its
    Python form, ``['a', 'b']`` or ``True``, is not what the file holds): the row is unusable."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return Unusable(f"undecodable bytes in column {column!r}")
    if value is None:
        return Unusable(f"empty text in column {column!r}")
    if not isinstance(value, str):
        kind = cell_kind(value)
        if kind is not None:
            return Unusable(f"wrong type in column {column!r}: {kind}, not a text")
        value = str(value)
    if "\x00" in value:
        # A NUL byte marks a damaged or binary row; a tokenizer would score the text as if the
        # byte were not there, so the row is set aside rather than silently altered.
        return Unusable(f"NUL byte in column {column!r} (a damaged or binary row)")
    if "\ufffd" in value:
        return Unusable(f"undecodable bytes in column {column!r}")
    if not value.strip():
        return Unusable(f"empty text in column {column!r}")
    return value


def cell_kind(value: Any) -> Optional[str]:
    """What a cell that is not a string is, when it must not be read as text; None for a number
    (Python's, numpy's or Decimal), whose decimal text is the text."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, numbers.Number):
        return None
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"
