"""distiller.builders.cache.held_keys: the committed shards and their keys, as a distributed build
reads them."""
from distiller.builders import TeacherCache
from distiller.builders.cache.held_keys import committed_shards, shard_keys


def test_no_cache_yet_has_no_shards(tmp_path):
    assert committed_shards(str(tmp_path / "nothing-here")) == []


def test_every_committed_key_once_across_shards(tmp_path, tiny_teacher, sst2_rows):
    path = str(tmp_path / "c")
    cache = TeacherCache.create(path, tiny_teacher.spec())
    cache.add(tiny_teacher.score(sst2_rows[:25]))
    cache.add(tiny_teacher.score(sst2_rows[20:40]))       # overlaps: 5 keys already held
    names = committed_shards(path)
    assert len(names) >= 2
    keys = [k for name in names for k in shard_keys(path, name)]
    expected = {tiny_teacher.cache_key(r["text_a"], r["text_b"]) for r in sst2_rows[:40]}
    assert sorted(keys) == sorted(expected)
    assert cache.missing(keys) == []
