"""Inputs through fsspec end to end: a build from a file:// glob on the multi-process
DirectRunner, `score` from an in-memory file system, and output paths that are URLs refused."""
import json

import pytest

from distiller.builders.cache.store import TeacherCache
from distiller.cli import main

from .pipeline_testlib import glue_path

pytestmark = pytest.mark.slow


def _sst2_lines(n, skip=0):
    with open(glue_path("SST-2"), encoding="utf-8") as fh:
        header = next(fh)
        body = [line for _, line in zip(range(skip + n), fh)][skip:]
    return header + "".join(body)


def test_a_build_reads_a_file_url_glob_on_worker_processes(tmp_path, tiny_teacher, capsys):
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(2):
        (parts / f"train-{i}.tsv").write_text(_sst2_lines(10, skip=10 * i), encoding="utf-8")
    (parts / "notes.txt").write_text("not matched by the glob\n")
    cache = str(tmp_path / "cache")
    rc = main(["build", "--no-progress", "--json", "--input", f"file://{parts}/train-*.tsv",
               "--task", "sst2", "--teacher", tiny_teacher, "--cache", cache, "--workers", "2",
               "--max-length", "64"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["records_read"] == 20 and summary["dead_letters"] == 0
    rows = TeacherCache.open(cache).read_corpus("sst2-train")
    assert [r["id"] for r in rows] == sorted(f"train-{i}.tsv:{j}" for i in range(2)
                                             for j in range(10))


def test_score_reads_an_in_memory_file_system(tmp_path, tiny_teacher, capsys):
    import fsspec

    fsspec.filesystem("memory").pipe("/corpus/dev.tsv", _sst2_lines(6).encode("utf-8"))
    cache = str(tmp_path / "cache")
    assert main(["score", "--input", "memory://corpus/dev.tsv", "--task", "sst2", "--teacher",
                 tiny_teacher, "--cache", cache, "--max-length", "64", "--devices", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["records"] == 6 and out["corpus"] == "sst2-dev"
    assert len(TeacherCache.open(cache).read_corpus("sst2-dev")) == 6


@pytest.mark.parametrize("flag,value", [("--cache", "s3://bucket/cache"),
                                        ("--dead-letters", "gs://bucket/dead.jsonl")])
def test_output_urls_are_refused_before_any_work(tmp_path, tiny_teacher, capsys, flag, value):
    data = tmp_path / "train.tsv"
    data.write_text(_sst2_lines(3), encoding="utf-8")
    args = {"--input": str(data), "--cache": str(tmp_path / "cache"), flag: value}
    assert main(["build", "--task", "sst2", "--teacher", tiny_teacher, "--no-progress",
                 *[x for kv in args.items() for x in kv]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"distiller build: error: {flag} {value!r} is a URL") and \
        err.count("\n") == 1
