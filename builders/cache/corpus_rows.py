"""What a corpus index row holds, and the check of a corpus name (distiller.builders.cache.store
writes
them).

A corpus row names one cached teacher output (its key) and what training needs beside it: the
record id, the gold label, provenance (parent, chain, copy number); mixup rows add their parents'
keys and lambda, question-answering rows their context window.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Sequence

from distiller.common.errors import UsageError

__all__ = ["CORPUS_FIELDS", "MIXUP_FIELDS", "SPAN_FIELDS", "check_corpus_name", "clean_rows",
           "corpus_item"]

CORPUS_FIELDS = ("id", "key", "label", "parent_id", "chain", "copy")
# Mixup rows also carry their parents' keys, lambda and the partner's label: the trainer
# interpolates the student's own embeddings of both parents with the same lambda.
MIXUP_FIELDS = ("mix_key_a", "mix_key_b", "mix_lam", "mix_label_b")
# Question-answering rows (one per context window, distiller.builders.teacher.qa_windows): the
# window, where
# its context tokens are, the [CLS] position; their label is the gold [start, end] token positions.
SPAN_FIELDS = ("window", "ctx_start", "ctx_end", "ctx_first", "cls_index")
_CORPUS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")


def check_corpus_name(name: str) -> None:
    """ValueError unless `name` can name a corpus (it becomes a file name in corpora/)."""
    if not _CORPUS_NAME.match(name or ""):
        raise UsageError(f"corpus name {name!r} must be 1-200 characters of letters, digits "
                         "and . _ + = - (not starting with punctuation)")


def corpus_item(row: Mapping[str, Any], index: int = 0) -> Dict[str, Any]:
    """The stored form of a corpus row: CORPUS_FIELDS (defaults: chain "original", copy 0), plus
    MIXUP_FIELDS of a mixup row and SPAN_FIELDS of a window row; ValueError naming row `index`
    when it lacks a field its kind needs. A corpus file holds one
    ``json.dumps(item, sort_keys=True)`` line per row."""
    if "id" not in row or "key" not in row:
        raise UsageError(f"corpus row {index} lacks 'id' or 'key': {row!r}")
    item = {"id": row["id"], "key": row["key"], "label": row.get("label"),
            "parent_id": row.get("parent_id"), "chain": row.get("chain", "original"),
            "copy": int(row.get("copy", 0))}
    if row.get("mix_key_a") is not None:
        missing_fields = [f for f in MIXUP_FIELDS if f not in row]
        if missing_fields:
            raise UsageError(f"mixup corpus row {index} lacks {missing_fields}: {row!r}")
        item.update({f: row[f] for f in MIXUP_FIELDS})
        item["mix_lam"] = float(item["mix_lam"])
    if row.get("window") is not None:
        missing_fields = [f for f in SPAN_FIELDS if f not in row]
        if missing_fields:
            raise UsageError(f"window corpus row {index} lacks {missing_fields}: {row!r}")
        item.update({f: int(row[f]) for f in SPAN_FIELDS})
    return item


def clean_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """`corpus_item` of every row."""
    return [corpus_item(row, i) for i, row in enumerate(rows)]
