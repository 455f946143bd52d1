"""Corpus files merged from sorted parts equal the files write_corpus writes for the same rows;
more parts than can be open at once are merged in rounds; a dead build's staging is removed."""
from __future__ import annotations

import json
import os
import random

from distiller.builders.cache import corpusparts
from distiller.builders.cache.store import TeacherCache, corpus_item
from distiller.builders.cache.corpusparts import (CorpusFile, install_corpora, merged_lines,
staging_dir,
                                            write_part)
from distiller.builders.cache.leftovers import remove_dead_temp_files, temp_files

from .synthetic import make_outputs, make_spec


def test_parts_merged_in_rounds_give_the_file_write_corpus_gives(tmp_path, monkeypatch):
    monkeypatch.setattr(corpusparts, "FAN_IN", 3)  # 10 parts: two rounds of merging
    keys = [f"k{i:03d}" for i in range(50)]
    cache = TeacherCache.create(str(tmp_path / "cache"), make_spec())
    cache.add(make_outputs(keys))
    rows = [{"id": f"f:{i}", "key": k, "label": i % 2, "parent_id": None if i % 3 else "f:0",
             "chain": "original" if i % 3 else "eda", "copy": i % 3} for i, k in enumerate(keys)]
    random.Random(0).shuffle(rows)
    staging = staging_dir(cache.path)
    lines = [json.dumps(corpus_item(r), sort_keys=True) for r in rows]
    files = [write_part(staging, "rows", lines[i:i + 5])["file"] for i in range(0, 50, 5)]
    out = CorpusFile(cache.path, "merged")
    for line in merged_lines(staging, files, "rows"):
        out.write(line)
    install_corpora(cache, [out], task={"name": "t"})
    cache.write_corpus("plain", sorted(rows, key=lambda r: r["id"]), task={"name": "t"})
    entries = TeacherCache.open(cache.path).manifest["corpora"]
    assert entries["merged"]["sha256"] == entries["plain"]["sha256"]
    assert entries["merged"]["rows"] == 50 and entries["merged"]["task"] == {"name": "t"}
    assert sorted(os.listdir(staging)) == sorted(files)  # the rounds' files are gone
    assert TeacherCache.open(cache.path).verify() == []


def test_a_dead_builds_staging_directory_is_a_removable_leftover(tmp_path):
    cache = TeacherCache.create(str(tmp_path / "cache"), make_spec())
    staging = staging_dir(cache.path)
    write_part(staging, "dead", [json.dumps({"source": "f", "row": 1, "reason": "x"})])
    dead = os.path.join(cache.path, os.path.basename(staging).replace(f"-{os.getpid()}-",
                                                                       "-999999999-"))
    os.rename(staging, dead)  # as if the build's driver (pid 999999999) had died
    found = {t.rel: t for t in temp_files(cache.path)}
    assert found[os.path.basename(dead)].alive is False and found[os.path.basename(dead)].bytes
    assert [t.rel for t in remove_dead_temp_files(cache.path)] == [os.path.basename(dead)]
    assert not os.path.exists(dead)
