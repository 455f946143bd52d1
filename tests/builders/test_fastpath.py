"""Issue 21: the faster scoring path computes the same cache bytes as before.

The reference is the code as it was: a per-row encoding (legacy_encoding.py, verbatim) and a
plain Hugging Face forward whose padded hidden states are trimmed per row."""
from __future__ import annotations

import hashlib
import os
import threading

import numpy as np
import pytest

from distiller.builders.cache.encoding import _binary, encode_columns
from distiller.builders.teacher.forward import _stored, pad_batch
from distiller.builders.cache.shards import shard_schema, write_table_file
from distiller.builders.cache.spec import CacheSpec

from .legacy_encoding import encode_rows


def _sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _write_both(tmp_path, spec, outputs):
    """sha256 of the shard written from the legacy columns and of the one from the new ones."""
    import pyarrow as pa

    shas = []
    for name, cols in (("legacy", encode_rows(outputs, spec)),
                       ("new", encode_columns(outputs, spec))):
        d = tmp_path / name
        d.mkdir()
        info = write_table_file(str(d), spec, pa.table(cols, schema=shard_schema(spec)))
        shas.append(_sha(os.path.join(d, info.name)))
    return shas


def _outputs(rng, n, *, layers, hidden, pooling="none", heads=0, labels=3, scale=1.0):
    out = []
    for i in range(n):
        length = int(rng.integers(2, 12))
        shape = (length, hidden) if pooling == "none" else (hidden,)
        hid = {l: (rng.standard_normal(shape) * scale).astype(np.float32) for l in layers}
        o = {"key": f"k{rng.integers(1 << 30):09d}-{i}", "input_ids": rng.integers(0, 99, length),
             "token_type_ids": np.zeros(length, np.int8), "truncated": bool(i % 3 == 0),
             "logits": rng.standard_normal(labels).astype(np.float32), "hidden": hid}
        if heads:
            o["attentions"] = {1: rng.random((heads, length, length)).astype(np.float32)}
        out.append(o)
    out.append(dict(out[0]))   # a duplicate key: the first is kept
    return out


@pytest.mark.parametrize("dtype,logits_dtype,pooling,topk,heads,scale", [
    ("float16", "float32", "none", 0, 0, 1.0),
    ("float16", "float16", "none", 0, 2, 3e4),       # values past float16's range saturate
    ("int8", "int8", "none", 0, 2, 1.0),
    ("float32", "float32", "cls", 2, 0, 1.0),
    ("int8", "float32", "mean", 0, 0, 1e-30),        # float16 subnormals / int8 tiny scales
])
def test_vectorised_encoding_writes_the_same_bytes_as_the_per_row_one(
        tmp_path, dtype, logits_dtype, pooling, topk, heads, scale):
    rng = np.random.default_rng(7)
    spec = CacheSpec(fingerprint="f" * 16, tokenization={"max_length": 16}, layers=(0, 2),
                     pooling=pooling, attentions=(1,) if heads else (), dtype=dtype,
                     logits_dtype=logits_dtype, logits_topk=topk, num_labels=3, hidden_size=8,
                     num_heads=heads, num_hidden_layers=2)
    outputs = _outputs(rng, 40, layers=(0, 2), hidden=8, pooling=pooling, heads=heads,
                       scale=scale)
    outputs[3]["hidden"][0][..., 1] = 0.0             # an all-zero int8 vector: scale 1
    legacy, new = _write_both(tmp_path, spec, outputs)
    assert legacy == new


def test_float16_outputs_are_stored_as_they_are(tmp_path):
    rng = np.random.default_rng(3)
    spec = CacheSpec(fingerprint="f" * 16, tokenization={}, layers=(1,), dtype="float16",
                     num_labels=3, hidden_size=8)
    f32 = _outputs(rng, 30, layers=(1,), hidden=8, scale=1e5)
    f16 = [dict(o, hidden={1: np.clip(o["hidden"][1], -65504, 65504).astype(np.float16)})
           for o in f32]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    legacy, _ = _write_both(tmp_path / "a", spec, f32)
    _, new = _write_both(tmp_path / "b", spec, f16)
    assert legacy == new


def test_binary_columns_are_cut_below_two_gib(monkeypatch):
    import distiller.builders.cache.encoding as enc

    values = np.arange(100, dtype=np.float32)
    items = np.array([10, 30, 5, 25, 30])
    whole = _binary(values, items)
    monkeypatch.setattr(enc, "_MAX_CHUNK_BYTES", 160)   # 40 float32 values per chunk at most
    cut = enc._binary(values, items)
    assert [len(c) for c in cut.chunks] == [2, 2, 1]     # rows of 40+120, 20+100, 120 bytes
    assert cut.to_pylist() == whole.to_pylist()


def test_teacher_side_float16_conversion_equals_numpy_bit_for_bit():
    import torch

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    special = np.array([65504.0, 65519.99, 65520.0, -65520.0, np.inf, -np.inf, 6e-8, 3e-8,
                        2.98e-8, 1e-45, -0.0, 0.0, 2049.0, 2051.0, 1.0 + 2 ** -11], np.float32)
    x = np.concatenate([bits.view(np.float32), special])
    x = x[~np.isnan(x)]          # NaN payloads may differ; a NaN is a broken teacher anyway
    ref = np.clip(x, -65504.0, 65504.0).astype(np.float16)
    ours = _stored(torch.from_numpy(x.copy()), True).numpy()
    assert ours.dtype == np.float16
    assert np.array_equal(ref.view(np.uint16), ours.view(np.uint16))


