"""The Arrow columns of the sparse per-token forms (sparse_tokens.py) in a cache's shards.

Plain storage (`topk:K`, `sample:N`): a record is one row, a list over its positions; top-k
positions are structs of fixed-size lists (ids, float16 log-probabilities) and the float32
log_tail, sampled positions lists of (id, uint16 count, float16 log-probability) structs; an
empty record is an empty list. Packed storage (`...:packed`): token_packing.py. Whichever the
storage, `decode_column` returns the same record types, and a column of another spec, storage
or vocabulary is refused.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from distiller.common.errors import UsageError

from .sparse_tokens import SampledTokens, TokenSpec, TopKTokens, id_dtype, parse_token_spec
from .token_packing import decode_packed, encode_packed, packed_bytes_per_token, packed_type

__all__ = ["column_type", "encode_column", "decode_column", "encode_topk", "decode_topk",
           "encode_samples", "decode_samples", "estimate_bytes_per_token",
           "stored_bytes_per_token"]


def _arrow_id_type(vocab_size: int):
    import pyarrow as pa

    return pa.uint16() if id_dtype(vocab_size) == np.uint16 else pa.int32()


def column_type(spec: TokenSpec, vocab_size: int):
    """The Arrow type of a record's column: packed -> token_packing.packed_type(); else
    topk -> list<struct<ids: fixed_size_list<id>[K],
    logprobs: fixed_size_list<float16>[K], log_tail: float32>> (one struct per position);
    sample -> list<list<struct<id, count: uint16, logprob: float16>>> (positions, then the
    distinct ids drawn there)."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    if spec.packed:
        return packed_type()
    ids = _arrow_id_type(vocab_size)
    if spec.kind == "topk":
        return pa.list_(pa.struct([("ids", pa.list_(ids, spec.k)),
                                   ("logprobs", pa.list_(pa.float16(), spec.k)),
                                   ("log_tail", pa.float32())]))
    return pa.list_(pa.list_(pa.struct([("id", ids), ("count", pa.uint16()),
                                        ("logprob", pa.float16())])))


def _offsets(sizes: Sequence[int]):
    import pyarrow as pa

    return pa.array(np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
                    .astype(np.int32), type=pa.int32())


def encode_topk(records: Sequence[TopKTokens], spec: TokenSpec, vocab_size: int):
    """A `column_type(spec)` Arrow array with one row per record."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ, k = column_type(spec, vocab_size), spec.k
    want = id_dtype(vocab_size)
    for r in records:
        if r.ids.shape != (r.positions, k) or r.ids.dtype != want \
                or r.logprobs.shape != r.ids.shape:
            raise UsageError(f"a top-k record of ids {r.ids.dtype}{list(r.ids.shape)} does not "
                             f"fit {spec} over a vocabulary of {vocab_size} ({want} ids)")
    ids = np.concatenate([r.ids.reshape(-1) for r in records] + [np.zeros(0, want)])
    lps = np.concatenate([r.logprobs.reshape(-1) for r in records] + [np.zeros(0, np.float16)])
    tails = np.concatenate([r.log_tail for r in records] + [np.zeros(0, np.float32)])
    fields = typ.value_type
    per_position = pa.StructArray.from_arrays(
        [pa.FixedSizeListArray.from_arrays(pa.array(ids), k),
         pa.FixedSizeListArray.from_arrays(pa.array(lps.astype(np.float16)), k),
         pa.array(tails.astype(np.float32))], fields=list(fields))
    return pa.ListArray.from_arrays(_offsets([r.positions for r in records]), per_position,
                                    type=typ)


def encode_samples(records: Sequence[SampledTokens], spec: TokenSpec, vocab_size: int):
    """A `column_type(spec)` Arrow array with one row per record."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ, want = column_type(spec, vocab_size), id_dtype(vocab_size)
    for r in records:
        if r.ids.dtype != want or int(r.sizes.sum()) != len(r.ids) \
                or not len(r.ids) == len(r.counts) == len(r.logprobs):
            raise UsageError(f"a sampled record of {r.ids.dtype} ids does not fit {spec} over "
                             f"a vocabulary of {vocab_size} ({want} ids)")
    flat = {name: np.concatenate([getattr(r, name) for r in records] + [np.zeros(0, dt)])
            for name, dt in (("ids", want), ("counts", np.uint16), ("logprobs", np.float16))}
    entries = pa.StructArray.from_arrays(
        [pa.array(flat["ids"]), pa.array(flat["counts"].astype(np.uint16)),
         pa.array(flat["logprobs"].astype(np.float16))], fields=list(typ.value_type.value_type))
    sizes = np.concatenate([r.sizes for r in records] + [np.zeros(0, np.int64)])
    positions = pa.ListArray.from_arrays(_offsets(sizes), entries, type=typ.value_type)
    return pa.ListArray.from_arrays(_offsets([r.positions for r in records]), positions, type=typ)


