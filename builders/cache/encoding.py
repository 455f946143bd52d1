"""Teacher outputs → the Arrow columns of a shard, one vectorised conversion per column.

Each tensor column is built from one contiguous buffer: every row's tensor is gathered with one
concatenation, converted to the storage dtype in one step (quant.py's arithmetic, element for
element, so the bytes equal those of a per-row `quant.encode`) and wrapped as an Arrow binary
array over that buffer with computed offsets (no per-row bytes objects).

A token-level output (`CacheSpec.tokens`) carries positions, targets and its sparse form
(`tokens`, a sparse_tokens.TopKTokens or SampledTokens) instead of logits; its sparse column is
sparse_tokens' Arrow encoding of every row at once.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from .schema import shard_schema, token_column
from .token_columns import encode_column
from .spec import CacheSpec

__all__ = ["encode_columns", "encode_flat", "check_output", "topk_logprobs"]

_MAX_CHUNK_BYTES = (1 << 31) - 1   # int32 offsets of an Arrow binary array
_STORED = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


def check_output(o: Dict[str, Any], spec: CacheSpec) -> int:
    """The real length of one teacher output; ValueError if it lacks what `spec` stores."""
    n = len(o["input_ids"])
    missing = [l for l in spec.layers if l not in o.get("hidden", {})]
    if missing:
        raise UsageError(f"output for key {o.get('key')!r} lacks hidden layers {missing} that the "
                         f"cache spec keeps ({list(spec.layers)}): score with a matching teacher")
    missing = [l for l in spec.attentions if l not in (o.get("attentions") or {})]
    if missing:
        raise UsageError(f"output for key {o.get('key')!r} lacks attentions of layers {missing}")
    if spec.token_level:
        _check_token_output(o, spec, n)
        return n
    shape = tuple(np.shape(o["logits"]))
    if shape != spec.logits_shape(n):    # [num_labels], or [n, 2] for question answering
        raise UsageError(f"output for key {o.get('key')!r} has logits of shape {shape}, the "
                         f"cache spec says {spec.logits_shape(n)}")
    return n


def _check_token_output(o: Dict[str, Any], spec: CacheSpec, n: int) -> None:
    """A token-level output: as many positions (each < n), targets and sparse distributions."""
    p = len(o["positions"])
    tokens = o.get("tokens")
    if len(o["targets"]) != p or tokens is None or tokens.positions != p:
        raise UsageError(f"output for key {o.get('key')!r}: {p} positions, "
                         f"{len(o['targets'])} targets and "
                         f"{getattr(tokens, 'positions', None)} sparse distributions (a "
                         "token-level output has one of each per predicted position)")
    pos = np.asarray(o["positions"])
    if p and (pos.min() < 0 or pos.max() >= n):
        raise UsageError(f"output for key {o.get('key')!r} predicts positions outside its "
                         f"{n} tokens")


def topk_logprobs(logits: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """(indices int32[k], log-probabilities float32[k], remaining probability mass) of the k most
    probable classes (ties: lower index first)."""
    z = logits.astype(np.float64)
    logp = z - (np.log(np.exp(z - z.max()).sum()) + z.max())
    k = min(k, len(z))
    idx = np.argsort(-logp, kind="stable")[:k].astype(np.int32)
    rest = float(max(0.0, 1.0 - np.exp(logp[idx]).sum()))
    return idx, logp[idx].astype(np.float32), rest


def encode_flat(flat: np.ndarray, vector_sizes: np.ndarray, dtype: str
                ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(stored values, float32 scale per vector or None) of float32 values `flat`, a
    concatenation of vectors (the last axis of each row's tensor) of the given sizes.

    The same values, element for element, as `quant.encode` of each row (float16 saturates at
    +-65504; int8 has one scale per vector, max|x| / 127)."""
    if dtype == "float32":
        return flat, None
    if dtype == "float16":
        return np.clip(flat, -65504.0, 65504.0).astype(np.float16), None
    if dtype == "int8":
        starts = np.zeros(len(vector_sizes), dtype=np.int64)
        np.cumsum(vector_sizes[:-1], out=starts[1:])
        amax = np.maximum.reduceat(np.abs(flat), starts) if len(flat) else flat[:0]
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(flat / np.repeat(scale, vector_sizes)), -127, 127).astype(np.int8)
        return q, scale
    raise UsageError(f"unknown storage dtype {dtype!r}: use float32, float16 or int8")


