"""`distiller build` of language-model corpora (token-level teachers) through its real argv, on
real SST-2 sentences with tiny random LMs: the Beam path stores the rows `distiller score` does,
and a build killed mid-run then run again loses nothing and stores nothing twice."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.cli import main
from .pipeline_testlib import glue_path, head_tsv
from .test_pipeline_build import build, content_by_key

pytestmark = pytest.mark.slow


def test_build_writes_the_rows_score_writes(tmp_path, tiny_gpt2, capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 60)
    common = ["--input", data, "--task", "lm", "--kind", "causal_lm", "--text-a", "sentence",
              "--teacher", tiny_gpt2, "--tokens", "topk:6", "--max-length", "40"]
    built = str(tmp_path / "built")
    s = build(capsys, *common, "--cache", built, "--workers", "1", "--unit-size", "16")
    assert s["records_read"] == 60 and s["newly_scored"] == s["unique_keys"]
    scored = str(tmp_path / "scored")
    assert main(["score", *common, "--cache", scored, "--devices", "cpu",
                 "--corpus", "lm-train"]) == 0
    capsys.readouterr()
    a, b = TeacherCache.open(built), TeacherCache.open(scored)
    assert a.spec == b.spec and a.spec.tokens == "topk:6" and a.verify() == []
    # the same rows, key by key; the values as close as other forward batches allow (padding
    # moves a logit in its last bits, and then a float16 value may round the other way)
    ra, rb = CacheReader(built), CacheReader(scored)
    assert sorted(ra.keys()) == sorted(rb.keys()) and len(ra) == 60
    for key in ra.keys():
        x, y = ra.get(key), rb.get(key)
        for name in ("input_ids", "positions", "targets"):
            assert np.array_equal(x[name], y[name]), name
        x, y = x["token_topk"], y["token_topk"]
        assert np.array_equal(x.ids, y.ids)
        assert np.allclose(x.logprobs.astype(np.float32), y.logprobs.astype(np.float32),
                           atol=2e-3)
        assert np.allclose(x.log_tail, y.log_tail, atol=1e-4)
    assert {r["id"]: r["key"] for r in a.read_corpus("lm-train")} == \
        {r["id"]: r["key"] for r in b.read_corpus("lm-train")}


def test_a_token_level_build_killed_mid_run_then_rerun_loses_and_doubles_nothing(
        tmp_path, tiny_mlm, capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 300)
    cache = str(tmp_path / "cache")
    argv = [sys.executable, "-m", "distiller", "build", "--no-progress", "--json", "--input",
            data, "--task", "lm", "--kind", "masked_lm", "--text-a", "sentence", "--teacher",
            tiny_mlm, "--tokens", "sample:8", "--cache", cache, "--augment",
            "eda_swap:0.3,copies=1", "--workers", "1", "--unit-size", "8"]
    # a first, complete build of some originals, so the killed one has a cache to damage
    assert main(argv[3:-6] + ["--workers", "1", "--limit", "100"]) == 0
    before = content_by_key(cache)
    capsys.readouterr()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shard_dir = os.path.join(cache, "shards")
    deadline = time.monotonic() + 180
    committed = {s.name for s in TeacherCache.open(cache).shards()}
    while time.monotonic() < deadline and proc.poll() is None:
        whole = [n for n in os.listdir(shard_dir) if not n.startswith(".")]  # not temp files
        if len(set(whole) - committed) >= 2:                   # mid-scoring: uncommitted shards
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)                        # the launcher and its workers
    proc.wait()
    assert TeacherCache.open(cache).verify() == []
    assert content_by_key(cache) == before                     # invisible until committed
    left = [n for n in os.listdir(shard_dir)
            if n.endswith(".parquet") and not n.startswith(".") and n not in committed]
    left_rows = sum(pq.read_metadata(os.path.join(shard_dir, n)).num_rows for n in left)
    assert left_rows > 0

    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    opened = TeacherCache.open(cache)
    assert opened.verify() == []
    after = content_by_key(cache)                              # asserts no duplicate keys
    expected = {r["key"] for n in opened.corpora() for r in opened.read_corpus(n)}
    assert summary["records_read"] == 300 and set(after) == expected
    assert {k: after[k] for k in before} == before
    assert summary["adopted_rows"] == left_rows                # not scored again
    assert summary["newly_scored"] == len(after) - len(before) - left_rows
    # the manifest's positions count every stored row's, adopted shards' included
    assert opened.stats()["positions"] == sum(len(r["positions"]) // 4 for r in after.values())