def _list_parts(column):
    """(values, offsets from 0) of a list array (chunked or sliced) without nulls."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise UsageError("a token-level column holds a null row: the shard is damaged; rebuild it")
    offsets = column.offsets.to_numpy().astype(np.int64)
    return column.flatten(), offsets - offsets[0]


def _np(array, dtype) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def _check_column(column, spec: TokenSpec, vocab_size: int) -> TokenSpec:
    """The parsed spec; UsageError when `column` holds another form, storage or vocabulary."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ = column_type(spec, vocab_size)
    same = column.type.equals(typ) if spec.packed else (
        pa.types.is_list(column.type) and column.type.value_type.equals(typ.value_type))
    if not same:
        raise UsageError(f"the token column holds {column.type}, not the {spec} form over a "
                         f"vocabulary of {vocab_size}: the cache was built with another spec")
    return spec


def decode_topk(column, spec: TokenSpec, vocab_size: int) -> List[TopKTokens]:
    """The records of an `encode_topk` column (after a Parquet round trip too)."""
    spec = _check_column(column, spec, vocab_size)
    per_position, offsets = _list_parts(column)
    ids_col, lps_col, tail_col = per_position.flatten()
    k, want = spec.k, id_dtype(vocab_size)
    ids = _np(ids_col.flatten(), want).reshape(-1, k)
    lps = _np(lps_col.flatten(), np.float16).reshape(-1, k)
    tails = _np(tail_col, np.float32)
    return [TopKTokens(ids=ids[a:b], logprobs=lps[a:b], log_tail=tails[a:b])
            for a, b in zip(offsets[:-1], offsets[1:])]


def decode_samples(column, spec: TokenSpec, vocab_size: int) -> List[SampledTokens]:
    """The records of an `encode_samples` column (after a Parquet round trip too)."""
    spec = _check_column(column, spec, vocab_size)
    positions, rec_off = _list_parts(column)
    entries, pos_off = _list_parts(positions)
    ids_col, counts_col, lps_col = entries.flatten()
    ids, counts = _np(ids_col, id_dtype(vocab_size)), _np(counts_col, np.uint16)
    lps, sizes = _np(lps_col, np.float16), np.diff(pos_off)
    return [SampledTokens(sizes=sizes[a:b], ids=ids[pos_off[a]:pos_off[b]],
                          counts=counts[pos_off[a]:pos_off[b]], logprobs=lps[pos_off[a]:pos_off[b]])
            for a, b in zip(rec_off[:-1], rec_off[1:])]


def estimate_bytes_per_token(spec: TokenSpec, vocab_size: int) -> float:
    """Bytes the Arrow column holds per position (before Parquet's encoding and compression;
    the 4-byte offset per record is left out). Plain topk: exact, K x (id + 2) + 4; plain sample:
    an upper bound, 4 (the position's offset) + N x (id + 2 + 2), reached when all N draws differ
    (a peaked teacher repeats draws, so fewer are stored); packed: token_packing's."""
    spec = parse_token_spec(spec)
    if spec.packed:
        return float(packed_bytes_per_token(spec, vocab_size))
    id_bytes = id_dtype(vocab_size).itemsize
    if spec.kind == "topk":
        return float(spec.k * (id_bytes + 2) + 4)
    return float(4 + spec.k * (id_bytes + 2 + 2))


def _positions(chunk) -> int:
    import pyarrow as pa

    if pa.types.is_struct(chunk.type):          # packed: its positions field
        return int(sum(chunk.field("positions").to_numpy(zero_copy_only=False)))
    return len(chunk.flatten())


def stored_bytes_per_token(column) -> float:
    """Measured Arrow bytes per position of an encoded column (0.0 for no positions): what
    `cache stats` reports beside the estimate."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    positions = sum(_positions(c) for c in chunks)
    return float(sum(c.nbytes for c in chunks)) / positions if positions else 0.0


def encode_column(records: Sequence, spec: TokenSpec, vocab_size: int):
    """The token column of a shard, one row per record, in the storage `spec` names."""
    spec = parse_token_spec(spec)
    if spec.packed:
        return encode_packed(records, spec, vocab_size)
    return (encode_topk if spec.kind == "topk" else encode_samples)(records, spec, vocab_size)


def decode_column(column, spec: TokenSpec, vocab_size: int) -> list:
    """The records (TopKTokens or SampledTokens) of an `encode_column` column; a column of
    another spec, storage or vocabulary is refused."""
    spec = parse_token_spec(spec)
    if not spec.packed:
        return (decode_topk if spec.kind == "topk" else decode_samples)(column, spec, vocab_size)
    _check_column(column, spec, vocab_size)
    return decode_packed(column, spec, vocab_size)
