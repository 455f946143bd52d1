"""The sparse per-token forms (builders/cache/sparse_tokens.py): spec text, top-k and sampled forms
against references computed in float64, and their Arrow round trip (through Parquet too)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from distiller.builders.cache.sparse_tokens import (SampledTokens, TokenSpec, TopKTokens,
                                                    id_dtype, parse_token_spec, sample_tokens,
                                                    topk_tokens)
from distiller.builders.cache.token_columns import (decode_samples, decode_topk, encode_samples,
                                                    encode_topk, estimate_bytes_per_token,
                                                    stored_bytes_per_token)
from distiller.common.errors import UsageError


def _logits(p, v, seed=0, scale=2.0):
    return torch.randn(p, v, generator=torch.Generator().manual_seed(seed)) * scale


def _ref_logp(z):
    z = z.double().numpy()
    m = z.max(-1, keepdims=True)
    return z - (np.log(np.exp(z - m).sum(-1, keepdims=True)) + m)


# --- the spec ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,kind,k,canonical", [
    ("topk:32", "topk", 32, "topk:32"), (" sample:12 ", "sample", 12, "sample:12"),
    ("topk:007", "topk", 7, "topk:7"), ("sample:65535", "sample", 65535, "sample:65535")])
def test_spec_text_parses_to_its_canonical_form(text, kind, k, canonical):
    spec = parse_token_spec(text)
    assert (spec.kind, spec.k, str(spec)) == (kind, k, canonical)
    assert parse_token_spec(str(spec)) == spec and parse_token_spec(spec) is spec


@pytest.mark.parametrize("bad", ["topk:0", "topk:-1", "topk:1.5", "topk:", "topk", "top:3",
                                 "sample:65536", "topk:8:9", "TOPK:8", "", "sample: 3", None, 8])
def test_bad_spec_text_is_one_usage_error(bad):
    with pytest.raises(UsageError, match="topk|sample|token spec"):
        parse_token_spec(bad)


def test_spec_fields_are_checked_and_k_is_checked_against_the_vocabulary():
    for kind, k in (("dense", 3), ("topk", True), ("topk", 2.0), ("sample", 0)):
        with pytest.raises(UsageError):
            TokenSpec(kind, k)
    TokenSpec("topk", 10).check_vocab(10)
    TokenSpec("sample", 50).check_vocab(10)          # draws may outnumber the vocabulary
    with pytest.raises(UsageError, match="K <= 10"):
        TokenSpec("topk", 11).check_vocab(10)
    with pytest.raises(UsageError, match="K <= 10"):
        topk_tokens(_logits(2, 10), 11)


def test_ids_are_uint16_up_to_65536_tokens_and_int32_beyond():
    assert id_dtype(65536) == np.uint16 and id_dtype(65537) == np.int32
    assert estimate_bytes_per_token(parse_token_spec("topk:8"), 30522) == 8 * 4 + 4
    assert estimate_bytes_per_token(parse_token_spec("topk:8"), 128256) == 8 * 6 + 4
    assert estimate_bytes_per_token(parse_token_spec("sample:12"), 30522) == 4 + 12 * 6


# --- the top-k form ---------------------------------------------------------------------------

def test_topk_matches_a_float64_reference():
    z = _logits(6, 50)
    got = topk_tokens(z, 5)
    logp = _ref_logp(z)
    want_ids = np.argsort(-logp, axis=-1, kind="stable")[:, :5]
    np.testing.assert_array_equal(got.ids, want_ids)
    assert got.ids.dtype == np.uint16 and got.logprobs.dtype == np.float16
    np.testing.assert_allclose(got.logprobs, np.take_along_axis(logp, want_ids, -1), atol=4e-3)
    rest = np.log(1.0 - np.exp(np.take_along_axis(logp, want_ids, -1)).sum(-1))
    np.testing.assert_allclose(got.log_tail, rest, rtol=1e-5)


def test_topk_tail_is_minus_inf_not_nan_when_the_k_tokens_hold_all_mass():
    full = topk_tokens(_logits(3, 7), 7)
    assert np.all(full.log_tail == -np.inf)
    z = _logits(2, 6)
    z[:, 2:] = float("-inf")                        # a teacher that rules tokens out
    some = topk_tokens(z, 4)
    assert np.all(some.log_tail == -np.inf) and not np.isnan(some.logprobs.astype(float)).any()
    assert np.all(np.isneginf(some.logprobs[:, 2:]))
    tiny = torch.tensor([[30.0, 0.0, -10.0, -10.0]])  # a tail of ~2e-13: no cancellation to 0
    np.testing.assert_allclose(topk_tokens(tiny, 2).log_tail,
                               _ref_logp(tiny)[0, 2:].max() + np.log(2), rtol=1e-5)


def test_topk_orders_ties_by_id():
    got = topk_tokens(torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0]]), 3)
    np.testing.assert_array_equal(got.ids, [[1, 2, 4]])


def test_bad_teacher_logits_are_refused():
    for bad in (torch.zeros(3), torch.tensor([[0.0, float("nan")]]),
                torch.full((1, 3), float("-inf"))):
        with pytest.raises(UsageError, match="logits"):
            topk_tokens(bad, 1)


# --- the sampled form -------------------------------------------------------------------------

def test_sampling_is_seeded_per_record_and_counts_sum_to_n():
    z = _logits(4, 30, scale=1.0)
    a, b, c = sample_tokens(z, 12, 5), sample_tokens(z, 12, 5), sample_tokens(z, 12, 6)
    for f in ("sizes", "ids", "counts", "logprobs"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not (len(a.ids) == len(c.ids) and np.array_equal(a.ids, c.ids))
    assert a.counts.dtype == np.uint16 and a.logprobs.dtype == np.float16
    off = a.offsets()
    for p in range(a.positions):
        ids = a.ids[off[p]:off[p + 1]].astype(int)
        assert a.counts[off[p]:off[p + 1]].sum() == 12 and np.all(np.diff(ids) > 0)
        np.testing.assert_allclose(a.logprobs[off[p]:off[p + 1]], _ref_logp(z)[p, ids],
                                   atol=4e-3)
    assert sample_tokens(z, 12, 2 ** 64 - 1).positions == 4
    for seed in (-1, 2 ** 64, 1.0, True):
        with pytest.raises(UsageError, match="seed"):
            sample_tokens(z, 12, seed)


def test_draws_follow_the_teacher_and_never_hit_a_zero_probability_token():
    z = torch.tensor([[0.0, 1.0, float("-inf"), 2.0, -1.0]])
    n = 20000
    got = sample_tokens(z, n, 11)
    assert 2 not in got.ids.tolist()
    freq = np.zeros(5)
    freq[got.ids.astype(int)] = got.counts
    p = np.exp(_ref_logp(z)[0])
    se = np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(freq / n - p) < 5 * se), (freq / n, p)


# --- Arrow round trip -------------------------------------------------------------------------

def _parquet_round_trip(column):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table({"c": column}), buf)
    buf.seek(0)
    return pq.read_table(buf).column("c")


def _same_topk(a: TopKTokens, b: TopKTokens):
    assert a.ids.dtype == b.ids.dtype and a.logprobs.dtype == b.logprobs.dtype
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.logprobs.view(np.uint16), b.logprobs.view(np.uint16))
    np.testing.assert_array_equal(a.log_tail, b.log_tail)


@pytest.mark.parametrize("vocab", [50, 70000])
def test_topk_round_trip_including_empty_and_one_position_records(vocab):
    spec = parse_token_spec("topk:7" if vocab == 50 else "topk:3")
    z = _logits(4, vocab)
    z[3, 3:] = float("-inf")                        # a -inf tail and -inf log-probabilities
    records = [topk_tokens(z, spec.k), topk_tokens(z[:0], spec.k), topk_tokens(z[:1], spec.k)]
    assert records[0].ids.dtype == (np.uint16 if vocab == 50 else np.int32)
    column = encode_topk(records, spec, vocab)
    for col in (column, _parquet_round_trip(column)):
        back = decode_topk(col, spec, vocab)
        assert [r.positions for r in back] == [4, 0, 1]
        for a, b in zip(records, back):
            _same_topk(a, b)
    sliced = decode_topk(column.slice(1, 2), spec, vocab)
    assert [r.positions for r in sliced] == [0, 1]
    _same_topk(sliced[1], records[2])
    assert len(decode_topk(encode_topk([], spec, vocab), spec, vocab)) == 0


@pytest.mark.parametrize("vocab", [40, 70000])
def test_sampled_round_trip_including_empty_and_one_position_records(vocab):
    spec = parse_token_spec("sample:9")
    z = _logits(5, vocab, scale=1.0 if vocab == 40 else 8.0)
    records = [sample_tokens(z, 9, 1), sample_tokens(z[:0], 9, 2), sample_tokens(z[:1], 9, 3)]
    column = encode_samples(records, spec, vocab)
    for col in (column, _parquet_round_trip(column), column.slice(0, 3)):
        back = decode_samples(col, spec, vocab)
        assert [r.positions for r in back] == [5, 0, 1]
        for a, b in zip(records, back):
            for f in ("sizes", "ids", "counts"):
                np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
            assert b.ids.dtype == (np.uint16 if vocab == 40 else np.int32)
            np.testing.assert_array_equal(a.logprobs.view(np.uint16), b.logprobs.view(np.uint16))
    back = decode_samples(column.slice(2, 1), spec, vocab)
    np.testing.assert_array_equal(back[0].ids, records[2].ids)


def test_a_column_of_another_spec_or_vocabulary_is_refused():
    spec = parse_token_spec("topk:4")
    column = encode_topk([topk_tokens(_logits(2, 30), 4)], spec, 30)
    for other, vocab in (("topk:5", 30), ("topk:4", 70000), ("sample:4", 30)):
        with pytest.raises(UsageError, match="another spec"):
            (decode_topk if other.startswith("topk") else decode_samples)(
                column, parse_token_spec(other), vocab)
    with pytest.raises(UsageError, match="does not fit"):
        encode_topk([topk_tokens(_logits(2, 30), 4)], parse_token_spec("topk:4"), 70000)
    bad = SampledTokens(np.array([2]), np.array([1], np.uint16), np.array([1], np.uint16),
                        np.array([0.0], np.float16))
    with pytest.raises(UsageError, match="does not fit"):
        encode_samples([bad], parse_token_spec("sample:1"), 30)


def test_measured_bytes_per_token_agree_with_the_estimate():
    spec = parse_token_spec("topk:8")
    records = [topk_tokens(_logits(50, 100, seed=s), 8) for s in range(4)]
    measured = stored_bytes_per_token(encode_topk(records, spec, 100))
    est = estimate_bytes_per_token(spec, 100)
    assert est <= measured <= est + 1.0              # + the per-record offsets
    sspec = parse_token_spec("sample:12")
    flat = [sample_tokens(_logits(50, 2000, seed=s, scale=0.1), 12, s) for s in range(4)]
    peaked = [sample_tokens(_logits(50, 2000, seed=s, scale=20.0), 12, s) for s in range(4)]
    upper = estimate_bytes_per_token(sspec, 2000)
    m_flat = stored_bytes_per_token(encode_samples(flat, sspec, 2000))
    m_peaked = stored_bytes_per_token(encode_samples(peaked, sspec, 2000))
    assert m_peaked < m_flat <= upper + 1.0 and m_flat > 0.8 * upper
    assert stored_bytes_per_token(encode_topk([], spec, 100)) == 0.0
