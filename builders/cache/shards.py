"""Parquet shards of teacher outputs: schema, encoding, atomic write, checked read.

One row per key. Tensors are raw little-endian bytes in the spec's dtype (int8 tensors carry a
float32 scale per vector in a `*_scale` column), trimmed to the example's real length, for the
spec's layers only. Shapes are implied by `length` and the spec. A shard is written to a temporary
name and renamed to its deterministic, content-derived name; it is invisible until the manifest
lists it (see cache.py).

A token-level cache (`CacheSpec.tokens`, a masked or causal LM teacher) has no `logits` column:
per row the predicted `positions` and their gold `targets` (raw int32, like input_ids) and the
sparse distributions at those positions in one Arrow column (sparse_tokens: `token_topk` or
`token_sample`); its manifest entries also count the positions (`ShardInfo.positions`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError
from distiller.common.seeding import stable_hash
from distiller.common.files import atomic_open

from .files import check_regular, name_problem, open_regular
from .encoding import encode_columns
from .errors import CorruptShardError, MissingShardError
from .quant import decode
from .schema import shard_schema, tensor_columns, token_column
from .sparse_tokens import parse_token_spec
from .token_columns import decode_column
from .spec import CacheSpec

__all__ = ["ShardInfo", "shard_schema", "tensor_columns", "write_shard_file", "read_shard_table",
           "decode_row", "file_sha256", "shard_name_for", "SPEC_METADATA_KEY", "write_table_file",
           "table_counts", "token_column", "decode_tokens", "TOKENS_DECODED"]

SPEC_METADATA_KEY = b"distiller.spec"
TARGET_ROW_GROUP_BYTES = 512 << 10  # the reader decodes whole row groups: keep them small


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    """A shard file and what it holds. `keys` stays in memory only (not in the manifest).
    positions: the predicted positions a token-level shard stores (None for a sentence-level
    one, whose manifest entry then has no such field)."""

    name: str
    rows: int
    bytes: int
    sha256: str
    tokens: int
    truncated: int
    keys: Tuple[str, ...] = dataclasses.field(default=(), repr=False, compare=False)
    positions: Optional[int] = None

    def to_manifest(self) -> Dict[str, Any]:
        out = {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256,
               "tokens": self.tokens, "truncated": self.truncated}
        if self.positions is not None:
            out["positions"] = self.positions
        return out

    @classmethod
    def from_manifest(cls, d: Dict[str, Any]) -> "ShardInfo":
        return cls(name=d["name"], rows=int(d["rows"]), bytes=int(d["bytes"]),
                   sha256=d["sha256"], tokens=int(d["tokens"]), truncated=int(d["truncated"]),
                   positions=None if d.get("positions") is None else int(d["positions"]))


def shard_name_for(keys: Sequence[str]) -> str:
    """Deterministic name from the shard's keys: a retried bundle rewrites the same shard."""
    return f"shard-{stable_hash('shard', *sorted(keys), digest_size=12)}.parquet"


def file_sha256(path: str, *, what: str = "cache file") -> str:
    """sha256 of a cache's file, read only if it is a regular file
    (distiller.builders.cache.files)."""
    h = hashlib.sha256()
    with open_regular(path, what=what) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _HashingFile:
    """A write-only file that hashes what goes through it: the shard's sha256 comes from the
    bytes as they are written, not from reading the file back (that read was about a quarter of
    a writer's CPU time: benchmarks/README.md, the writer measurements)."""

    closed = False

    def __init__(self, fh) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:        # the caller closes the file, after its fsync
        pass

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


def write_shard_file(directory: str, spec: CacheSpec, outputs: Sequence[Dict[str, Any]],
                     name: Optional[str] = None) -> ShardInfo:
    """Write `outputs` as a shard under `directory` (temp file, fsync, rename). Not committed."""
    import pyarrow as pa

    if not outputs:
        raise UsageError("write_shard needs at least one output")
    table = pa.table(encode_columns(outputs, spec), schema=shard_schema(spec))
    return write_table_file(directory, spec, table, name)


