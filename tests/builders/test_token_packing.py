"""The packed storage of the sparse per-token forms (builders/cache/token_packing.py): bit
packing, the 8-bit log-probability grid, the round trip of both forms (ids and counts exact,
log-probabilities within the grid's rounding), its refusals, and a packed/zstd cache end to
end against a plain one."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from distiller.builders.cache.sparse_tokens import parse_token_spec, sample_tokens, topk_tokens
from distiller.builders.cache.token_columns import (column_type, decode_column, encode_column,
                                                    estimate_bytes_per_token,
                                                    stored_bytes_per_token)
from distiller.builders.cache.token_packing import (count_bits, dequantise, id_bits, pack_bits,
                                                    quantise, unpack_bits)
from distiller.common.errors import UsageError


def _logits(p, v, seed=0, scale=3.0):
    return torch.randn(p, v, generator=torch.Generator().manual_seed(seed)) * scale


def _parquet_round_trip(column):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"c": column}), buf, compression="zstd")
    buf.seek(0)
    return pq.read_table(buf).column("c")


@pytest.mark.parametrize("bits", [1, 3, 8, 13, 15, 16, 17, 31])
def test_bits_round_trip(bits):
    rng = np.random.default_rng(bits)
    values = rng.integers(0, 2 ** bits, size=37)
    values[:2] = (0, 2 ** bits - 1)
    data = pack_bits(values, bits)
    assert len(data) == (37 * bits + 7) // 8
    np.testing.assert_array_equal(unpack_bits(memoryview(data), 37, bits), values)
    assert pack_bits(values[:0], bits) == b"" and len(unpack_bits(memoryview(b""), 0, bits)) == 0


def test_bit_widths():
    assert [id_bits(v) for v in (2, 256, 257, 30522, 50257, 65536, 128256)] == \
        [1, 8, 9, 15, 16, 16, 17]
    assert [count_bits(n) for n in (1, 2, 12, 16, 17)] == [0, 1, 4, 4, 5]


def test_the_grid_rounds_within_half_a_step_and_keeps_minus_inf():
    rng = np.random.default_rng(0)
    values = np.concatenate([-rng.exponential(4.0, 40), [-0.1, -0.1, -np.inf, -7.0]])
    starts = np.array([0, 10, 10, 30, 41, 44])        # an empty position too
    hi, lo, codes = quantise(values, starts)
    back = dequantise(hi, lo, codes, starts).astype(np.float64)
    assert np.isneginf(back[42]) and codes[42] == 255
    pos = np.repeat(np.arange(5), np.diff(starts))
    span = (hi.astype(np.float64) - lo.astype(np.float64))[pos]
    finite = np.isfinite(values)
    # half a step of the grid, float16's rounding of hi/lo and of the decoded value
    bound = span / 508 + 1e-3 * np.abs(values)
    assert np.all(np.abs(back[finite] - values[finite]) <= bound[finite] + 2e-3)


@pytest.mark.parametrize("vocab,k", [(50, 7), (30522, 32), (70000, 3)])
def test_packed_topk_round_trip(vocab, k):
    spec = parse_token_spec(f"topk:{k}:packed")
    z = _logits(5, vocab, seed=k)
    if vocab == 50:
        z[4, 4:] = float("-inf")                    # -inf log-probabilities and tail
    records = [topk_tokens(z, k), topk_tokens(z[:0], k), topk_tokens(z[:1], k)]
    column = encode_column(records, spec, vocab)
    assert column.type.equals(column_type(spec, vocab))
    for col in (column, _parquet_round_trip(column), column.slice(0, 3)):
        back = decode_column(col, spec, vocab)
        assert [r.positions for r in back] == [5, 0, 1]
        for a, b in zip(records, back):
            assert b.ids.dtype == a.ids.dtype and b.logprobs.dtype == np.float16
            np.testing.assert_array_equal(a.ids, b.ids)
            fa, fb = a.logprobs.astype(np.float64), b.logprobs.astype(np.float64)
            np.testing.assert_array_equal(np.isneginf(fa), np.isneginf(fb))
            fin = np.isfinite(fa)
            if fin.any():
                span = (fa.max(1, keepdims=True) - np.where(fin, fa, 0).min(1, keepdims=True))
                err = np.abs(fa[fin] - fb[fin])
                assert np.all(err <= (np.broadcast_to(span, fa.shape)[fin] / 508 + 0.02))
            np.testing.assert_allclose(b.log_tail, a.log_tail, rtol=1e-3, atol=1e-3)
    sliced = decode_column(column.slice(2, 1), spec, vocab)
    np.testing.assert_array_equal(sliced[0].ids, records[2].ids)


@pytest.mark.parametrize("vocab,n", [(40, 9), (30522, 12), (70000, 1)])
def test_packed_samples_round_trip(vocab, n):
    spec = parse_token_spec(f"sample:{n}:packed")
    z = _logits(6, vocab, scale=1.0 if vocab == 40 else 6.0)
    records = [sample_tokens(z, n, 1), sample_tokens(z[:0], n, 2), sample_tokens(z[:1], n, 3)]
    column = encode_column(records, spec, vocab)
    for col in (column, _parquet_round_trip(column)):
        back = decode_column(col, spec, vocab)
        assert [r.positions for r in back] == [6, 0, 1]
        for a, b in zip(records, back):
            for f in ("sizes", "ids", "counts"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
                assert getattr(a, f).dtype == getattr(b, f).dtype
            np.testing.assert_allclose(b.logprobs.astype(np.float64),
                                       a.logprobs.astype(np.float64), atol=0.05, rtol=0.01)


def test_packed_columns_are_smaller_and_the_estimate_holds():
    vocab = 30522
    z = _logits(64, vocab, scale=4.0)
    for text in ("topk:8", "topk:32", "sample:12"):
        plain, packed = parse_token_spec(text), parse_token_spec(text + ":packed")
        make = (lambda zz: topk_tokens(zz, plain.k)) if plain.kind == "topk" else \
            (lambda zz: sample_tokens(zz, plain.k, 5))
        records = [make(z[i:i + 16]) for i in range(0, 64, 16)]
        a = stored_bytes_per_token(encode_column(records, plain, vocab))
        b = stored_bytes_per_token(encode_column(records, packed, vocab))
        assert b < 0.85 * a, (text, a, b)
        # per record: an int32 position count and a binary offset beside the data
        est = estimate_bytes_per_token(packed, vocab)
        assert b <= est + 1.0 and (plain.kind == "sample" or b >= est - 0.5), (text, b, est)


def test_another_storage_or_a_damaged_blob_is_refused():
    import pyarrow as pa

    vocab = 30
    records = [topk_tokens(_logits(3, vocab), 4)]
    plain = encode_column(records, parse_token_spec("topk:4"), vocab)
    packed = encode_column(records, parse_token_spec("topk:4:packed"), vocab)
    with pytest.raises(UsageError, match="another spec"):
        decode_column(plain, parse_token_spec("topk:4:packed"), vocab)
    with pytest.raises(UsageError, match="another spec"):
        decode_column(packed, parse_token_spec("topk:4"), vocab)
    positions, data = packed.flatten()
    cut = pa.StructArray.from_arrays([positions, pa.array([data[0].as_py()[:-1]])],
                                     fields=list(packed.type))
    with pytest.raises(UsageError, match="damaged"):
        decode_column(cut, parse_token_spec("topk:4:packed"), vocab)
    with pytest.raises(UsageError, match="does not fit"):
        encode_column(records, parse_token_spec("sample:4:packed"), vocab)


@pytest.mark.parametrize("text,packed,zstd", [("topk:8:packed", True, False),
                                              ("sample:12:zstd", False, True),
                                              ("topk:8:packed:zstd", True, True)])
def test_storage_options_parse_to_their_canonical_text(text, packed, zstd):
    spec = parse_token_spec(text)
    assert (spec.packed, spec.zstd, str(spec)) == (packed, zstd, text)
    assert parse_token_spec(str(spec)) == spec


@pytest.mark.parametrize("bad", ["topk:8:zstd:packed", "topk:8:packed:packed", "topk:8:gzip",
                                 "topk:8:", "sample:3:Packed"])
def test_bad_storage_options_are_one_usage_error(bad):
    with pytest.raises(UsageError, match=":packed and/or :zstd"):
        parse_token_spec(bad)
