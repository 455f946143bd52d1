"""The run ledger: one typed row per finished distillation run, stored as Parquet.

A ledger is a directory of Parquet part files (one per append, written to a temporary name and
renamed, so parallel sweep workers never corrupt each other) or a single Parquet file (the
shipped, read-only form; `Ledger.export` writes one). Every row has the same columns and types
(`COLUMNS`); a row missing a column, carrying an unknown one or a wrongly typed value is refused.
The `EXTRA_COLUMNS` came later (the seven-task ledger's configuration name, seed and task
features): a row or file without them reads them as empty.
"""
from __future__ import annotations

import json
import math
import os
import time
import uuid
from typing import Any, Dict, Iterable, List, Mapping

from distiller.common.errors import UsageError
from distiller.common.files import atomic_write

__all__ = ["Ledger", "LedgerError", "COLUMNS", "CONFIG_COLUMNS", "FEATURE_COLUMNS",
           "EXTRA_COLUMNS", "STATUSES", "write_parquet"]


class LedgerError(UsageError):
    """A row or file that does not fit the ledger schema."""


# column -> type; "float?" may be NaN/None (e.g. mi_alpha when the objective is not MI-α), "str?"
# and "int?" None.
CONFIG_COLUMNS: Dict[str, str] = {
    "augmentation": "str", "corpus": "str", "mixup": "bool", "mapping": "str",
    "inter_loss": "str", "mi_alpha": "float?", "pred_loss": "str", "temperature": "float",
    "w_kd": "float", "w_inter": "float", "w_gold": "float", "lr": "float",
}
FEATURE_COLUMNS: Dict[str, str] = {
    "n_examples": "int", "n_labels": "int", "is_regression": "bool", "mean_length": "float",
    "difficulty_prior": "float", "embedding": "floats",
}
COLUMNS: Dict[str, str] = {
    "run_id": "str", "study": "str", "trial": "int", "task": "str", "student": "str",
    "teacher": "str", "teacher_fingerprint": "str", "teacher_metric": "float?",
    **CONFIG_COLUMNS, **FEATURE_COLUMNS,
    "metric_name": "str", "dev_metric": "float?", "ratio": "float?", "best_epoch": "int",
    "epochs_run": "int", "wall_time_s": "float", "status": "str", "config_json": "str",
    "created_at": "float",
}
# Optional columns (absent from older rows and files: read as None): the fixed configuration's
# name and the seed of a ledger cell (distiller.autodistiller.ledger_plan), and the task features
# beyond FEATURE_COLUMNS (distiller.autodistiller.ledger_tasks; teacher_metric is in COLUMNS).
EXTRA_COLUMNS: Dict[str, str] = {
    "config_name": "str?", "seed": "int?", "teacher_ece": "float?",
    "nokd_probe_metric": "float?", "label_entropy": "float?",
}
COLUMNS.update(EXTRA_COLUMNS)
STATUSES = ("complete", "pruned", "failed")


def _arrow_schema():
    import pyarrow as pa

    kinds = {"str": pa.string(), "str?": pa.string(), "bool": pa.bool_(), "int": pa.int64(),
             "int?": pa.int64(), "float": pa.float64(), "float?": pa.float64(),
             "floats": pa.list_(pa.float32())}
    return pa.schema([pa.field(name, kinds[kind], nullable=kind.endswith("?"))
                      for name, kind in COLUMNS.items()])


def _check_value(name: str, kind: str, value: Any) -> Any:
    def bad(expected: str) -> LedgerError:
        return LedgerError(f"ledger column {name!r} expects {expected}, got {value!r} "
                           f"({type(value).__name__})")

    if kind.endswith("?") and (value is None or (isinstance(value, float) and math.isnan(value))):
        return None
    kind = kind.rstrip("?") if kind in ("str?", "int?") else kind
    if kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true/false")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) and not (
                hasattr(value, "dtype") and value.dtype.kind in "iu"):
            raise bad("an integer")
        return int(value)
    if kind in ("float", "float?"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
                hasattr(value, "dtype") and value.dtype.kind in "iuf"):
            raise bad("a number")
        value = float(value)
        if kind == "float" and math.isnan(value):
            raise bad("a number (not NaN)")
        return value
    if kind == "floats":
        try:
            values = [float(v) for v in value]
        except TypeError as exc:
            raise bad("a list of numbers") from exc
        return values
    raise AssertionError(kind)


def validate_row(row: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of `row` with values coerced to the ledger types; LedgerError if it does not fit."""
    missing = [c for c in COLUMNS if c not in row and c not in EXTRA_COLUMNS]
    unknown = sorted(set(row) - set(COLUMNS))
    if missing or unknown:
        raise LedgerError(f"ledger row: missing columns {missing}, unknown columns {unknown}")
    out = {name: _check_value(name, kind, row.get(name)) for name, kind in COLUMNS.items()}
    if out["status"] not in STATUSES:
        raise LedgerError(f"ledger column 'status' must be one of {STATUSES}, "
                          f"got {out['status']!r}")
    json.loads(out["config_json"])  # must be valid JSON (the trainer config of the run)
    return out


class Ledger:
    """Append-only run ledger at `path` (a directory of parts, or one Parquet file to read)."""

    def __init__(self, path: str) -> None:
        self.path = os.fspath(path)

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Validate and append rows as one new part file; returns how many were written."""
        checked = [validate_row(r) for r in rows]
        if not checked:
            return 0
        if os.path.isfile(self.path):
            raise LedgerError(f"{self.path} is a single-file (exported) ledger and is read-only; "
                              "append to a ledger directory instead")
        os.makedirs(self.path, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        return write_parquet(checked, os.path.join(self.path, name))

    def _files(self) -> List[str]:
        if os.path.isfile(self.path):
            return [self.path]
        if not os.path.isdir(self.path):
            return []
        return sorted(os.path.join(self.path, f) for f in os.listdir(self.path)
                      if f.endswith(".parquet") and not f.startswith("."))

    def read(self):
        """All rows as a pandas DataFrame with the ledger's columns (empty if none yet)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = _arrow_schema()
        tables = []
        for f in self._files():
            table = pq.read_table(f)
            names = set(table.column_names)
            if not set(COLUMNS) - set(EXTRA_COLUMNS) <= names <= set(COLUMNS):
                raise LedgerError(f"{f}: columns {sorted(table.column_names)} do not match the "
                                  f"ledger schema {sorted(COLUMNS)}")
            for name in EXTRA_COLUMNS:  # an older file: the later columns are empty
                if name not in names:
                    table = table.append_column(name, pa.nulls(len(table),
                                                               schema.field(name).type))
            tables.append(table.select(list(COLUMNS)).cast(schema))
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        return table.to_pandas()

    def export(self, out_path: str) -> int:
        """Write every row into one Parquet file (the shippable form); returns the row count."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        df = self.read()
        table = pa.Table.from_pandas(df, schema=_arrow_schema(), preserve_index=False)
        atomic_write(out_path, lambda tmp: pq.write_table(table, tmp))
        return len(df)

    def __len__(self) -> int:
        return len(self.read())


def write_parquet(rows: Iterable[Mapping[str, Any]], path: str) -> int:
    """Validate `rows` and write them as one Parquet file at `path`, atomically (a part file, or
    a single-file ledger); returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    checked = [validate_row(r) for r in rows]
    table = pa.Table.from_pylist(checked, schema=_arrow_schema())
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))
    return len(checked)
