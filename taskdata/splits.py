"""`Split`: one unit of parallel reading, rows [first_row, first_row + rows) of one input. The
reader (reader.py) plans and reads them; SQuAD files (squad.py) are split by whole articles.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from .sources import Input

__all__ = ["Split"]


@dataclasses.dataclass(frozen=True)
class Split:
    """Rows [first_row, first_row + rows) of one input. Line formats: bytes [start, end) (end -1:
    to the end of a compressed file); Parquet: row group `start`; datasets: rows [start, end).
    columns: the column names of a TSV/CSV file (positions "0", "1", ... without a header)."""

    input: Input
    first_row: int
    start: int
    end: int
    columns: Optional[Tuple[str, ...]] = None
    max_rows: Optional[int] = None
    skip_header: bool = False   # a compressed TSV/CSV split starts at its header line
    positional: bool = False    # no header row: rows are keyed by 0-based column position
