"""The packed storage of the sparse per-token forms (`topk:K:packed`, `sample:N:packed`).

A record is one Arrow row ``struct<positions: int32, data: binary>``; `data` holds, section after
section, each section starting on a byte boundary:

- top-k (P positions, K ids each, b = bits per id):
  ``hi float16 [P] | lo float16 [P] | log_tail float16 [P] | codes uint8 [P, K] | ids b-bit [P, K]``
- sampled (U distinct ids in all; s = bits of N - 1):
  ``hi float16 [P] | lo float16 [P] | sizes - 1 s-bit [P] | codes uint8 [U] | ids b-bit [U] |
  counts - 1 s-bit [U]``

b is the bits the largest id of the vocabulary needs (15 for 30,522 tokens, 16 for 50,257).
A log-probability is stored as an 8-bit code on its position's grid from `hi` (the largest
finite value at the position) down to `lo` (the smallest): ``lp = hi - code * (hi - lo) / 254``,
so the rounding is at most ``(hi - lo) / 508`` nats, plus float16's on hi and lo; code 255 is
-inf (a token the teacher gives no mass). The log-probabilities the trainer uses are
renormalised over the stored buckets (distill_train/token_losses.py), which absorbs the
rounding of their sum. Decoding gives the same TopKTokens / SampledTokens as the plain columns:
ids and counts exact, log-probabilities within that rounding (float16), log_tail as float16.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from .sparse_tokens import SampledTokens, TokenSpec, TopKTokens, id_dtype

__all__ = ["packed_type", "encode_packed", "decode_packed", "id_bits", "count_bits",
           "pack_bits", "unpack_bits", "quantise", "dequantise", "packed_bytes_per_token"]

LEVELS = 254          # codes 0..254 on the grid; 255 is -inf
NEG_INF_CODE = 255


def id_bits(vocab_size: int) -> int:
    """Bits an id of a vocabulary of `vocab_size` tokens needs (ids 0..vocab_size - 1)."""
    id_dtype(vocab_size)   # checks the size
    return max(1, int(vocab_size - 1).bit_length())


def count_bits(n: int) -> int:
    """Bits a value in 0..n-1 needs (a size or count minus one; 0 when n is 1)."""
    return int(n - 1).bit_length()


def pack_bits(values: np.ndarray, bits: int) -> bytes:
    """Non-negative integers < 2**bits, `bits` each, most significant bit first, padded with
    zero bits to a whole byte."""
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    if bits == 0 or v.size == 0:
        return b""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    return np.packbits(((v[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)).tobytes()


def unpack_bits(data: memoryview, count: int, bits: int) -> np.ndarray:
    """`count` integers of `bits` bits each from `data` (pack_bits' layout), as int64."""
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits)
    weights = np.left_shift(np.int64(1), np.arange(bits - 1, -1, -1, dtype=np.int64))
    return flat.reshape(count, bits).astype(np.int64) @ weights


def _nbytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def quantise(values: np.ndarray, starts: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi float16 [P], lo float16 [P], codes uint8 [n]) of log-probabilities `values` [n] laid
    out position after position (`starts` [P + 1] offsets), on each position's grid."""
    v = np.asarray(values, dtype=np.float32)
    P = len(starts) - 1
    finite = np.isfinite(v)
    pos = np.repeat(np.arange(P), np.diff(starts))
    hi = np.full(P, -np.inf, dtype=np.float32)
    lo = np.full(P, np.inf, dtype=np.float32)
    np.maximum.at(hi, pos[finite], v[finite])
    np.minimum.at(lo, pos[finite], v[finite])
    empty = ~np.isfinite(hi)              # no finite value at the position (or none at all)
    hi[empty], lo[empty] = 0.0, 0.0
    hi16, lo16 = hi.astype(np.float16), lo.astype(np.float16)
    h, l = hi16.astype(np.float32)[pos], lo16.astype(np.float32)[pos]
    span = h - l
    scale = np.where(span > 0, LEVELS / np.where(span > 0, span, 1.0), 0.0)
    codes = np.clip(np.rint((h - np.where(finite, v, h)) * scale), 0, LEVELS).astype(np.uint8)
    codes[~finite] = NEG_INF_CODE
    return hi16, lo16, codes


def dequantise(hi: np.ndarray, lo: np.ndarray, codes: np.ndarray,
               starts: np.ndarray) -> np.ndarray:
    """The log-probabilities (float16 [n]) of `quantise`'s output."""
    pos = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    h = hi.astype(np.float32)[pos]
    step = (h - lo.astype(np.float32)[pos]) / LEVELS
    out = h - codes.astype(np.float32) * step
    out[codes == NEG_INF_CODE] = -np.inf
    return out.astype(np.float16)


def packed_type():
    import pyarrow as pa

    return pa.struct([("positions", pa.int32()), ("data", pa.binary())])


def _pack_topk(r: TopKTokens, k: int, bits: int) -> bytes:
    P = r.positions
    hi, lo, codes = quantise(r.logprobs.reshape(-1), np.arange(P + 1) * k)
    return b"".join([hi.tobytes(), lo.tobytes(), r.log_tail.astype(np.float16).tobytes(),
                     codes.tobytes(), pack_bits(r.ids, bits)])


