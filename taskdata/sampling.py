"""Seeded samples of line-oriented data files (a GLUE TSV, a CSV, one text per line), written
atomically: what the demo, the benchmarks and the recommender's ledger builder train on."""
from __future__ import annotations

import os
import random
from typing import List

from distiller.common.files import atomic_write

__all__ = ["sample_tsv", "write_lines_atomic"]


def sample_tsv(src: str, dst: str, n: int, seed: int, *, header: bool = True) -> int:
    """Write a seeded sample of `n` data rows of `src` to `dst` (all rows when it has fewer),
    in file order; the header row is kept when `header`, bytes are unchanged and a last row
    without a newline gets one. Returns the number of data rows written."""
    with open(src, "rb") as fh:
        rows = fh.read().splitlines(keepends=True)
    head = rows[:1] if header else []
    rows = [r if r.endswith(b"\n") else r + b"\n" for r in rows[len(head):]]
    picked = sorted(random.Random(seed).sample(range(len(rows)), min(n, len(rows))))
    write_lines_atomic(dst, head + [rows[i] for i in picked])
    return len(picked)


def write_lines_atomic(path: str, lines: List[bytes]) -> None:
    """Write `lines` (bytes, newlines included) to `path` through a temporary file renamed into
    place, so a reader never sees half a file; creates the parent directory."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, b"".join(lines))
