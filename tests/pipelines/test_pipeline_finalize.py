"""The finalize in parts end to end: a build on worker processes writes, through part files merged
at commit, the corpus files and the dead-letter file that gathering every row on one worker and
sorting it wrote (computed here independently, in this process, from the reader and the
teacher's keys)."""
import json
import os
import random

import pytest

from distiller.builders.cache.store import TeacherCache, corpus_item
from distiller.cli import main
from distiller.pipelines.parts import corpus_row
from .pipeline_testlib import glue_path

pytestmark = pytest.mark.slow

BAD = ["too many\tfields\there", "\t1", "no label here\t", "strange label\t7"]


def _inputs(directory, rows_per_file=(160, 140)):
    """Two SST-2 style files whose good rows are interleaved with bad ones (every 23rd row), so
    that dead letters come from several sources and splits."""
    with open(glue_path("SST-2"), encoding="utf-8") as fh:
        header, body = fh.readline(), [line for _, line in zip(range(sum(rows_per_file)), fh)]
    os.makedirs(directory)
    start = 0
    for n, name in zip(rows_per_file, ("a.tsv", "b.tsv")):
        lines = []
        for i, line in enumerate(body[start:start + n]):
            if i % 23 == 5:
                lines.append(BAD[(i // 23) % len(BAD)] + "\n")
            lines.append(line)
        start += n
        with open(os.path.join(directory, name), "w", encoding="utf-8") as out:
            out.write(header + "".join(lines))
    return os.path.join(directory, "*.tsv")


def _lines(rows):
    return "".join(json.dumps(corpus_item(r), sort_keys=True) + "\n" for r in rows)


def test_a_build_on_worker_processes_writes_the_corpora_and_dead_letters_of_one_gather(
        tmp_path, tiny_teacher, capsys):
    from distiller.builders.teacher.model import Teacher, TeacherConfig, as_text_pair
    from distiller.taskdata.reader import read_records
    from distiller.taskdata.records import DeadLetter
    from distiller.taskdata.resolve import resolve_task

    data = _inputs(str(tmp_path / "in"))
    cache, dead_file = str(tmp_path / "cache"), str(tmp_path / "dead.jsonl")
    rc = main(["build", "--no-progress", "--json", "--input", data, "--task", "sst2",
               "--teacher", tiny_teacher, "--cache", cache, "--dead-letters", dead_file,
               "--augment", "eda_swap:0.3,copies=2", "--unit-size", "64", "--workers", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    summary = json.loads(out.strip().splitlines()[-1])
    # the workers wrote several parts, which the commit merged
    assert summary["part_files"]["rows"] > 1 and summary["part_files"]["dead"] >= 1

    # the reference: every row read and keyed here, gathered and sorted as one list
    teacher = Teacher(TeacherConfig(model=tiny_teacher, device="cpu")).load()
    read = list(read_records(data, resolve_task("sst2")))
    good = [r for r in read if not isinstance(r, DeadLetter)]
    dead = [d for d in read if isinstance(d, DeadLetter)]
    assert len(good) == 300 and len(dead) == 13
    originals = sorted((corpus_row(dict(r, key=teacher.cache_key(*as_text_pair(r))))
                        for r in good), key=lambda r: r["id"])
    opened = TeacherCache.open(cache)
    assert opened.verify() == []
    names = opened.corpora()
    with open(os.path.join(cache, "corpora", f"{names[0]}.jsonl"), encoding="utf-8") as fh:
        assert fh.read() == _lines(originals)
    # originals and copies: what one sorted list of the same rows gives, byte for byte
    augmented = opened.read_corpus(names[1])
    shuffled = list(augmented)
    random.Random(0).shuffle(shuffled)
    with open(os.path.join(cache, "corpora", f"{names[1]}.jsonl"), encoding="utf-8") as fh:
        assert fh.read() == _lines(sorted(shuffled, key=lambda r: r["id"]))
    assert [r for r in augmented if r["parent_id"] is None] == originals
    assert len(augmented) - len(originals) == summary["augmented_copies"] > 0
    assert {r["parent_id"] for r in augmented} - {None} <= {r["id"] for r in originals}
    # every key of both corpora was committed
    assert not opened.missing(r["key"] for r in augmented)

    expected_dead = sorted((d.to_dict() for d in dead),
                           key=lambda d: (d["source"], d["row"], d["reason"]))
    with open(dead_file, encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == expected_dead
    assert summary["dead_letters"] == 13 and summary["records_read"] == 300
    # the staging directory is gone
    assert [n for n in os.listdir(cache) if ".tmp-" in n] == []
