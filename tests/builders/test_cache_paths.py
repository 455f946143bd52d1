"""A cache received from someone else names only regular files inside itself (issue 27): a
manifest naming a path out of the cache, a symbolic link, a FIFO or a linked shards/ directory is
refused as damaged by verify, the reader, merge and clean, and never written through or hung on.
Each crafted cache is a real small cache with its manifest or files altered in the test."""
from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from distiller.builders import CacheReader, CorruptShardError, TeacherCache, UnsafeEntryError
from distiller.builders.cache.files import name_problem
from distiller.builders.cache.held_keys import shard_keys
from distiller.builders.cache.vocab import cache_vocabulary
from distiller.cli import main

from .synthetic import make_outputs, make_spec


def _cache(path, prefix="a"):
    """A cache of two shards, a corpus (`corpus-PREFIX`) and a vocabulary file, at `path`."""
    cache = TeacherCache.create(str(path), make_spec())
    cache.add(make_outputs([f"{prefix}{i}" for i in range(5)]))
    cache.add(make_outputs([f"{prefix}{i}" for i in range(5, 9)]))
    cache.write_corpus(f"corpus-{prefix}", [{"id": str(i), "key": f"{prefix}{i}", "label": i % 2}
                                      for i in range(9)])
    data = json.dumps({"size": 2, "tokens": ["[PAD]", "x"]}).encode()
    (path / "vocab.json").write_bytes(data)
    _edit(cache, lambda m: m.update(vocab={"file": "vocab.json", "size": 2,
                                           "sha256": hashlib.sha256(data).hexdigest()}))
    return cache


