"""Teacher: fingerprints, keys, truncation, bucketing, pooling."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from distiller.builders import FingerprintError, Teacher, TeacherConfig, cache_key
from distiller.builders.teacher.batching import plan_batches
from distiller.builders.teacher.fingerprint import teacher_fingerprint

from .conftest import make_tiny_teacher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path, **kw):
    kw.setdefault("max_length", 64)
    return Teacher(TeacherConfig(model=path, device="cpu", num_threads=1, **kw)).load()


def test_fingerprint_and_key_stable_across_processes(tiny_teacher, tiny_teacher_dir):
    code = ("import sys, json; sys.path.insert(0, %r)\n"
            "from builders import Teacher, TeacherConfig\n"
            "t = Teacher(TeacherConfig(model=%r, max_length=64, device='cpu')).load()\n"
            "print(json.dumps([t.fingerprint, t.cache_key('a film', None), "
            "t.cache_key('a', 'b')]))") % (REPO, tiny_teacher_dir)
    env = dict(os.environ, PYTHONHASHSEED="123")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, cwd=REPO).stdout.strip().splitlines()[-1]
    fp, k1, k2 = json.loads(out)
    assert fp == tiny_teacher.fingerprint
    assert k1 == tiny_teacher.cache_key("a film", None)
    assert k2 == tiny_teacher.cache_key("a", "b")
    assert k2 != tiny_teacher.cache_key("a b", None) != tiny_teacher.cache_key("ab", None)


def test_a_headless_encoder_loads_as_the_same_teacher_every_time(tmp_path, tiny_teacher_dir,
                                                                  caplog):
    """A checkpoint without a classifier head (a bare encoder) gets its head from a fixed seed:
    every worker process must load the same teacher, or their keys disagree."""
    import shutil

    import torch
    from transformers import AutoConfig, BertModel

    bare = tmp_path / "bare"
    BertModel(AutoConfig.from_pretrained(tiny_teacher_dir)).save_pretrained(bare)
    for name in os.listdir(tiny_teacher_dir):
        if name.startswith("tokenizer") or name.endswith(".txt"):
            shutil.copy(os.path.join(tiny_teacher_dir, name), bare / name)
    prints = []
    for seed in (1, 2):                                   # whatever the caller's RNG state
        torch.manual_seed(seed)
        expected = torch.rand(3)
        torch.manual_seed(seed)
        prints.append(_load(str(bare), num_labels=2).fingerprint)
        assert torch.equal(torch.rand(3), expected)       # and that state is left untouched
    assert prints[0] == prints[1]
    assert any("not in the checkpoint were initialised from seed 0" in r.message
               for r in caplog.records)


def test_fingerprint_ignores_path_but_not_weights(tmp_path, tiny_teacher, tiny_teacher_dir):
    import shutil

    import torch

    copy = tmp_path / "copy"
    shutil.copytree(tiny_teacher_dir, copy)
    same = _load(str(copy))
    assert same.fingerprint == tiny_teacher.fingerprint          # path is not identity
    with torch.no_grad():
        same.model.classifier.bias[0] += 1e-3                     # one weight changes
    changed = teacher_fingerprint(same.model, same.tokenizer)
    assert changed != tiny_teacher.fingerprint
    same.model.save_pretrained(copy)
    reloaded = _load(str(copy))
    assert reloaded.fingerprint == changed
    assert reloaded.cache_key("x", None) != tiny_teacher.cache_key("x", None)


def test_key_changes_with_tokenization(tmp_path, tiny_teacher, tiny_teacher_dir, sst2_rows):
    shorter = _load(tiny_teacher_dir, max_length=32)
    assert shorter.fingerprint == tiny_teacher.fingerprint
    assert shorter.cache_key("x", None) != tiny_teacher.cache_key("x", None)
    # Same weights, different vocabulary -> different fingerprint.
    other = make_tiny_teacher(tmp_path / "v", [r["text_a"] for r in sst2_rows], vocab_size=300)
    assert _load(other).fingerprint != tiny_teacher.fingerprint
    assert cache_key("f", {"max_length": 1}, "a") != cache_key("f", {"max_length": 2}, "a")


def test_unfingerprintable_teacher_is_an_error(tiny_teacher):
    class NoState:
        config = tiny_teacher.model.config

        def state_dict(self):
            raise RuntimeError("weights are offloaded")

    with pytest.raises(FingerprintError, match="state_dict"):
        teacher_fingerprint(NoState(), tiny_teacher.tokenizer)

    class BadTok:
        init_kwargs = {}

        def get_vocab(self):
            raise NotImplementedError

    with pytest.raises(FingerprintError, match="cannot fingerprint"):
        teacher_fingerprint(tiny_teacher.model, BadTok())
    with pytest.raises(FingerprintError):
        cache_key("", {}, "a")
    with pytest.raises(FingerprintError):
        cache_key("abc", {"x": object()}, "a")


def test_truncation_counted_exactly(tiny_teacher_dir, rte_rows, sst2_rows):
    teacher = _load(tiny_teacher_dir, max_length=100)
    rows = rte_rows + sst2_rows[:20]
    toks = teacher.tokenize(rows)
    full = [teacher.tokenizer(r["text_a"], r["text_b"], truncation=False)["input_ids"]
            for r in rows]
    expected = [len(f) > 100 for f in full]
    assert [t[2] for t in toks] == expected
    assert any(expected) and not all(expected)      # real RTE rows: some long, some not
    assert all(len(t[0]) <= 100 for t in toks)
    teacher.score(rows)
    assert teacher.truncated_count == sum(expected)


def test_score_with_given_tokens_skips_tokenizing_and_matches(tiny_teacher_dir, rte_rows,
                                                              monkeypatch):
    teacher = _load(tiny_teacher_dir, max_length=100)
    want = teacher.score(rte_rows)
    toks = teacher.tokenize(rte_rows)
    carried = [(np.frombuffer(i.tobytes(), np.int32), np.frombuffer(t.tobytes(), np.int8), tr)
               for i, t, tr in toks]  # as the pipeline carries them: read-only views of bytes

    def no_tokenizing(records):
        raise AssertionError("score tokenized although it was given the tokens")

    monkeypatch.setattr(teacher, "tokenize", no_tokenizing)
    got = teacher.score(rte_rows, tokens=carried)
    assert len(got) == len(want) == len(rte_rows)
    for w, g in zip(want, got):
        assert sorted(g) == sorted(w)
        for field in w:  # key, ids, truncated, logits, hidden states: all exactly equal
            np.testing.assert_equal(g[field], w[field], err_msg=field)
    with pytest.raises(ValueError, match="tokenizations for"):
        teacher.score(rte_rows, tokens=carried[:-1])


def test_outputs_do_not_depend_on_the_torch_thread_count(tiny_teacher_dir):
    """1 and 2 threads give the same bytes (the worker count sets each worker's threads)."""
    import torch

    teacher = _load(tiny_teacher_dir)
    assert os.environ.get("MKL_CBWR") == "AUTO,STRICT"  # set by loading a teacher
    vocab = teacher.model.config.vocab_size
    rng = np.random.default_rng(0)
    before = torch.get_num_threads()
    try:
        for rows in range(1, 25):  # small batches: without strict MKL, ~2% of rows differed
            ids = [rng.integers(5, vocab, size=int(rng.integers(3, 40))).astype(np.int32)
                   for _ in range(rows)]
            tts = [np.zeros(len(x), np.int8) for x in ids]
            outs = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                outs.append(teacher.forward_batch(ids, tts))
            for one, two in zip(*outs):
                assert one["logits"].tobytes() == two["logits"].tobytes(), rows
                np.testing.assert_equal(one["hidden"], two["hidden"])
    finally:
        torch.set_num_threads(before)


def test_plan_batches_covers_everything_within_caps():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=500).tolist()
    batches = plan_batches(lengths, max_tokens=1000, max_batch_size=16, window=128)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for b in batches:
        assert len(b) <= 16 and len(b) * max(lengths[i] for i in b) <= 1000
        assert len({i // 128 for i in b}) == 1               # never crosses a window
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    naive = sum(16 * max(lengths[i:i + 16]) for i in range(0, 500, 16))
    assert padded < 0.75 * naive                              # bucketing saves padding
    assert plan_batches([500], max_tokens=100, max_batch_size=4, window=8) == [[0]]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pooling(tiny_teacher, tiny_teacher_dir, sst2_rows, pooling):
    pooled = _load(tiny_teacher_dir, pooling=pooling, layers=(0, 2))
    rows = sst2_rows[:6]
    full = tiny_teacher.score(rows)
    for f, p in zip(full, pooled.score(rows)):
        assert set(p["hidden"]) == {0, 2}
        for l in (0, 2):
            ref = f["hidden"][l][0] if pooling == "cls" else f["hidden"][l].mean(0)
            np.testing.assert_allclose(p["hidden"][l], ref, atol=1e-4)


def test_attentions_and_layer_selection(tiny_teacher_dir, sst2_rows):
    t = _load(tiny_teacher_dir, layers=(2,), attentions=(1,))
    o = t.score(sst2_rows[:3])[0]
    n = len(o["input_ids"])
    assert list(o["hidden"]) == [2] and list(o["attentions"]) == [1]
    assert o["attentions"][1].shape == (2, n, n)
    np.testing.assert_allclose(o["attentions"][1].sum(-1), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="do not exist"):
        _load(tiny_teacher_dir, layers=(7,))
    with pytest.raises(ValueError, match="128 positions"):
        _load(tiny_teacher_dir, max_length=256, max_tokens_per_batch=512)


def test_bf16_on_cpu_is_close_recorded_in_the_spec_and_not_mixed_into_a_float32_cache(
        tmp_path, tiny_teacher, tiny_teacher_dir, sst2_rows):
    from distiller.builders import CacheSpecMismatch, TeacherCache

    fast = _load(tiny_teacher_dir, amp="bf16")
    assert fast.compute_dtype == "bfloat16" and tiny_teacher.compute_dtype == "float32"
    rows = sst2_rows[:8]
    for a, b in zip(tiny_teacher.score(rows), fast.score(rows)):
        assert b["logits"].dtype == np.float32 and not np.array_equal(a["logits"], b["logits"])
        np.testing.assert_allclose(b["logits"], a["logits"], atol=0.05)
        for layer in a["hidden"]:
            rel = np.sqrt(np.mean((a["hidden"][layer] - b["hidden"][layer]) ** 2)
                          / np.mean(a["hidden"][layer] ** 2))
            assert rel < 0.02
    spec32, spec16 = tiny_teacher.spec(), fast.spec()
    assert spec32.compute == "float32" and spec16.compute == "bfloat16"
    TeacherCache.create(str(tmp_path / "c"), spec32)
    with pytest.raises(CacheSpecMismatch, match="compute"):
        TeacherCache.open(str(tmp_path / "c"), spec16)
    old = spec32.to_dict()
    del old["compute"]  # a manifest written before the field: float32
    assert type(spec32).from_dict(old) == spec32
    with pytest.raises(ValueError, match="fp16' is for GPUs"):
        _load(tiny_teacher_dir, amp="fp16")


def test_load_teacher_is_the_one_load_the_teacher_reads(tiny_teacher_dir):
    """`load_teacher` returns one frozen result; `Teacher.load()` keeps it (loading once) and its
    properties are that result, not a second copy that could drift."""
    import dataclasses

    from distiller.builders.teacher.load import LoadedTeacher, load_teacher

    cfg = TeacherConfig(model=tiny_teacher_dir, max_length=64, device="cpu", num_threads=1,
                        layers=(0, 2), attentions=(2,))
    loaded = load_teacher(cfg)
    assert isinstance(loaded, LoadedTeacher) and loaded.config is cfg
    assert (loaded.layers, loaded.attention_layers, loaded.compute_dtype) == ((0, 2), (2,),
                                                                              "float32")
    assert loaded.device.type == "cpu" and loaded.uses_token_types
    assert loaded.backend.name == "eager" and not loaded.model.training
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.fingerprint = "0" * 32
    t = Teacher(cfg)
    assert t.model is None and t.tokenizer is None and t.device is None
    with pytest.raises(RuntimeError, match="load"):
        t.fingerprint
    t.load()
    first = t.loaded
    assert t.load().loaded is first                      # idempotent: no second load
    assert t.fingerprint == loaded.fingerprint           # the same teacher, loaded again
    assert all(a is b for a, b in zip((t.model, t.tokenizer, t.device, t.backend),
                                      (first.model, first.tokenizer, first.device, first.backend)))
    assert (t.layers, t.attention_layers, t.compute_dtype, t.uses_token_types) == (
        first.layers, first.attention_layers, first.compute_dtype, first.uses_token_types)


def test_config_validation():
    with pytest.raises(ValueError, match="pooling"):
        TeacherConfig(model="x", pooling="max")
    with pytest.raises(ValueError, match="max_tokens_per_batch"):
        TeacherConfig(model="x", max_length=128, max_tokens_per_batch=64)
    with pytest.raises(ValueError, match="layers"):
        TeacherConfig(model="x", layers="some")


def test_regression_teacher_on_stsb_pairs(tmp_path, sst2_rows):
    from distiller.builders import CacheReader, TeacherCache
    from .conftest import GLUE, read_tsv

    rows = read_tsv(os.path.join(GLUE, "STS-B", "dev.tsv"), 12)
    path = make_tiny_teacher(tmp_path / "reg", [r["text_a"] for r in sst2_rows], num_labels=1)
    t = _load(path)
    assert t.problem_type == "regression" and t.num_labels == 1
    out = t.score(rows)
    assert all(o["logits"].shape == (1,) and o["token_type_ids"].max() == 1 for o in out)
    cache = TeacherCache.create(str(tmp_path / "c"), t.spec())
    cache.add(out)
    assert cache.spec.problem_type == "regression"
    got = CacheReader(cache.path).get(out[0]["key"])
    np.testing.assert_allclose(got["logits"].numpy(), out[0]["logits"], atol=0)