def _expect(data: memoryview, size: int) -> None:
    if len(data) != size:
        raise ValueError(f"{len(data)} bytes where its positions need {size}")


def _unpack_topk(P: int, data: memoryview, k: int, bits: int, want: np.dtype) -> TopKTokens:
    _expect(data, 6 * P + P * k + _nbytes(P * k, bits))
    hi = np.frombuffer(data, np.float16, P, 0)
    lo = np.frombuffer(data, np.float16, P, 2 * P)
    tail = np.frombuffer(data, np.float16, P, 4 * P)
    codes = np.frombuffer(data, np.uint8, P * k, 6 * P)
    ids = unpack_bits(data[6 * P + P * k:], P * k, bits)
    return TopKTokens(ids=ids.astype(want).reshape(P, k),
                      logprobs=dequantise(hi, lo, codes, np.arange(P + 1) * k).reshape(P, k),
                      log_tail=tail.astype(np.float32))


def _pack_samples(r: SampledTokens, n: int, bits: int) -> bytes:
    cb = count_bits(n)
    hi, lo, codes = quantise(r.logprobs, r.offsets())
    return b"".join([hi.tobytes(), lo.tobytes(), pack_bits(r.sizes - 1, cb), codes.tobytes(),
                     pack_bits(r.ids, bits), pack_bits(r.counts.astype(np.int64) - 1, cb)])


def _unpack_samples(P: int, data: memoryview, n: int, bits: int,
                    want: np.dtype) -> SampledTokens:
    cb = count_bits(n)
    at = 4 * P + _nbytes(P, cb)
    if len(data) < at:
        _expect(data, at)
    hi = np.frombuffer(data, np.float16, P, 0)
    lo = np.frombuffer(data, np.float16, P, 2 * P)
    sizes = unpack_bits(data[4 * P:], P, cb) + 1
    U = int(sizes.sum())
    _expect(data, at + U + _nbytes(U, bits) + _nbytes(U, cb))
    codes = np.frombuffer(data, np.uint8, U, at)
    at += U
    ids = unpack_bits(data[at:], U, bits)
    at += _nbytes(U, bits)
    counts = unpack_bits(data[at:], U, cb) + 1
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return SampledTokens(sizes=sizes.astype(np.int64), ids=ids.astype(want),
                         counts=counts.astype(np.uint16),
                         logprobs=dequantise(hi, lo, codes, starts))


def encode_packed(records: Sequence, spec: TokenSpec, vocab_size: int):
    """A ``packed_type()`` Arrow array, one row per record (TopKTokens or SampledTokens)."""
    import pyarrow as pa

    bits, want = id_bits(vocab_size), id_dtype(vocab_size)
    blobs: List[bytes] = []
    for r in records:
        if spec.kind == "topk":
            if not isinstance(r, TopKTokens) or r.ids.shape != (r.positions, spec.k) \
                    or r.ids.dtype != want:
                raise UsageError(f"a record does not fit {spec} over a vocabulary of "
                                 f"{vocab_size} ({want} ids)")
            blobs.append(_pack_topk(r, spec.k, bits))
        else:
            if not isinstance(r, SampledTokens) or r.ids.dtype != want \
                    or int(r.sizes.sum()) != len(r.ids) or len(r.sizes) and (
                        int(r.sizes.min()) < 1 or int(r.sizes.max()) > spec.k
                        or int(r.counts.min()) < 1 or int(r.counts.max()) > spec.k):
                raise UsageError(f"a record does not fit {spec} over a vocabulary of "
                                 f"{vocab_size} ({want} ids)")
            blobs.append(_pack_samples(r, spec.k, bits))
    return pa.StructArray.from_arrays(
        [pa.array([r.positions for r in records], type=pa.int32()),
         pa.array(blobs, type=pa.binary())], fields=list(packed_type()))


def decode_packed(column, spec: TokenSpec, vocab_size: int) -> list:
    """The records of an `encode_packed` column (chunked, sliced, after Parquet)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise UsageError("a token-level column holds a null row: the shard is damaged; rebuild it")
    positions_col, data_col = column.flatten()
    positions = positions_col.to_numpy(zero_copy_only=False)
    bits, want = id_bits(vocab_size), id_dtype(vocab_size)
    unpack = _unpack_topk if spec.kind == "topk" else _unpack_samples
    out = []
    for P, blob in zip(positions, data_col):
        data = memoryview(blob.as_buffer() if blob.is_valid else b"")
        try:
            out.append(unpack(int(P), data, spec.k, bits, want))
        except ValueError as exc:      # a blob shorter than its positions say
            raise UsageError(f"a packed token record does not fit {spec} ({exc}): the shard "
                             "is damaged; rebuild it") from None
    return out


def packed_bytes_per_token(spec: TokenSpec, vocab_size: int) -> float:
    """Bytes of `data` per position: top-k exact (up to a record's last byte), K + 6 + K b/8;
    sampled an upper bound, reached when all N draws differ: 4 + s/8 + N (1 + (b + s)/8)."""
    b = id_bits(vocab_size)
    if spec.kind == "topk":
        return 6 + spec.k + spec.k * b / 8
    s = count_bits(spec.k)
    return 4 + s / 8 + spec.k * (1 + (b + s) / 8)