def _edit(cache, change):
    path = os.path.join(cache.path, "manifest.json")
    with open(path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    change(manifest)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    cache.refresh()


def _rename_shard(cache, new_name, index=0):
    """Name shard `index` `new_name` in the manifest (its file stays where it is)."""
    def change(manifest):
        manifest["shards"][index]["name"] = new_name
    old = cache.shards()[index].name
    _edit(cache, change)
    return os.path.join(cache.path, "shards", old)


def _verify_cli(path, capsys):
    code = main(["cache", "verify", str(path)])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("name,problem", [
    ("shard-0a.parquet", ""), ("vocab.json", ""),
    ("../../victim.txt", "leading out"), ("/etc/hostname", "absolute"),
    ("../other/shards/x.parquet", "leading out"), ("shards/x.parquet", "separator"),
    ("..\\x", "leading out"), ("x\0y", "control character"), ("x\ny", "control character"),
    ("..", "leading out"), (".lock", "hidden"), ("", "empty"), (["x"], "not a file name"),
])
def test_only_plain_names_pass(name, problem):
    found = name_problem(name)
    assert (problem in found and found) if problem else found == ""


def test_merge_refuses_a_shard_named_out_of_the_cache_and_writes_nothing(tmp_path, capsys):
    """The source's manifest names `../../victim.txt`, a sound shard placed beside the received
    cache: merge must neither copy it nor write to the destination's `../../victim.txt`."""
    (tmp_path / "received").mkdir()
    (tmp_path / "home").mkdir()
    src = _cache(tmp_path / "received" / "src", prefix="s")
    dst = _cache(tmp_path / "home" / "dst")
    victim = tmp_path / "home" / "victim.txt"
    victim.write_text("precious\n")
    shutil.copy(_rename_shard(src, "../../victim.txt"), tmp_path / "received" / "victim.txt")
    before = sorted(dst.keys())
    code = main(["cache", "merge", dst.path, src.path])
    err = capsys.readouterr().err
    assert victim.read_text() == "precious\n"
    assert code != 0 and "'../../victim.txt'" in err and "leading out of the cache" in err
    assert err.count("\n") == 1 and "do not use it" in err
    assert sorted(TeacherCache.open(dst.path).keys()) == before
    with pytest.raises(CorruptShardError, match="refusing to merge .* '../../victim.txt'"):
        dst.merge(src.path)
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("outside", ["absolute", "relative"])
def test_a_shard_named_outside_is_refused_by_verify_and_the_reader(tmp_path, capsys, outside):
    """A sound shard of another cache, named by an absolute path or `../../other/shards/x`: the
    readers would serve its rows from outside the cache."""
    cache = _cache(tmp_path / "cache")
    other = _cache(tmp_path / "other", prefix="o")
    shard = other.shards()[0]
    name = (other.shard_path(shard.name) if outside == "absolute"
            else f"../../other/shards/{shard.name}")

    def change(manifest):
        manifest["shards"][0].update(shard.to_manifest(), name=name)
    _edit(cache, change)
    problems = cache.verify()
    assert len(problems) == 1 and problems[0].startswith(repr(name))
    assert ("absolute path" if outside == "absolute" else "leading out") in problems[0]
    code, out = _verify_cli(cache.path, capsys)
    assert code == 1 and f"BAD {name!r}" in out
    with pytest.raises(UnsafeEntryError, match=f"names shard {name!r}"):
        CacheReader(cache.path)
    with pytest.raises(UnsafeEntryError):
        shard_keys(cache.path, name)
    with pytest.raises(UnsafeEntryError):
        TeacherCache.open(cache.path).keys()
    assert cache.verify_corpora(["corpus-a"])[0][0].startswith(repr(name))


def test_a_shard_that_is_a_symbolic_link_is_refused(tmp_path, capsys):
    cache = _cache(tmp_path / "cache")
    dst = _cache(tmp_path / "dst", prefix="d")
    info = cache.shards()[0]
    real = tmp_path / "elsewhere.parquet"
    shutil.move(cache.shard_path(info.name), real)
    os.symlink(real, cache.shard_path(info.name))  # same bytes: only the link is wrong
    problems = cache.verify()
    assert len(problems) == 1 and problems[0].startswith(info.name)
    assert "a symbolic link, not a regular file" in problems[0]
    with pytest.raises(UnsafeEntryError, match="symbolic link"):
        CacheReader(cache.path)
    with pytest.raises(CorruptShardError, match="symbolic link"):
        dst.merge(cache.path)
    assert sorted(dst.keys()) == [f"d{i}" for i in range(9)]


@pytest.mark.timeout(60)
def test_a_fifo_in_the_cache_is_refused_without_blocking(tmp_path, capsys):
    """A FIFO where a committed shard is, and one named like an uncommitted shard: verify,
    the reader and clean look at them without opening them (an open would wait for a writer)."""
    cache = _cache(tmp_path / "cache")
    info = cache.shards()[0]
    os.unlink(cache.shard_path(info.name))
    os.mkfifo(cache.shard_path(info.name))
    stray = cache.shard_path("shard-000000000000000000000000.parquet")
    os.mkfifo(stray)
    code, out = _verify_cli(cache.path, capsys)
    assert code == 1 and f"BAD {info.name}: a FIFO (named pipe), not a regular file" in out
    assert ("uncommitted shard shards/shard-000000000000000000000000.parquet is unusable (it is "
            "a FIFO (named pipe), not a regular file)") in out
    with pytest.raises(UnsafeEntryError, match="FIFO"):
        CacheReader(cache.path)
    assert cache.adopt_uncommitted() == []
    assert main(["cache", "clean", cache.path]) == 0
    assert "removed uncommitted shard shards/shard-000000000000000000000000.parquet" in \
        capsys.readouterr().out
    assert not os.path.lexists(stray) and os.path.lexists(cache.shard_path(info.name))


@pytest.mark.timeout(60)
def test_a_manifest_that_is_a_fifo_does_not_block(tmp_path):
    cache = _cache(tmp_path / "cache")
    os.unlink(os.path.join(cache.path, "manifest.json"))
    os.mkfifo(os.path.join(cache.path, "manifest.json"))
    with pytest.raises(UnsafeEntryError, match="FIFO"):
        TeacherCache.open(cache.path)


def test_corpus_and_vocabulary_names_are_confined(tmp_path, capsys):
    cache = _cache(tmp_path / "cache")
    dst = _cache(tmp_path / "dst", prefix="d")
    (tmp_path / "outside.jsonl").write_bytes(
        open(os.path.join(cache.path, "corpora", "corpus-a.jsonl"), "rb").read())

    def change(manifest):
        manifest["corpora"]["corpus-a"]["file"] = "../../outside.jsonl"
        manifest["vocab"]["file"] = "/etc/hostname"
    _edit(cache, change)
    problems = cache.verify()
    assert problems[0].startswith("vocabulary: '/etc/hostname' is an absolute path")
    assert problems[1].startswith("corpus corpus-a: '../../outside.jsonl' is a path leading")
    with pytest.raises(UnsafeEntryError, match=r"names corpus 'corpus-a' file"):
        cache.read_corpus("corpus-a")
    with pytest.raises(UnsafeEntryError, match="names vocabulary file '/etc/hostname'"):
        cache_vocabulary(cache.path)
    with pytest.raises(CorruptShardError, match="fails verify"):
        dst.merge(cache.path)
    assert dst.corpora() == ["corpus-d"]


def test_a_corpus_file_that_is_a_symbolic_link_is_refused(tmp_path):
    cache = _cache(tmp_path / "cache")
    path = os.path.join(cache.path, "corpora", "corpus-a.jsonl")
    shutil.move(path, tmp_path / "rows.jsonl")
    os.symlink(tmp_path / "rows.jsonl", path)
    assert "a symbolic link, not a regular file" in cache.verify()[0]
    with pytest.raises(UnsafeEntryError, match="symbolic link"):
        cache.read_corpus("corpus-a")


def test_a_linked_shards_directory_is_refused_and_clean_never_reaches_through_it(tmp_path):
    """shards/ a link to another directory takes every shard name out of the cache: the readers
    refuse it, and clean removes nothing there (it would delete another directory's files)."""
    cache = _cache(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere"
    shutil.move(os.path.join(cache.path, "shards"), elsewhere)
    os.symlink(elsewhere, os.path.join(cache.path, "shards"))
    (elsewhere / "shard-000000000000000000000000.parquet").write_bytes(b"not a shard")
    (elsewhere / ".x.parquet.tmp-1").write_bytes(b"temp-named")
    problems = cache.verify()
    assert len(problems) == 2 and all("inside shards/, which is a symbolic link" in p
                                      for p in problems)
    with pytest.raises(UnsafeEntryError, match="shards/"):
        CacheReader(cache.path)
    cache.clean()
    assert sorted(os.listdir(elsewhere))[:2] == [".x.parquet.tmp-1",
                                                 "shard-000000000000000000000000.parquet"]
