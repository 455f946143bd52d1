"""`distiller build` end to end through its real argv, on real SST-2 and RTE rows, tiny teacher."""
import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from distiller.builders.cache.store import TeacherCache
from distiller.cli import main
from .pipeline_testlib import glue_path, head_tsv

pytestmark = pytest.mark.slow

SWAP = "eda_swap:0.3,copies=2"
SYNONYM = "eda_synonym:0.2,copies=1"


def build(capsys, *args):
    """Run `distiller build ... --json` and return the summary it printed."""
    rc = main(["build", "--no-progress", "--json", *args])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out.strip().splitlines()[-1])


def content_by_key(cache_path):
    """key -> the full stored row (every column, as Python values) of a committed cache."""
    cache = TeacherCache.open(cache_path)
    rows = {}
    for info in cache.shards():
        for row in pq.read_table(cache.shard_path(info.name)).to_pylist():
            assert row["key"] not in rows, f"duplicate key {row['key']}"
            rows[row["key"]] = row
    return rows


def test_build_twice_then_a_second_policy_shares_the_originals(tmp_path, tiny_teacher, capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 120)
    cache = str(tmp_path / "cache")
    common = ["--input", data, "--task", "sst2", "--teacher", tiny_teacher, "--cache", cache,
              "--max-length", "64"]
    first = build(capsys, *common, "--augment", SWAP, "--workers", "2")
    assert first["records_read"] == 120 and first["dead_letters"] == 0
    assert 120 < first["augmented_copies"] <= 240
    assert first["newly_scored"] == first["unique_keys"] > 120 and first["cache_hits"] == 0
    assert first["bytes_written"] > 0 and first["beam_counters"]["newly_scored"] == \
        first["newly_scored"]
    opened = TeacherCache.open(cache)
    assert opened.verify() == []
    names = opened.corpora()
    assert names[0] == "sst2-train" and names[1].startswith("sst2-train+eda_swap-p0.3-n2-")
    originals = opened.read_corpus("sst2-train")
    assert [r["id"] for r in originals] == sorted(f"train.tsv:{i}" for i in range(120))
    assert {r["chain"] for r in originals} == {"original"}
    augmented = opened.read_corpus(names[1])
    assert len(augmented) == 120 + first["augmented_copies"]
    assert {r["parent_id"] for r in augmented if r["chain"] != "original"} <= {
        r["id"] for r in originals}

    again = build(capsys, *common, "--augment", SWAP, "--workers", "1")
    assert again["newly_scored"] == 0 and again["shards_written"] == 0
    assert again["cache_hits"] == first["unique_keys"]
    assert TeacherCache.open(cache).read_corpus(names[1]) == augmented
    assert first["corpora_replaced"] == again["corpora_replaced"] == {}  # same rows: no notice

    keys_before = set(content_by_key(cache))
    other = build(capsys, *common, "--augment", SYNONYM, "--workers", "1")
    syn_name = [n for n in TeacherCache.open(cache).corpora() if "eda_synonym" in n][0]
    syn = TeacherCache.open(cache).read_corpus(syn_name)
    original_keys = {r["key"] for r in originals}
    assert {r["key"] for r in syn if r["chain"] == "original"} == original_keys
    # the originals were cache hits: only (new) synonym copies were scored
    assert other["cache_hits"] >= len(original_keys)
    assert other["newly_scored"] == len({r["key"] for r in syn} - keys_before) > 0
    assert other["newly_scored"] <= other["augmented_copies"]
    assert TeacherCache.open(cache).verify() == []

    # the same split from a smaller file: the originals' corpus is replaced, and the build says so
    fewer = head_tsv(glue_path("SST-2"), str(tmp_path / "fewer.tsv"), 50)
    rc = main(["build", "--no-progress", "--input", fewer, *common[2:], "--workers", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "warning: corpus sst2-train replaced: it held 120 rows" in out
    assert len(TeacherCache.open(cache).read_corpus("sst2-train")) == 50
    assert set(content_by_key(cache)) >= {r["key"] for r in syn} | {r["key"] for r in augmented}


def test_rte_pairs_build_through_the_cli(tmp_path, tiny_teacher, capsys):
    data = head_tsv(glue_path("RTE"), str(tmp_path / "rte.tsv"), 120)
    cache = str(tmp_path / "cache")
    s = build(capsys, "--input", data, "--task", "rte", "--teacher", tiny_teacher, "--cache",
              cache, "--augment", "eda_swap:0.1,copies=1", "--workers", "1")
    assert s["records_read"] == 120 and s["augmented_copies"] > 100
    opened = TeacherCache.open(cache)
    assert opened.verify() == [] and opened.corpora()[0] == "rte-train"
    rows = opened.read_corpus("rte-train")
    assert rows[0]["id"].startswith("rte.tsv:idx=")
    # long RTE premises are truncated to max_length (128) and counted, not dropped
    assert s["truncated"] > 0 and s["dead_letters"] == 0


def _builds_by_runner(tmp_path, tiny_teacher, capsys, data, attempt):
    contents, corpora = [], []
    # two CPU device slots: each worker process claims one (distiller.pipelines.devices), as on 2
    # GPUs
    for name, extra in (("w1", ["--workers", "1"]),
                        ("w2", ["--workers", "2", "--devices", "cpu,cpu"]),
                        ("dask", ["--runner", "dask", "--devices", "cpu,cpu"])):
        cache = str(tmp_path / f"{name}-{attempt}")
        s = build(capsys, "--input", data, "--task", "sst2", "--teacher", tiny_teacher,
                  "--cache", cache, "--augment", SWAP, "--unit-size", "64", *extra)
        assert s["records_read"] == 100, name
        contents.append(content_by_key(cache))
        opened = TeacherCache.open(cache)
        corpora.append({n: opened.read_corpus(n) for n in opened.corpora()})
    assert len(contents[0]) == s["unique_keys"] > 100
    assert corpora[0] == corpora[1] == corpora[2]
    return contents


def _byte_differences(contents):
    """'runner: key field' for every stored value that differs from the 1-worker build."""
    names = ("w2", "dask")
    return [f"{names[i]}: {key} {field}" for i, other in enumerate(contents[1:])
            for key, row in contents[0].items() for field in row
            if other.get(key, {}).get(field) != row[field]]


def test_same_bytes_with_one_and_two_workers_and_on_dask(tmp_path, tiny_teacher, capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 100)
    # 1 worker scores with 2 torch threads, 2 workers with 1 each: the same bytes need
    # thread-count-independent math (distiller.common.seeding.THREAD_INDEPENDENT_MKL; without it a
    # few logits differed in their last bit, in some runs, depending on the random tiny teacher).
    differences = _byte_differences(_builds_by_runner(tmp_path, tiny_teacher, capsys, data, 0))
    assert differences == []


def test_bad_rows_end_as_dead_letters_with_reasons(tmp_path, tiny_teacher, capsys, bad_tsv):
    long_row = "a " + "very " * 80 + "long review\t1\n"
    with open(bad_tsv, "a", encoding="utf-8") as fh:
        fh.write(long_row)                                   # row 10: over --max-length 32
    dead_file = str(tmp_path / "dead.jsonl")
    common = ["--input", bad_tsv, "--task", "sst2", "--teacher", tiny_teacher,
              "--max-length", "32", "--workers", "1", "--dead-letters", dead_file]
    s = build(capsys, *common, "--cache", str(tmp_path / "c1"), "--reject-long")
    assert s["records_read"] == 4 and s["unique_keys"] == 3   # row 8 repeats row 0
    assert s["dead_letters"] == 7
    assert s["dead_letter_reasons"] == {"empty text": 1, "malformed row": 2, "missing label": 1,
                                        "text too long": 1, "undecodable bytes": 1,
                                        "unknown label": 1}
    with open(dead_file, encoding="utf-8") as fh:
        dead = [json.loads(line) for line in fh]
    assert [(d["row"], d["reason"].split(":")[0].split(" in ")[0]) for d in dead] == [
        (1, "malformed row"), (2, "empty text"), (3, "undecodable bytes"),
        (4, "missing label"),
        (5, "unknown label '7' (expected one of ['negative', 'positive'] or a class index 0..1)"),
        (7, "malformed row"), (10, "text over the length limit")]
    assert dead[2]["raw"].startswith("caf")
    assert s["truncated"] == 0  # (truncation-and-count is checked on RTE's long premises)


def test_a_build_killed_mid_run_then_rerun_leaves_a_verified_complete_cache(tmp_path,
                                                                            tiny_teacher,
                                                                            capsys):
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 600)
    cache = str(tmp_path / "cache")
    argv = [sys.executable, "-m", "distiller", "build", "--no-progress", "--json", "--input",
            data, "--task", "sst2", "--teacher", tiny_teacher, "--cache", cache, "--augment",
            SWAP, "--workers", "1", "--unit-size", "16"]
    # a first, complete build of some originals, so the killed one has a cache to damage
    assert main(argv[3:-6] + ["--workers", "1", "--limit", "100"]) == 0
    before = content_by_key(cache)
    capsys.readouterr()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shard_dir = os.path.join(cache, "shards")
    deadline = time.monotonic() + 120
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
    left = [n for n in os.listdir(shard_dir)                   # whole shards, never committed
            if n.endswith(".parquet") and not n.startswith(".") and n not in committed]
    left_rows = sum(pq.read_metadata(os.path.join(shard_dir, n)).num_rows for n in left)
    assert left_rows > 0
    # the killed build's staging directory of corpus parts: a leftover that verify names and
    # clean removes (the sound uncommitted shards stay for the next build)
    staging = [n for n in os.listdir(cache) if n.startswith(".parts.tmp-")]
    assert len(staging) == 1 and os.path.isdir(os.path.join(cache, staging[0]))
    assert main(["cache", "verify", cache]) == 0
    said = capsys.readouterr().out
    assert f"warning: staging directory {staging[0]} (" in said
    assert "is gone): `distiller cache clean` or the next build removes it" in said
    assert main(["cache", "clean", cache]) == 0
    capsys.readouterr()
    assert not os.path.exists(os.path.join(cache, staging[0]))
    assert sorted(n for n in os.listdir(shard_dir) if n in left) == sorted(left)

    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    opened = TeacherCache.open(cache)
    assert opened.verify() == []
    after = content_by_key(cache)                              # asserts no duplicate keys
    expected = {r["key"] for n in opened.corpora() for r in opened.read_corpus(n)}
    assert summary["records_read"] == 600 and set(after) == expected
    assert {k: after[k] for k in before} == before
    # what the killed build had scored is committed by the re-run, not scored again
    assert summary["adopted_rows"] == left_rows
    assert summary["newly_scored"] == len(after) - len(before) - left_rows
    assert [n for n in os.listdir(cache) if ".tmp-" in n] == []   # the re-run's staging too


def test_two_builds_at_once_each_commit_what_they_scored(tmp_path, tiny_teacher, capsys):
    """Build A has written finished shards but not committed them when build B starts on the same
    cache: B leaves them to A (it scores those rows itself), so that B does not say an
    "interrupted build" scored them and A does not say another build committed its rows."""
    import shutil

    from distiller.builders.cache.corpusparts import staging_dir

    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 40)
    donor, cache = str(tmp_path / "donor"), str(tmp_path / "cache")
    common = ["--input", data, "--task", "sst2", "--teacher", tiny_teacher, "--workers", "1",
              "--unit-size", "16"]
    assert build(capsys, *common, "--cache", donor)["newly_scored"] == 40
    scored = TeacherCache.open(donor)
    TeacherCache.create(cache, scored.spec)          # build A: its shards written, none
    for info in scored.shards():                     # committed yet, its staging directory
        shutil.copy(scored.shard_path(info.name), os.path.join(cache, "shards", info.name))
    working = staging_dir(cache)                     # held by a live process (this one)
    b = build(capsys, *common, "--cache", cache, "--split", "b", "--limit", "20")
    os.rmdir(working)
    assert b["adopted_rows"] == 0 and b["newly_scored"] == 20 and b["cache_hits"] == 0
    assert TeacherCache.open(cache).verify() == []
    # (once build A is gone, the next build commits its shards: the killed-build test above)