def test_pad_batch_matches_a_per_row_fill():
    seqs = [np.array([5, 6, 7], np.int32), np.array([1], np.int32), np.array([2, 3], np.int32)]
    tts = [np.array([0, 0, 1], np.int8), np.array([0], np.int8), np.array([1, 1], np.int8)]
    ids, tt, mask = pad_batch(seqs, tts, pad_id=9)
    assert ids.tolist() == [[5, 6, 7], [1, 9, 9], [2, 3, 9]]
    assert tt.tolist() == [[0, 0, 1], [0, 0, 0], [1, 1, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    with pytest.raises(ValueError, match="as long as"):
        pad_batch(seqs, tts[::-1], pad_id=0)


def _reference_outputs(teacher, records):
    """The forward as it was: plain HF call over the same batch plan, padded stack trimmed."""
    import torch

    from distiller.builders.teacher.batching import plan_batches

    toks = teacher.tokenize(records)
    lengths = [len(t[0]) for t in toks]
    cfg = teacher.config
    out = [None] * len(records)
    for batch in plan_batches(lengths, max_tokens=cfg.max_tokens_per_batch,
                              max_batch_size=cfg.max_batch_size, window=cfg.sort_window):
        width = max(lengths[i] for i in batch)
        ids = np.zeros((len(batch), width), np.int64)
        tts = np.zeros_like(ids)
        mask = np.zeros_like(ids)
        for r, i in enumerate(batch):
            ids[r, :lengths[i]], tts[r, :lengths[i]], mask[r, :lengths[i]] = toks[i][0], \
                toks[i][1], 1
        with torch.inference_mode():
            res = teacher.model(input_ids=torch.from_numpy(ids),
                                attention_mask=torch.from_numpy(mask),
                                token_type_ids=torch.from_numpy(tts), output_hidden_states=True)
        hidden = torch.stack([res.hidden_states[i] for i in teacher.layers]).float().numpy()
        for r, i in enumerate(batch):
            out[i] = (res.logits[r].numpy(),
                      {l: hidden[k, r, :lengths[i]] for k, l in enumerate(teacher.layers)})
    return out


def test_scores_equal_the_plain_forward_bit_for_bit(tiny_teacher, rte_rows, sst2_rows):
    records = rte_rows[:12] + sst2_rows[:40]
    ref = _reference_outputs(tiny_teacher, records)
    got = tiny_teacher.score(records)
    half = tiny_teacher.score(records, store_as="float16")
    for (logits, hidden), o, h in zip(ref, got, half):
        assert np.array_equal(o["logits"], logits) and np.array_equal(h["logits"], logits)
        for l, x in hidden.items():
            assert o["hidden"][l].dtype == np.float32 and np.array_equal(o["hidden"][l], x)
            assert h["hidden"][l].dtype == np.float16
            assert np.array_equal(h["hidden"][l], np.clip(x, -65504, 65504).astype(np.float16))


def test_score_takes_the_callers_keys(tiny_teacher, sst2_rows):
    rows = sst2_rows[:3]
    keys = [tiny_teacher.cache_key(r["text_a"]) for r in rows]
    assert [o["key"] for o in tiny_teacher.score(rows, keys=keys)] == keys
    with pytest.raises(ValueError, match="2 keys for 3 records"):
        tiny_teacher.score(rows, keys=keys[:2])


def test_backend_is_recorded_and_old_manifests_read_as_eager():
    from distiller.builders.cache.errors import CacheSpecMismatch

    eager = CacheSpec(fingerprint="f" * 16, tokenization={}, layers=(0,))
    assert "backend" not in eager.to_dict()           # eager manifests keep their old bytes
    assert CacheSpec.from_dict(eager.to_dict()).backend == "eager"
    compiled = eager.with_(backend="compile")
    assert compiled.to_dict()["backend"] == "compile"
    assert CacheSpec.from_dict(compiled.to_dict()) == compiled
    with pytest.raises(CacheSpecMismatch, match="backend"):
        eager.check_compatible(compiled)
    with pytest.raises(ValueError, match="backend"):
        eager.with_(backend="tensorrt")


class _SlowCache:
    """A cache stand-in whose writes wait for a signal: shows the queue bound."""

    def __init__(self, fail_on=None):
        from distiller.builders.cache.spec import CacheSpec

        self.spec = CacheSpec(fingerprint="f" * 16, tokenization={}, layers=())
        self.go = threading.Event()
        self.started = threading.Semaphore(0)
        self.fail_on, self.written = fail_on, []

    def write_shard(self, outputs):
        self.started.release()
        self.go.wait(10)
        if outputs == self.fail_on:
            raise OSError("disk full")
        self.written.append(outputs)
        return outputs

    def commit(self, infos):
        return []


def test_writer_queue_is_bounded_and_errors_reach_the_caller():
    from distiller.builders.teacher.scoring import ShardWriter

    cache = _SlowCache()
    writer = ShardWriter(cache, queue_chunks=1)
    writer.put(["a"])
    assert cache.started.acquire(timeout=10)          # chunk a is being written
    writer.put(["b"])                                 # waits in the queue
    third = threading.Thread(target=writer.put, args=(["c"],))
    third.start()
    third.join(0.3)
    assert third.is_alive()                           # a full queue blocks the scorer
    cache.go.set()
    third.join(10)
    writer.close()
    assert cache.written == [["a"], ["b"], ["c"]]

    failing = _SlowCache(fail_on=["x"])
    failing.go.set()
    writer = ShardWriter(failing)
    writer.put(["x"])
    with pytest.raises(OSError, match="disk full"):
        writer.close()
