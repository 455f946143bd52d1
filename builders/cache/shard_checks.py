"""Checks of one shard file against its cache, as `verify` makes them: size, sha256, Parquet
footer, schema and embedded spec (committed shards), and the same for a shard a writer left
uncommitted. Both maintenance.py (verify, adopt) and leftovers.py (what `clean` removes) use
them.
"""
from __future__ import annotations

import json
import os
from typing import List, Tuple

from distiller.common.errors import UsageError

from .directory import CacheDirectory
from .errors import CorruptShardError, UnsafeEntryError
from .files import ADVICE, check_regular
from .shards import (SPEC_METADATA_KEY, ShardInfo, file_sha256, open_shard, shard_name_for,
                     shard_schema, table_counts)

__all__ = ["spec_problem", "shard_problem", "unsafe_problem", "uncommitted_info"]


def spec_problem(pf, cache: CacheDirectory, expected) -> str:
    """What makes an open shard file foreign to `cache` (schema, embedded spec), or ''."""
    schema = pf.schema_arrow
    if not schema.remove_metadata().equals(expected):
        return f"schema differs from the spec's ({schema.names} vs {expected.names})"
    meta = (schema.metadata or {}).get(SPEC_METADATA_KEY)
    if meta is None or json.loads(meta) != cache.spec.to_dict():
        return "embedded spec differs from the manifest's"
    return ""


def shard_problem(cache: CacheDirectory, info: ShardInfo, expected) -> Tuple[str, List[str]]:
    """(what is wrong with a committed shard or '', its keys): size, sha256 of every byte,
    Parquet footer, schema and embedded spec against the manifest's, row count."""
    import pyarrow as pa

    try:
        path = cache.shard_path(info.name)
        size = check_regular(path, what="shard").st_size
    except UnsafeEntryError as exc:
        return unsafe_problem(exc), []
    except FileNotFoundError:
        return "missing (listed in the manifest, file not found)", []
    if size != info.bytes:
        return (f"size {size} bytes, manifest says {info.bytes} "
                f"({'truncated' if size < info.bytes else 'grown'})"), []
    if file_sha256(path, what="shard") != info.sha256:
        return "checksum mismatch (content altered)", []
    try:
        pf = open_shard(path, info.name)
        problem = spec_problem(pf, cache, expected)
        if problem:
            return problem, []
        if pf.metadata.num_rows != info.rows:
            return f"{pf.metadata.num_rows} rows, manifest says {info.rows}", []
        return "", pf.read(columns=["key"]).column("key").to_pylist()
    except (CorruptShardError, pa.ArrowException, OSError, ValueError) as exc:
        return f"unreadable ({exc})", []


def unsafe_problem(exc: UnsafeEntryError) -> str:
    return f"{exc.problem}; {ADVICE}"


def uncommitted_info(cache: CacheDirectory, name: str) -> ShardInfo:
    """The ShardInfo of an uncommitted shard file after checking it as verify does (schema,
    embedded spec, content-derived name, every page's CRC); ValueError says what is wrong."""
    import pyarrow as pa

    path = cache.shard_path(name)
    try:
        pf = open_shard(path, name)
    except UnsafeEntryError as exc:
        raise UsageError(f"it is {exc.problem}") from exc
    try:
        problem = spec_problem(pf, cache, shard_schema(cache.spec))
        if problem:
            raise UsageError(f"{problem}: written under another cache spec")
        table = pf.read()  # reads every page: a damaged one fails its CRC here
    except (CorruptShardError, pa.ArrowException, OSError) as exc:
        raise UsageError(f"it cannot be read ({exc})") from exc
    keys = table.column("key").to_pylist()
    if shard_name_for(keys) != name:
        raise UsageError("its name is not the one its keys give")
    return ShardInfo(name=name, rows=table.num_rows, bytes=os.lstat(path).st_size,
                     sha256=file_sha256(path, what="shard"), keys=tuple(keys),
                     **table_counts(table))