def test_mixup_outputs_are_scored_and_cached_and_the_corpus_keeps_the_pairing(
        tmp_path, tiny_teacher, capsys):
    """`--mixup 1`: one pair per record, teacher outputs cached under the mixup keys. The corpus
    keeps the pairing (both parents' keys, lambda, the partner's label)."""
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 60)
    cache = str(tmp_path / "cache")
    rc = main(["build", "--no-progress", "--json", "--input", data, "--task", "sst2", "--teacher",
               tiny_teacher, "--cache", cache, "--mixup", "1", "--workers", "1"])
    captured = capsys.readouterr()
    opened = TeacherCache.open(cache)
    originals = opened.read_corpus("sst2-train")
    assert len(originals) == 60
    assert len(opened) > len({r["key"] for r in originals})   # mixup outputs were committed
    assert rc == 0, captured.err
    mixed = [r for r in opened.read_corpus("sst2-train+mixup-n1-a0.4") if r["chain"] == "mixup"]
    assert len(mixed) == 60 and all(r["mix_key_a"] != r["mix_key_b"] for r in mixed)
    assert all(0.0 <= r["mix_lam"] <= 1.0 and r["mix_label_b"] in (0, 1) for r in mixed)
    assert not opened.missing([r["mix_key_a"] for r in mixed] + [r["mix_key_b"] for r in mixed])


def test_a_student_trains_on_the_mixup_corpus_from_the_cache_alone(tmp_path, tiny_teacher):
    """Issue 8 end to end: build with --mixup, then `distiller train` on the mixup corpus."""
    data = head_tsv(glue_path("SST-2"), str(tmp_path / "train.tsv"), 40)
    cache = str(tmp_path / "cache")
    assert main(["build", "--no-progress", "--input", data, "--task", "sst2", "--teacher",
                 tiny_teacher, "--cache", cache, "--mixup", "1", "--workers", "1"]) == 0
    run = str(tmp_path / "run")
    assert main(["train", "--cache", cache, "--task", "sst2", "--train-corpus",
                 "sst2-train+mixup-n1-a0.4", "--dev-corpus", "sst2-train", "--student",
                 tiny_teacher, "--student-init", "truncate", "--student-num-layers", "1",
                 "--epochs", "1", "--batch-size", "16", "--run-dir", run, "--no-progress",
                 "--set", "w_gold=0.5"]) == 0
    with open(os.path.join(run, "result.json")) as fh:
        result = json.load(fh)
    assert result["history"] and result["history"][0]["train"]["loss"] > 0