def _binary(values: np.ndarray, row_items: np.ndarray):
    """An Arrow binary array (chunked past 2 GiB) whose row r holds the next row_items[r] values
    of `values`, as raw little-endian bytes."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    sizes = row_items.astype(np.int64) * values.itemsize
    ends = np.cumsum(sizes)
    if not len(ends) or ends[-1] <= _MAX_CHUNK_BYTES:
        return _binary_chunk(values.view(np.uint8).reshape(-1), np.concatenate([[0], ends]))
    chunks, first, base = [], 0, 0
    raw = values.view(np.uint8).reshape(-1)
    while first < len(ends):   # greedy cut: every chunk under the int32 offset limit
        last = int(np.searchsorted(ends, base + _MAX_CHUNK_BYTES, side="right"))
        last = max(last, first + 1)
        offsets = np.concatenate([[0], ends[first:last] - base])
        chunks.append(_binary_chunk(raw[base:int(ends[last - 1])], offsets))
        base, first = int(ends[last - 1]), last
    return pa.chunked_array(chunks, type=pa.binary())


def _binary_chunk(raw: np.ndarray, offsets: np.ndarray):
    import pyarrow as pa

    if offsets[-1] > _MAX_CHUNK_BYTES:
        raise UsageError(f"one stored tensor of {offsets[-1]} bytes exceeds 2 GiB")
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1,
                                 [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(raw)])


_BLOCK_VALUES = 1 << 18   # rows converted per ~1 MB block of float32: temporaries stay in cache


def _tensor_column(arrays: List[np.ndarray], dtype: str) -> Tuple[Any, Optional[Any]]:
    """(data column, scale column or None) of per-row float tensors in storage `dtype`.

    float16 rows stored as float16 are taken as they are (the teacher already converted them,
    forward.py); other rows are converted from float32 a block of rows at a time."""
    rows = len(arrays)
    items = np.fromiter((np.size(a) for a in arrays), dtype=np.int64, count=rows)
    if dtype == "float16" and all(getattr(a, "dtype", None) == np.float16 for a in arrays):
        return _binary(np.concatenate([a.reshape(-1) for a in arrays]), items), None
    vec = np.fromiter((np.shape(a)[-1] if np.ndim(a) else 1 for a in arrays), dtype=np.int64,
                      count=rows)
    n_vectors = np.where(vec > 0, items // np.maximum(vec, 1), 0)
    data = np.empty(int(items.sum()), dtype=_STORED[dtype])
    scale = np.empty(int(n_vectors.sum()), dtype=np.float32) if dtype == "int8" else None
    first, at, at_scale = 0, 0, 0
    while first < rows:
        last = first + 1
        size = int(items[first])
        while last < rows and size + items[last] <= _BLOCK_VALUES:
            size += int(items[last])
            last += 1
        flat = np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1)
                               for a in arrays[first:last]])
        values, scales = encode_flat(flat, np.repeat(vec[first:last], n_vectors[first:last]),
                                     dtype)
        data[at:at + len(values)] = values
        at += len(values)
        if scales is not None:
            scale[at_scale:at_scale + len(scales)] = scales
            at_scale += len(scales)
        first = last
    if scale is None:
        return _binary(data, items), None
    return _binary(data, items), _binary(scale, n_vectors)


def encode_columns(outputs: Sequence[Dict[str, Any]], spec: CacheSpec) -> Dict[str, Any]:
    """Arrow columns (name → array, in schema order) for `outputs` (teacher.score dicts): keys
    deduplicated (first kept) and rows sorted by key, so the same set of outputs always gives the
    same bytes. ValueError if there is no output or one lacks what `spec` stores."""
    import pyarrow as pa

    if not outputs:
        raise UsageError("a shard needs at least one output")

    unique: Dict[str, Dict[str, Any]] = {}
    for o in outputs:
        unique.setdefault(o["key"], o)
    rows = [unique[k] for k in sorted(unique)]
    lengths = [check_output(o, spec) for o in rows]
    schema = shard_schema(spec)
    cols: Dict[str, Any] = {
        "key": pa.array([o["key"] for o in rows], type=pa.string()),
        "length": pa.array(lengths, type=pa.int32()),
        "truncated": pa.array([bool(o.get("truncated", False)) for o in rows], type=pa.bool_())}
    ints = (("input_ids", "<i4"), ("token_type_ids", "i1"))
    if spec.token_level:
        ints += (("positions", "<i4"), ("targets", "<i4"))
    for name, np_type in ints:
        arrays = [np.asarray(o[name], dtype=np_type) for o in rows]
        cols[name] = _binary(np.concatenate(arrays) if arrays else np.zeros(0, np_type),
                             np.fromiter((a.size for a in arrays), np.int64, len(arrays)))
    if spec.token_level:
        cols[token_column(spec)] = encode_column([o["tokens"] for o in rows], spec.tokens,
                                                 spec.num_labels)
    logits = [] if spec.token_level else [np.asarray(o["logits"], dtype=np.float32)
                                          for o in rows]
    if spec.logits_topk:   # per row on [num_labels] values: small
        top = [topk_logprobs(z, spec.logits_topk) for z in logits]
        idx = [t[0] for t in top]
        cols["topk_indices"] = _binary(np.concatenate(idx),
                                       np.fromiter((len(i) for i in idx), np.int64, len(idx)))
        cols["rest_mass"] = pa.array([t[2] for t in top], type=pa.float32())
        logits = [t[1] for t in top]
    tensors = [] if spec.token_level else [("logits", logits, spec.logits_dtype)]
    want = (spec.hidden_size,)
    for l in spec.layers:
        hidden = [o["hidden"][l] for o in rows]
        if spec.hidden_size:
            for o, n, h in zip(rows, lengths, hidden):
                shape = (n,) + want if spec.pooling == "none" else want
                if np.shape(h) != shape:
                    raise UsageError(f"hidden layer {l} of key {o['key']!r} has shape "
                                     f"{np.shape(h)}, expected {shape} (trimmed to the real "
                                     "length)")
        tensors.append((f"hidden_{l}", hidden, spec.dtype))
    for l in spec.attentions:
        tensors.append((f"attn_{l}", [o["attentions"][l] for o in rows], spec.dtype))
    for col, arrays, dtype in tensors:
        cols[col], scale = _tensor_column(arrays, dtype)
        if scale is not None:
            cols[col + "_scale"] = scale
    return {f.name: cols[f.name] for f in schema}
