"""`distiller score` and `distiller cache ...` driven through the real argv."""
from __future__ import annotations

import json
import os

import pytest

from distiller.cli import main

from .conftest import GLUE


@pytest.fixture(scope="module")
def sst2_file(tmp_path_factory):
    lines = open(os.path.join(GLUE, "SST-2", "dev.tsv"), encoding="utf-8").read().splitlines()
    path = tmp_path_factory.mktemp("in") / "dev.tsv"
    # 30 real rows, one repeated, one with an empty sentence (a dead letter).
    body = lines[1:31] + [lines[5], "\t1"]
    path.write_text("\n".join([lines[0]] + body) + "\n", encoding="utf-8")
    return str(path)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_score_then_cache_commands(tmp_path, tiny_teacher_dir, sst2_file, capsys):
    cache = str(tmp_path / "cache")
    base = ["score", "--input", sst2_file, "--task", "sst2", "--teacher", tiny_teacher_dir,
            "--cache", cache, "--max-length", "64", "--device", "cpu"]
    assert main(base + ["--dry-run"]) == 0
    dry = _json(capsys)
    assert dry["dry_run"] and dry["records"] == 31 and dry["dead_letters"] == 1
    assert dry["estimate"]["examples"] == 31 and dry["estimate"]["bytes_per_example"] > 0
    assert not os.path.exists(cache)

    assert main(base + ["--chunk", "8"]) == 0
    first = _json(capsys)
    assert first["scored"] == 30 and first["reused"] == 0 and first["duplicates"] == 1
    assert first["corpus"] == "sst2-dev"
    assert first["stats"]["examples"] == 30
    assert main(base) == 0
    second = _json(capsys)
    assert second["scored"] == 0 and second["reused"] == 31

    assert main(["cache", "stats", cache]) == 0
    assert _json(capsys)["examples"] == 30
    assert main(["cache", "info", cache]) == 0
    info = _json(capsys)
    # chunks of whole batches of at most 8 rows: at least 4 shards for 30 keys
    shards = len(info["shards"])
    assert info["corpora"]["sst2-dev"]["rows"] == 31 and shards >= 4
    assert main(["cache", "verify", cache]) == 0
    assert f"ok: {shards} shard(s)" in capsys.readouterr().out

    other = str(tmp_path / "other")
    assert main(["score", "--input", sst2_file, "--task", "sst2", "--teacher", tiny_teacher_dir,
                 "--cache", other, "--max-length", "64", "--device", "cpu", "--limit", "5",
                 "--corpus", "small"]) == 0
    capsys.readouterr()
    assert main(["cache", "merge", cache, other]) == 0
    assert "0 row(s) added" in capsys.readouterr().out
    assert main(["cache", "info", cache]) == 0
    assert set(_json(capsys)["corpora"]) == {"sst2-dev", "small"}

    bad = info["shards"][2]["name"]
    with open(os.path.join(cache, "shards", bad), "r+b") as fh:
        fh.truncate(100)
    assert main(["cache", "verify", cache]) == 1
    out = capsys.readouterr()
    assert f"BAD {bad}" in out.out and "1 problem(s)" in out.err


def test_cli_errors_are_one_line(tmp_path, tiny_teacher_dir, sst2_file, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    assert main(["cache", "verify", str(foreign)]) == 2
    assert "not a teacher cache" in capsys.readouterr().err
    cache = str(tmp_path / "c")
    args = ["score", "--input", sst2_file, "--task", "sst2", "--teacher", tiny_teacher_dir,
            "--cache", cache, "--max-length", "64", "--device", "cpu", "--limit", "3"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args[:-2] + ["--dtype", "int8"]) == 2
    assert "dtype: cache has 'float16', requested 'int8'" in capsys.readouterr().err
    assert main(args + ["--layers", "0,x"]) == 2
