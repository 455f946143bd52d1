"""The cache manifest: one JSON file, replaced atomically (distiller.common.files) under an
exclusive fcntl lock, re-read inside the lock so concurrent writers merge instead of overwrite.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Dict, Iterator

from distiller.common.files import atomic_write

from .errors import ForeignDirectoryError
from .files import open_regular
from .layout import CORPUS_DIR, FORMAT, LOCK, MANIFEST, SHARD_DIR
from .spec import SCHEMA_VERSION

__all__ = ["MANIFEST", "FORMAT", "LOCK", "SHARD_DIR", "CORPUS_DIR", "read_manifest",
           "write_manifest", "locked", "new_manifest", "atomic_write_bytes"]


def new_manifest(spec_dict: Dict[str, Any]) -> Dict[str, Any]:
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "spec": spec_dict,
            "shards": [], "corpora": {}, "stats": {}}


def read_manifest(path: str) -> Dict[str, Any]:
    """The manifest of the cache at `path`; ForeignDirectoryError if it is not one."""
    mpath = os.path.join(path, MANIFEST)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no teacher cache at {path!r}: the directory does not exist")
    if not os.path.exists(mpath):
        raise ForeignDirectoryError(
            f"{path!r} is not a teacher cache: it has no {MANIFEST} (a cache is created by "
            "TeacherCache.create / `distiller score`; an interrupted first build leaves none)")
    try:
        with open_regular(mpath, what="the manifest") as fh:  # no link, FIFO or device
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ForeignDirectoryError(f"{mpath} is not a readable teacher-cache manifest: {exc}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise ForeignDirectoryError(
            f"{mpath} belongs to something else (format {found!r}, expected {FORMAT!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ForeignDirectoryError(
            f"{path!r} has cache schema version {data.get('schema_version')!r}, this code reads "
            f"version {SCHEMA_VERSION}: rebuild the cache or use the matching distiller version")
    return data


def atomic_write_bytes(path: str, data: bytes) -> None:
    """`data` written to `path` durably and all or nothing (distiller.common.files)."""
    atomic_write(path, data)


def write_manifest(path: str, manifest: Dict[str, Any]) -> None:
    atomic_write_bytes(os.path.join(path, MANIFEST),
                       json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Exclusive lock on the cache directory (blocks until free; released on process death)."""
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