def write_table_file(directory: str, spec: CacheSpec, table, name: Optional[str] = None
                     ) -> ShardInfo:
    """Write an Arrow table of shard rows (temp name, fsync, rename to the deterministic name)."""
    import pyarrow.parquet as pq

    keys = table.column("key").to_pylist()
    table = table.replace_schema_metadata(
        {SPEC_METADATA_KEY: json.dumps(spec.to_dict(), sort_keys=True).encode()})
    name = name or shard_name_for(keys)
    if name_problem(name) or not name.endswith(".parquet"):
        raise UsageError(f"shard name {name!r} must be a plain file name ending in .parquet")
    # a token spec's `:zstd` compresses its shards (sparse_tokens.py); the rest are raw bytes
    compression = "zstd" if spec.token_level and parse_token_spec(spec.tokens).zstd else "none"
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows_per_group = max(1, min(table.num_rows, TARGET_ROW_GROUP_BYTES // per_row))
    final = os.path.join(directory, name)
    with atomic_open(final, "wb") as fh:
        sink = _HashingFile(fh)
        # No dictionary pages: keys are distinct and tensors are raw bytes, so a dictionary
        # would only be built to be dropped.
        pq.write_table(table, sink, row_group_size=rows_per_group, compression=compression,
                       use_dictionary=False, write_statistics=False, write_page_checksum=True)
        fh.flush()
    digest = sink.sha256.hexdigest()
    return ShardInfo(name=name, rows=table.num_rows, bytes=os.path.getsize(final), sha256=digest,
                     keys=tuple(keys), **table_counts(table))


def table_counts(table) -> Dict[str, Any]:
    """tokens, truncated and (token-level shards) positions of a table of shard rows."""
    out: Dict[str, Any] = {"tokens": int(sum(table.column("length").to_pylist())),
                           "truncated": int(sum(table.column("truncated").to_pylist()))}
    if "positions" in table.column_names:   # int32 values: 4 bytes each
        import pyarrow.compute as pc

        out["positions"] = int(pc.sum(pc.binary_length(table.column("positions"))).as_py()
                               or 0) // 4
    return out


def open_shard(path: str, name: str, *, memory_map: bool = False):
    """A pyarrow ParquetFile, or a clear error naming the shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        check_regular(path, what="shard")  # no link followed, no FIFO or device opened
    except FileNotFoundError:
        raise MissingShardError(f"the manifest lists shard {name!r} but {path} does not exist: "
                                "the cache was damaged; run `distiller cache verify` and rebuild "
                                "the missing keys", shard=name) from None
    try:
        # Page CRCs make a reader notice altered bytes without hashing the whole shard.
        return pq.ParquetFile(path, memory_map=memory_map, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptShardError(f"shard {name!r} is truncated or not a Parquet file ({exc}); "
                                "run `distiller cache verify`", shard=name) from exc


TOKENS_DECODED = "_tokens_decoded"   # a decoded row group's sparse records (reader.py)


def decode_tokens(column, spec: CacheSpec) -> list:
    """The sparse records (sparse_tokens.TopKTokens or SampledTokens) of a token column."""
    return decode_column(column, spec.tokens, spec.num_labels)


def read_shard_table(path: str, name: str, columns: Optional[List[str]] = None):
    import pyarrow as pa

    pf = open_shard(path, name)
    try:
        return pf.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptShardError(f"shard {name!r} cannot be read ({exc}); run `distiller cache "
                                "verify`", shard=name) from exc


def decode_row(cols: Dict[str, Any], r: int, spec: CacheSpec, *, layers: Sequence[int],
               attentions: Sequence[int]) -> Dict[str, Any]:
    """numpy arrays of row `r` from a dict of pyarrow columns (a decoded row group)."""
    n = cols["length"][r].as_py()
    ids = np.frombuffer(cols["input_ids"][r].as_py(), dtype="<i4")
    tts = np.frombuffer(cols["token_type_ids"][r].as_py(), dtype="i1")

    def tensor(col: str, dtype: str, shape: Tuple[int, ...]) -> np.ndarray:
        scale = cols[col + "_scale"][r].as_py() if dtype == "int8" else None
        return decode(cols[col][r].as_py(), scale, dtype, shape)

    out: Dict[str, Any] = {"key": cols["key"][r].as_py(), "input_ids": ids,
                           "token_type_ids": tts, "truncated": cols["truncated"][r].as_py()}
    if spec.token_level:
        out["positions"] = np.frombuffer(cols["positions"][r].as_py(), dtype="<i4")
        out["targets"] = np.frombuffer(cols["targets"][r].as_py(), dtype="<i4")
        # the reader decodes a row group's sparse column once (TOKENS_DECODED); else this row's
        column = token_column(spec)   # the decoded form keeps its column's name
        decoded = cols.get(TOKENS_DECODED)
        out[column] = decoded[r] if decoded is not None else \
            decode_tokens(cols[column].slice(r, 1), spec)[0]
        if out[column].positions != len(out["positions"]):
            raise ValueError(f"row {out['key']} stores {len(out['positions'])} positions but "
                             f"{out[column].positions} distributions")
    elif spec.logits_topk:
        idx = np.frombuffer(cols["topk_indices"][r].as_py(), dtype="<i4")
        vals = tensor("logits", spec.logits_dtype, (len(idx),))
        rest = float(cols["rest_mass"][r].as_py())
        out["topk_indices"], out["topk_logprobs"], out["rest_mass"] = idx, vals, rest
        # Full log-probabilities with the remaining mass spread evenly over the other classes.
        others = spec.num_labels - len(idx)
        fill = np.log(max(rest, 1e-12) / others) if others else 0.0
        full = np.full(spec.num_labels, fill, dtype=np.float32)
        full[idx] = vals
        out["logits"] = full
    else:
        out["logits"] = tensor("logits", spec.logits_dtype, spec.logits_shape(n))
    hshape = (n, spec.hidden_size) if spec.pooling == "none" else (spec.hidden_size,)
    out["hidden"] = {l: tensor(f"hidden_{l}", spec.dtype, hshape) for l in layers}
    if attentions:
        out["attentions"] = {l: tensor(f"attn_{l}", spec.dtype, (spec.num_heads, n, n))
                             for l in attentions}
    return out
