"""Records and dead letters: one source row → a record, or a `DeadLetter` saying why not.

A record is a plain dict: ``id`` (stable: ``<source>:<row>``, or ``<source>:<id column>=<value>``),
``text_a``, ``text_b`` (None for single texts), ``label`` (class index, float target or None),
for span tasks ``answers`` and ``is_impossible`` (distiller.taskdata.squad) and, for augmented
copies, provenance (``parent_id``, ``chain``, ``copy``, ``seed``). Nothing is dropped silently
(docs/architecture.md, "Guarantees"): every row that cannot become a record is a DeadLetter with
its source, row number, reason and raw text.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Union

from .rows import MISSING, DeadLetter, Unusable, cell_kind, cell_text, column_value, record_id
from .squad import span_record
from .task import LabelError, Task

__all__ = ["DeadLetter", "Unusable", "cell_text", "parse_row", "record_id", "column_value",
           "MISSING"]


def parse_row(row: Mapping[Any, Any], *, task: Task, source: str, index: int,
              raw: Optional[str] = None, labelled: bool = True
              ) -> Union[Dict[str, Any], DeadLetter]:
    """Turn one source row (column -> value) into a record, or a DeadLetter with the reason.

    labelled: the label column must be present and valid (training data); False reads only the
    texts (an unlabelled corpus: label None), whatever the file holds in a label column.
    """
    raw_text = raw if raw is not None else json.dumps(row, default=_plain, ensure_ascii=False)
    if task.is_span:   # question, context and answers: distiller.taskdata.squad
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
                        f"{cell_kind(value)}, not a label")
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
