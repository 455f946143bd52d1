"""Local scoring into a cache (builders.scoring): the chunk plan and several writer threads."""
from __future__ import annotations

import numpy as np
import pytest

from builders import CacheReader, TeacherCache
from builders.scoring import chunk_bounds, score_into_cache


@pytest.mark.parametrize("n,chunk", [(0, 4), (1, 4), (7, 4), (8, 4), (25, 10), (2050, 512)])
def test_chunks_cover_every_row_once_and_end_small(n, chunk):
    bounds = chunk_bounds(n, chunk)
    assert [i for s, e in bounds for i in range(s, e)] == list(range(n))
    assert all(0 < e - s <= chunk for s, e in bounds)
    if n > chunk:
        last_full = n - (n - 1) % chunk - 1          # the start of the last chunk of `chunk`
        assert all(e - s == chunk for s, e in bounds if e <= last_full)
        assert bounds[-1][1] - bounds[-1][0] <= -(-chunk // 4)


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
