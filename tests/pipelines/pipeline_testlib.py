"""Helpers for the pipeline tests (imported by name: tests/pipelines is on sys.path)."""
import os

DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data",
                                    "glue"))


def glue_path(task: str, split: str = "train") -> str:
    return os.path.join(DATA, task, f"{split}.tsv")


def head_tsv(src: str, dst: str, rows: int) -> str:
    """Copy the header and the first `rows` data rows of a GLUE TSV file, byte for byte."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        for i, line in enumerate(fh):
            if i > rows:
                break
            out.write(line)
    return dst
