"""Cache semantics: reuse, dedupe, atomic commits, concurrent writers, corruption, clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from distiller.builders import (CacheError, CacheReader, CacheSpecMismatch, CorruptShardError,
                      ForeignDirectoryError, MissingShardError, TeacherCache,
                      UnsatisfiableRequest)

from .synthetic import damage_a_data_page, make_outputs, make_spec

HERE = os.path.dirname(os.path.abspath(__file__))


def _writer(cache, prefix, chunks, chunk, *extra):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "synthetic.py"), cache, prefix,
                             str(chunks), str(chunk), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture()
def cache(tmp_path):
    return TeacherCache.create(str(tmp_path / "cache"), make_spec())


def test_incremental_build_scores_only_missing_keys(tmp_path, tiny_teacher, sst2_rows):
    cache = TeacherCache.create(str(tmp_path / "c"), tiny_teacher.spec())
    first = sst2_rows[:30]
    cache.add(tiny_teacher.score(first))
    second = sst2_rows[20:50] + sst2_rows[20:25]               # overlaps, and repeats itself
    keys = [tiny_teacher.cache_key(r["text_a"], r["text_b"]) for r in second]
    todo = set(cache.missing(keys))
    assert len(todo) == len({tiny_teacher.cache_key(r["text_a"], None) for r in sst2_rows[30:50]})
    assert cache.contains(keys[:12]) == [True] * 10 + [False] * 2
    calls, scored = tiny_teacher.calls, tiny_teacher.examples_scored
    pending = [r for r, k in zip(second, keys) if k in todo]
    seen = {}
    for r, k in zip(pending, [tiny_teacher.cache_key(r["text_a"], None) for r in pending]):
        seen.setdefault(k, r)
    cache.add(tiny_teacher.score(list(seen.values())))
    assert tiny_teacher.examples_scored - scored == len(todo)
    assert tiny_teacher.calls - calls >= 1
    assert cache.missing(keys) == []
    assert len(cache) == len(set(cache.keys())) == len(
        {tiny_teacher.cache_key(r["text_a"], None) for r in sst2_rows[:50]})


def test_uncommitted_shards_of_an_interrupted_build_are_adopted_once_checked(cache, tmp_path,
                                                                            caplog):
    cache.add(make_outputs(["a", "b"]))
    whole = cache.write_shard(make_outputs(["b", "c", "d"]))   # scored, never committed
    bad = cache.write_shard(make_outputs(["e", "f"]))
    damage_a_data_page(cache.shard_path(bad.name))               # damaged on disk
    other = TeacherCache.create(str(tmp_path / "other"), make_spec(fingerprint="e" * 32))
    foreign = other.write_shard(make_outputs(["g"]))            # another teacher's shard
    os.replace(other.shard_path(foreign.name), cache.shard_path(foreign.name))
    with open(os.path.join(cache.path, "shards", ".tmp-half-written"), "wb") as fh:  # temp file
        fh.write(b"PAR1")
    added = cache.adopt_uncommitted()
    assert len(added) == 1 and added[0].name != whole.name       # rewritten without "b" ...
    assert sorted(cache.keys()) == ["a", "b", "c", "d"]          # ... so "b" is stored once
    assert cache.verify() == []
    assert cache.missing(["e", "f", "g"]) == ["e", "f", "g"]     # left alone, and said so
    assert sum(bad.name in r.message for r in caplog.records) == 1
    assert sum(foreign.name in r.message and "spec" in r.message for r in caplog.records) == 1
    assert TeacherCache.open(cache.path).adopt_uncommitted() == []   # nothing twice


def test_duplicates_stored_once(cache):
    outs = make_outputs(["a", "b", "a", "c"])
    cache.add(outs)
    assert sorted(cache.keys()) == ["a", "b", "c"]
    # A shard written with already-present keys commits only the new ones.
    info = cache.write_shard(make_outputs(["b", "c", "d"]))
    added = cache.commit([info])
    assert [a.rows for a in added] == [1]
    assert sorted(cache.keys()) == ["a", "b", "c", "d"]
    assert cache.commit([cache.write_shard(make_outputs(["a"]))]) == []   # all duplicates
    assert cache.verify() == []
    assert cache.stats()["examples"] == 4


def test_retried_bundle_rewrites_same_shard(cache):
    a = cache.write_shard(make_outputs(["x", "y"]))
    b = cache.write_shard(make_outputs(["y", "x"]))
    assert a.name == b.name and a.sha256 == b.sha256
    cache.commit([a])
    cache.commit([b])
    assert len(cache) == 2 and len(cache.shards()) == 1


def test_uncommitted_shard_is_invisible(cache):
    cache.add(make_outputs(["a", "b"]))
    before = json.load(open(os.path.join(cache.path, "manifest.json")))
    info = cache.write_shard(make_outputs(["c", "d"]))         # "killed" before commit
    assert os.path.exists(cache.shard_path(info.name))
    again = TeacherCache.open(cache.path)
    assert sorted(again.keys()) == ["a", "b"] and again.missing(["c"]) == ["c"]
    assert again.verify() == []
    assert json.load(open(os.path.join(cache.path, "manifest.json"))) == before
    assert len(CacheReader(cache.path)) == 2


def test_sigkilled_writer_leaves_committed_rows_only(cache, tmp_path):
    marker = str(tmp_path / "paused")
    proc = _writer(cache.path, "w", 3, 5, "--pause-before-commit", marker)
    deadline = time.time() + 60
    while not os.path.exists(marker) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert os.path.exists(marker), proc.stderr.read() if proc.poll() is not None else "timeout"
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reopened = TeacherCache.open(cache.path)
    assert reopened.verify() == []
    assert len(reopened) == 2 * (5 + 2)                       # two committed chunks, not three
    assert reopened.missing(["w-2-0"]) == ["w-2-0"]
    reader = CacheReader(cache.path)
    assert reader.get("w-1-4")["hidden"][0].shape[1] == 8


def test_sigkill_at_arbitrary_point(cache):
    proc = _writer(cache.path, "k", 200, 3)
    first = proc.stdout.readline()                            # at least one commit happened
    assert first.startswith("committed"), proc.stderr.read()
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reopened = TeacherCache.open(cache.path)
    assert reopened.verify() == []
    keys = reopened.keys()
    assert len(keys) >= 5 and len(keys) % 5 == 0 and len(keys) == len(set(keys))
    reader = CacheReader(cache.path)
    assert all(reader.get(k)["key"] == k for k in reader.keys())


def test_two_concurrent_writers_both_land(cache):
    procs = [_writer(cache.path, p, 12, 3) for p in ("p", "q")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    final = TeacherCache.open(cache.path)
    keys = final.keys()
    assert len(keys) == len(set(keys)) == 12 * 3 * 2 + 12 * 2
    assert all(f"{p}-{c}-{i}" in set(keys) for p in "pq" for c in range(12) for i in range(3))
    assert final.verify() == []


def _damage(path, how):
    size = os.path.getsize(path)
    if how == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    else:
        with open(path, "r+b") as fh:
            fh.seek(size // 3)
            b = fh.read(1)
            fh.seek(size // 3)
            fh.write(bytes([b[0] ^ 0xFF]))


@pytest.mark.parametrize("how", ["truncate", "alter"])
def test_verify_and_reader_detect_damaged_shard(cache, how):
    cache.add(make_outputs([f"a{i}" for i in range(20)]))
    cache.add(make_outputs([f"b{i}" for i in range(20)]))
    bad = cache.shards()[1]
    _damage(cache.shard_path(bad.name), how)
    problems = cache.verify()
    assert len(problems) == 1 and problems[0].startswith(bad.name)
    assert ("truncated" if how == "truncate" else "checksum") in problems[0]
    if how == "truncate":
        with pytest.raises(CorruptShardError, match=bad.name):
            CacheReader(cache.path)
    else:
        reader = CacheReader(cache.path)
        assert reader.get("a3")["key"] == "a3"                # the good shard still serves
        with pytest.raises(CorruptShardError, match=bad.name):
            for i in range(20):
                reader.get(f"b{i}")
        with pytest.raises(CorruptShardError, match=bad.name):
            CacheReader(cache.path, verify_checksums=True)


def test_manifest_pointing_at_missing_shard(cache):
    cache.add(make_outputs(["a"]))
    os.unlink(cache.shard_path(cache.shards()[0].name))
    assert "missing" in cache.verify()[0]
    with pytest.raises(MissingShardError, match="does not exist"):
        CacheReader(cache.path)
    with pytest.raises(MissingShardError):
        TeacherCache.open(cache.path).missing(["a"])


def test_foreign_directory(tmp_path):
    d = tmp_path / "foreign"
    d.mkdir()
    (d / "notes.txt").write_text("hello")
    with pytest.raises(ForeignDirectoryError, match="not a teacher cache"):
        TeacherCache.open(str(d))
    with pytest.raises(ForeignDirectoryError, match="not empty"):
        TeacherCache.create(str(d), make_spec())
    with pytest.raises(ForeignDirectoryError):
        CacheReader(str(d))
    (d / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ForeignDirectoryError, match="something-else"):
        TeacherCache.open(str(d))
    (d / "manifest.json").write_text("{not json")
    with pytest.raises(ForeignDirectoryError):
        TeacherCache.open(str(d))


def test_spec_mismatch_and_unsatisfiable_requests(cache):
    cache.add(make_outputs(["a"]))
    with pytest.raises(CacheSpecMismatch, match="dtype: cache has 'float16', requested 'int8'"):
        TeacherCache.open_or_create(cache.path, make_spec(dtype="int8"))
    with pytest.raises(CacheSpecMismatch, match="fingerprint"):
        TeacherCache.open(cache.path, make_spec(fingerprint="e" * 32))
    assert TeacherCache.open_or_create(cache.path, make_spec(model="elsewhere")).keys() == ["a"]
    with pytest.raises(UnsatisfiableRequest, match=r"hidden layer\(s\) \[1\]"):
        CacheReader(cache.path, layers=[0, 1])
    with pytest.raises(UnsatisfiableRequest, match="attention"):
        CacheReader(cache.path, attentions=True)
    with pytest.raises(CacheSpecMismatch, match="expects teacher " + "e" * 32):
        CacheReader(cache.path, expect_fingerprint="e" * 32)
    ok = cache.satisfiable({"layers": [0, 2]})
    assert ok and ok.missing == []
    no = cache.satisfiable({"layers": [0, 1], "attentions": True})
    assert not no and len(no.missing) == 2 and "[1]" in no.missing[0]
    with pytest.raises(UnsatisfiableRequest):
        no.raise_if_not()
    with pytest.raises(ValueError, match="unknown requirement"):
        cache.satisfiable({"layer": [1]})


def test_outputs_not_matching_spec_are_rejected(cache):
    bad = make_outputs(["a"])
    del bad[0]["hidden"][2]
    with pytest.raises(ValueError, match=r"lacks hidden layers \[2\]"):
        cache.add(bad)
    assert len(cache) == 0


@pytest.mark.parametrize("dtype,tol", [("float16", 2e-3), ("int8", 1.5e-2)])
def test_quantisation_error_bounds(tmp_path, dtype, tol):
    spec = make_spec(dtype=dtype, logits_dtype=dtype, attentions=(1,))
    cache = TeacherCache.create(str(tmp_path / dtype), spec)
    outs = make_outputs([f"k{i}" for i in range(30)], attentions=(1,))
    cache.add(outs)
    reader = CacheReader(cache.path, attentions=True)
    for o in outs:
        got = reader.get(o["key"])
        for l in (0, 2):
            ref = o["hidden"][l]
            rel = np.abs(got["hidden"][l].numpy() - ref).max(axis=1) / np.abs(ref).max(axis=1)
            assert rel.max() <= tol * (1 if dtype == "int8" else 0.5)
        assert np.abs(got["attentions"][1].numpy() - o["attentions"][1]).max() <= 1 / 254 + 1e-6
        assert np.abs(got["logits"].numpy() - o["logits"]).max() <= np.abs(o["logits"]).max() * tol


def test_topk_logits_mode(tmp_path):
    spec = make_spec(num_labels=6, logits_topk=2)
    cache = TeacherCache.create(str(tmp_path / "topk"), spec)
    outs = make_outputs(["a", "b"], num_labels=6)
    cache.add(outs)
    got = CacheReader(cache.path).get("a")
    z = outs[0]["logits"].astype(np.float64)
    logp = z - np.log(np.exp(z).sum())
    top = np.argsort(-logp)[:2]
    assert got["topk_indices"].tolist() == top.tolist()
    np.testing.assert_allclose(got["topk_logprobs"].numpy(), logp[top], atol=1e-6)
    np.testing.assert_allclose(got["rest_mass"], 1 - np.exp(logp[top]).sum(), atol=1e-6)
    np.testing.assert_allclose(np.exp(got["logits"].numpy()).sum(), 1.0, atol=1e-5)
    assert not cache.satisfiable({"full_logits": True})


def test_corpora_and_merge(tmp_path):
    a = TeacherCache.create(str(tmp_path / "a"), make_spec())
    b = TeacherCache.create(str(tmp_path / "b"), make_spec())
    a.add(make_outputs(["x", "y"]))
    b.add(make_outputs(["y", "z"]))
    rows = [{"id": "f:0", "key": "z", "label": 1}, {"id": "f:1", "key": "y", "label": 0.5}]
    b.write_corpus("sst2-train", rows)
    assert b.read_corpus("sst2-train")[0] == {"id": "f:0", "key": "z", "label": 1,
                                              "parent_id": None, "chain": "original", "copy": 0}
    with pytest.raises(CacheError, match="does not hold"):
        a.write_corpus("bad", [{"id": "1", "key": "nope"}])
    with pytest.raises(ValueError, match="corpus name"):
        a.write_corpus("../escape", [])
    added = a.merge(b.path)
    assert sorted(a.keys()) == ["x", "y", "z"] and sum(i.rows for i in added) == 1
    assert a.corpora() == ["sst2-train"] and a.verify() == []
    reader = CacheReader(a.path)
    np.testing.assert_array_equal(reader.get("z")["input_ids"].numpy(),
                                  CacheReader(b.path).get("z")["input_ids"].numpy())
    c = TeacherCache.create(str(tmp_path / "c"), make_spec(dtype="int8"))
    with pytest.raises(CacheSpecMismatch):
        a.merge(c.path)


def test_estimate_matches_real_size(tmp_path, tiny_teacher, sst2_rows):
    from distiller.builders import estimate
    from distiller.builders.cache.planning import length_histogram, plan

    spec = tiny_teacher.spec()
    outs = tiny_teacher.score(sst2_rows[:150])
    cache = TeacherCache.create(str(tmp_path / "e"), spec)
    cache.add(outs)
    est = estimate(spec, length_histogram(len(o["input_ids"]) for o in outs))
    real = cache.stats()["bytes_per_example"]
    assert 0.8 * real <= est["bytes_per_example"] <= 1.25 * real, (est, real)
    huge = plan(spec, {128: 10 ** 12}, str(tmp_path))
    assert not huge["fits"]


def test_reader_random_access_by_row_and_key(cache):
    keys = [f"r{i}" for i in range(50)]
    outs = make_outputs(keys)
    for s in range(0, 50, 10):
        cache.add(outs[s:s + 10])
    reader = CacheReader(cache.path, layers=[2], max_row_groups=2)
    order = np.random.default_rng(0).permutation(50)
    for i in order:
        got = reader[int(i)]
        assert got["key"] == keys[i] and list(got["hidden"]) == [2]
        np.testing.assert_allclose(got["hidden"][2].numpy(), outs[i]["hidden"][2], atol=2e-2)
    assert [g["key"] for g in reader.get_many(["r7", "r3"])] == ["r7", "r3"]
    assert len(reader._lru) <= 2
    with pytest.raises(KeyError, match="not in cache"):
        reader.get("nope")


def test_reader_pickles_for_worker_processes(cache):
    import pickle

    cache.add(make_outputs(["a", "b"]))
    reader = CacheReader(cache.path)
    reader.get("a")
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone.get("b")["hidden"][2].numpy(),
                                  reader.get("b")["hidden"][2].numpy())


def test_create_after_interrupted_create(tmp_path):
    path = tmp_path / "half"
    (path / "shards").mkdir(parents=True)
    (path / "corpora").mkdir()
    (path / ".lock").write_text("")
    assert len(TeacherCache.create(str(path), make_spec())) == 0


def test_mixup_corpus_rows_keep_their_pairing(tmp_path):
    cache = TeacherCache.create(str(tmp_path / "m"), make_spec())
    cache.add(make_outputs(["x", "y", "xy"]))
    row = {"id": "f:0#mixup#0", "key": "xy", "label": 1, "parent_id": "f:0", "chain": "mixup",
           "copy": 0, "mix_key_a": "x", "mix_key_b": "y", "mix_lam": 0.25, "mix_label_b": 0}
    cache.write_corpus("sst2-train+mixup", [row])
    assert cache.read_corpus("sst2-train+mixup") == [row]
    with pytest.raises(ValueError, match=r"lacks \['mix_lam', 'mix_label_b'\]"):
        cache.write_corpus("bad", [{"id": "1", "key": "xy", "mix_key_a": "x", "mix_key_b": "y"}])
