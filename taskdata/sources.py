"""What an input argument names: files (local or any fsspec file system, globs), a dataset saved
with `datasets`' ``save_to_disk``, or a Hugging Face dataset by name.

    train.tsv  data/*.jsonl  s3://bucket/part-*.csv.gz  memory://corpus.tsv   files (fsspec)
    runs/saved_dataset/                                                      save_to_disk dir
    hf:glue:sst2@validation   hf:imdb@train   hf:./local_dataset_repo@train  load_dataset(...)

A Hugging Face dataset is loaded with ``datasets.load_dataset(NAME, CONFIG, split=SPLIT)``:
online from the hub, or offline from the local `datasets` cache or a local dataset directory.
Remote schemes work when their fsspec package is installed (s3fs, gcsfs, ...).
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
from typing import List, Optional, Tuple

from distiller.common.errors import UsageError

__all__ = ["Input", "resolve_inputs", "detect_format", "parse_hf_spec", "HF_PREFIX"]

HF_PREFIX = "hf:"
_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl",
               ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_GLOB = set("*?[")


@dataclasses.dataclass(frozen=True)
class Input:
    """One readable input. fmt: tsv | csv | jsonl | parquet | text | saved | hub.

    url: what fsspec opens (files), the directory (saved) or the dataset name (hub); name: the
    prefix of record ids (a file's base name, or its path below a glob's folder); compression:
    fsspec's name for a compressed file (read as one split); config/split: hub datasets."""

    url: str
    name: str
    fmt: str
    compression: Optional[str] = None
    config: Optional[str] = None
    split: Optional[str] = None

    def open(self, mode: str = "rb"):
        import fsspec

        return fsspec.open(self.url, mode, compression=self.compression).open()


def parse_hf_spec(spec: str) -> Tuple[str, Optional[str], Optional[str]]:
    """`hf:NAME[:CONFIG][@SPLIT]` -> (name, config, split)."""
    body = spec[len(HF_PREFIX):]
    split = None
    if "@" in body:
        body, split = body.rsplit("@", 1)
    name, _, config = body.partition(":")
    if not name:
        raise UsageError(f"input {spec!r}: expected hf:NAME[:CONFIG][@SPLIT], e.g. "
                         "hf:glue:sst2@validation")
    return name, config or None, split or None


def _split_compression(path: str) -> Tuple[str, Optional[str]]:
    root, ext = os.path.splitext(path)
    if ext.lower() in _COMPRESSION:
        return root, _COMPRESSION[ext.lower()]
    return path, None


def detect_format(path: str, fs=None) -> str:
    """The format of a file from its extension; a ``.txt`` file is TSV if its first line holds a
    tab, else plain text (one text per line)."""
    plain, compression = _split_compression(path)
    ext = os.path.splitext(plain)[1].lower()
    if ext in _EXTENSIONS:
        return _EXTENSIONS[ext]
    if ext in (".txt", ".text", ""):
        import fsspec

        with fsspec.open(path if fs is None else fs.unstrip_protocol(path), "rb",
                         compression=compression) as fh:
            first = fh.readline(1 << 20)
        return "tsv" if b"\t" in first else "text"
    raise UsageError(f"cannot tell the format of {path!r} from its extension: use .tsv, .csv, "
                     ".jsonl, .parquet or .txt (or give the format: --format)")


def _is_saved_dataset(fs, path: str) -> bool:
    return any(fs.exists(posixpath.join(path, f)) for f in
               ("dataset_info.json", "state.json", "dataset_dict.json"))


def resolve_inputs(spec: str, fmt: Optional[str] = None) -> List[Input]:
    """The inputs an argument names, in a stable (sorted) order; a clear error if none."""
    import fsspec

    if not isinstance(spec, str) or not spec.strip():
        raise UsageError(f"an input must be a path, a glob or hf:NAME, got {spec!r}")
    if spec.startswith(HF_PREFIX):
        name, config, split = parse_hf_spec(spec)
        label = name + (f":{config}" if config else "") + (f"@{split}" if split else "")
        return [Input(url=name, name=label, fmt="hub", config=config, split=split)]
    fs, path = fsspec.core.url_to_fs(spec)
    if _GLOB & set(path):
        paths = sorted(p for p in fs.glob(path) if not fs.isdir(p))
        if not paths:
            raise FileNotFoundError(f"no file matches {spec!r}")
        static = path[:min(path.index(c) for c in _GLOB if c in path)]
        base = static.rsplit("/", 1)[0] if "/" in static else ""
        names = [p[len(base):].lstrip("/") if base and p.startswith(base) else
                 posixpath.basename(p) for p in paths]
    else:
        if not fs.exists(path):
            raise FileNotFoundError(f"input {spec!r} does not exist")
        if fs.isdir(path):
            if _is_saved_dataset(fs, path):
                return [Input(url=spec, name=posixpath.basename(path.rstrip("/")),
                              fmt="saved")]
            raise UsageError(f"input {spec!r} is a directory: give a file, a glob such as "
                             f"{spec.rstrip('/')}/*.tsv, or a dataset saved with save_to_disk")
        paths, names = [path], [posixpath.basename(path)]
    out = []
    for p, name in zip(paths, names):
        url = p if _is_local(fs) else fs.unstrip_protocol(p)
        _, compression = _split_compression(p)
        out.append(Input(url=url, name=name, fmt=fmt or detect_format(url),
                         compression=compression))
    return out


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol
