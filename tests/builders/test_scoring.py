"""Local scoring into a cache (distiller.builders.teacher.scoring): the chunk plan and several
writer
threads."""
from __future__ import annotations

import numpy as np
import pytest

from distiller.builders import CacheReader, TeacherCache
from distiller.builders.teacher.scoring import plan_chunks, score_into_cache


@pytest.mark.parametrize("n,chunk", [(1, 4), (7, 4), (40, 8), (64, 1000)])
def test_chunks_are_runs_of_whole_batches_of_one_plan(tiny_teacher, sst2_rows, n, chunk):
    from distiller.builders.teacher.batching import plan_batches

    rows = sst2_rows[:n]
    toks, planned = plan_chunks(tiny_teacher, rows, chunk)
    chunks = [[i for b in c for i in b] for c in planned]     # the records of each chunk
    cfg = tiny_teacher.config
    plan = plan_batches([len(t[0]) for t in toks], max_tokens=cfg.max_tokens_per_batch,
                        max_batch_size=min(cfg.max_batch_size, chunk), window=cfg.sort_window)
    # every record once, in the order of the one batch plan over all of them, in its batches
    assert [i for c in chunks for i in c] == [i for b in plan for i in b]
    assert [b for c in planned for b in c] == plan
    starts = {b[0] for b in plan}
    assert all(c[0] in starts for c in chunks)           # a chunk starts where a batch starts
    # full chunks hold at least `chunk` records; the last chunk's batches are spread over at
    # most 4 short shards
    sizes = [len(c) for c in chunks]
    full = [x for x in sizes if x >= chunk]
    assert len(sizes) - len(full) <= 4 or chunk > n
    with pytest.raises(ValueError, match="chunk"):
        plan_chunks(tiny_teacher, rows, 0)


def test_a_chunk_is_scored_as_its_planned_batches(tiny_teacher, sst2_rows):
    from distiller.builders.teacher.scoring import score_chunk

    rows = sst2_rows[:40]
    toks, planned = plan_chunks(tiny_teacher, rows, 8)
    keys = [tiny_teacher.record_key(r) for r in rows]
    calls = tiny_teacher.calls
    outputs = [o for c in planned for o in score_chunk(tiny_teacher, rows, toks, keys, c, None)]
    assert tiny_teacher.calls - calls == sum(len(c) for c in planned)   # one forward per batch
    assert [o["key"] for o in outputs] == [keys[i] for c in planned for b in c for i in b]
    with pytest.raises(ValueError, match="exactly once"):
        tiny_teacher.score(rows[:3], batches=[[0, 1], [1]])


def test_several_writer_threads_commit_the_same_rows(tmp_path, tiny_teacher, sst2_rows):
    rows = sst2_rows[:25] + sst2_rows[:5]
    single = TeacherCache.create(str(tmp_path / "w1"), tiny_teacher.spec())
    score_into_cache(tiny_teacher, single, rows, chunk=3)
    many = TeacherCache.create(str(tmp_path / "w3"), tiny_teacher.spec())
    res = score_into_cache(tiny_teacher, many, rows, chunk=3, writers=3)
    assert res["scored"] == 25 and res["rows_committed"] == 25 and res["duplicates"] == 5
    one, three = CacheReader(single.path), CacheReader(many.path)
    assert sorted(one.keys()) == sorted(three.keys()) and many.verify() == []
    for key in one.keys():      # byte for byte, whatever order the shards committed in
        a, b = one.get(key), three.get(key)
        assert np.array_equal(a["logits"], b["logits"])
        assert a["hidden"].keys() == b["hidden"].keys()
        assert all(np.array_equal(a["hidden"][k], b["hidden"][k]) for k in a["hidden"])
    with pytest.raises(ValueError, match="writers"):
        score_into_cache(tiny_teacher, many, rows, writers=0)


def test_score_into_cache_overlaps_and_surfaces_write_errors(tmp_path, tiny_teacher, sst2_rows,
                                                            monkeypatch):
    from distiller.builders.teacher.scoring import plan_chunks, score_into_cache

    cache = TeacherCache.create(str(tmp_path / "s"), tiny_teacher.spec())
    rows = sst2_rows[:25] + sst2_rows[:5]
    before = tiny_teacher.examples_scored
    res = score_into_cache(tiny_teacher, cache, rows, chunk=10)
    shards = len(plan_chunks(tiny_teacher, sst2_rows[:25], 10)[1])  # a shard per chunk
    assert shards >= 2 and res == {"scored": 25, "reused": 0, "duplicates": 5,
                                   "shards": shards, "rows_committed": 25}
    assert tiny_teacher.examples_scored - before == 25
    again = score_into_cache(tiny_teacher, cache, rows, chunk=10)
    assert again["scored"] == 0 and again["reused"] == 30

    calls = []
    real = TeacherCache.write_shard

    def flaky(self, outputs, name=None):
        calls.append(len(outputs))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(self, outputs, name)

    monkeypatch.setattr(TeacherCache, "write_shard", flaky)
    other = TeacherCache.create(str(tmp_path / "f"), tiny_teacher.spec())
    with pytest.raises(OSError, match="disk full"):
        score_into_cache(tiny_teacher, other, sst2_rows[:30], chunk=10)
    first = sum(len(b) for b in plan_chunks(tiny_teacher, sst2_rows[:30], 10)[1][0])
    assert len(TeacherCache.open(other.path)) == first and other.verify() == []
