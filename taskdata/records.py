"""Records and dead letters: one source row → a record, or a `DeadLetter` saying why not.

A record is a plain dict: ``id`` (stable: ``<source>:<row>``, or ``<source>:<id column>=<value>``),
``text_a``, ``text_b`` (None for single texts), ``label`` (class index, float target or None),
for span tasks ``answers`` and ``is_impossible`` (distiller.taskdata.squad) and, for augmented
copies, provenance (``parent_id``, ``chain``, ``copy``, ``seed``). Nothing is dropped silently
(docs/architecture.md, "Guarantees"): every row that cannot become a record is a DeadLetter with
its source, row number, reason and raw text.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
from typing import Any, Dict, Mapping, Optional, Union

from .task import LabelError, Task

__all__ = ["DeadLetter", "Unusable", "cell_text", "parse_row", "record_id", "column_value",
           "MISSING"]

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
        kind = _kind(value)
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


def _kind(value: Any) -> Optional[str]:
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


def parse_row(row: Mapping[Any, Any], *, task: Task, source: str, index: int,
              raw: Optional[str] = None, labelled: bool = True
              ) -> Union[Dict[str, Any], DeadLetter]:
    """Turn one source row (column -> value) into a record, or a DeadLetter with the reason.

    labelled: the label column must be present and valid (training data); False reads only the
    texts (an unlabelled corpus: label None), whatever the file holds in a label column.
    """
    raw_text = raw if raw is not None else json.dumps(row, default=_plain, ensure_ascii=False)
    if task.is_span:   # question, context and answers: distiller.taskdata.squad
        from .squad import span_record

        return span_record(row, task=task, source=source, index=index, raw=raw_text,
                           labelled=labelled)

    def dead(reason: str) -> DeadLetter:
        return DeadLetter(source=source, row=index, reason=reason, raw=raw_text)

    texts: Dict[str, Optional[str]] = {}
    for field in ("text_a", "text_b"):
        column = getattr(task, field)
        if column is None:
            texts[field] = None
            continue
        value = column_value(row, column)
        if value is MISSING:
            return dead(f"malformed row: missing column {column!r}")
        text = cell_text(value, column)
        if isinstance(text, Unusable):
            return dead(text.reason)
        texts[field] = text

    label: Any = None
    if labelled and task.label is not None:
        value = column_value(row, task.label)
        if value is MISSING or value is None or (isinstance(value, (str, bytes))
                                                 and not value.strip()):
            return dead(f"missing label in column {_name(task.label)!r}")
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                return dead(f"undecodable bytes in column {_name(task.label)!r}")
        if isinstance(value, (Mapping, list, tuple)):
            return dead(f"wrong type in column {_name(task.label)!r}: "
                        f"{_kind(value)}, not a label")
        try:
            label = task.label_index(value)
        except LabelError as exc:
            return dead(f"{exc} in column {_name(task.label)!r}")

    rid = None
    if task.id is not None:
        value = column_value(row, task.id)
        if value is not MISSING and value not in (None, "", b""):
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            rid = f"{source}:{_name(task.id, row)}={value}"
    return {"id": rid or record_id(source, index), "text_a": texts["text_a"],
            "text_b": texts["text_b"], "label": label}


def _name(column, row: Optional[Mapping] = None):
    """The column's name for messages and ids (the alternative present in `row`)."""
    if isinstance(column, tuple):
        if row is not None:
            for name in column:
                if name in row:
                    return name
        return "|".join(column)
    return column


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
