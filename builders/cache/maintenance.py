"""verify and merge: whole-cache checks and combining two caches of one spec."""
from __future__ import annotations

import logging
import os
import shutil
from typing import List, Sequence, Tuple

from distiller.common.files import atomic_open

from .directory import CacheDirectory
from .errors import CacheError, CorruptShardError, UnsafeEntryError
from .files import entry_path, name_problem, open_regular, real_directory
from .manifest import (CORPUS_DIR, SHARD_DIR, atomic_write_bytes, locked, read_manifest,
                       write_manifest)
from .shard_checks import shard_problem, uncommitted_info, unsafe_problem
from .shards import ShardInfo, file_sha256, shard_schema

__all__ = ["verify_cache", "verify_corpora", "merge_into", "adopt_uncommitted"]

log = logging.getLogger(__name__)


def verify_cache(cache: CacheDirectory) -> List[str]:
    """Problems found, one line each naming the shard or corpus ([] when the cache is sound).

    Recomputes every shard's sha256 and size, reads its Parquet footer, compares its schema and
    embedded spec with the manifest's, checks row counts and that no key is stored twice.
    """
    manifest = cache.refresh()
    problems: List[str] = []
    expected = shard_schema(cache.spec)
    seen: dict = {}
    for entry in manifest["shards"]:
        info = ShardInfo.from_manifest(entry)
        problem, keys = shard_problem(cache, info, expected)
        if problem:
            problems.append(f"{_shown(info.name)}: {problem}")
            continue
        for k in keys:
            if k in seen:
                problems.append(f"{info.name}: key {k} also stored in {seen[k]}")
                break
            seen[k] = info.name
    files = [("vocabulary", "", manifest["vocab"])] if manifest.get("vocab") else []
    for name, corpus in manifest.get("corpora", {}).items():
        # a question-answering corpus also has its question rows (contexts, offsets, answers)
        for entry in [corpus] + ([corpus["questions"]] if corpus.get("questions") else []):
            files.append((f"corpus {name}", CORPUS_DIR, entry))
    for label, sub, entry in files:
        problem = _file_problem(cache, sub, entry, what=f"{label} file")
        if problem:
            problems.append(f"{label}: {_shown(entry['file'])} {problem}")
    return problems


def _file_problem(cache: CacheDirectory, sub: str, entry: dict, *, what: str) -> str:
    """What is wrong with a corpus or vocabulary file the manifest lists, or ''."""
    try:
        path = entry_path(cache.path, sub, entry["file"], what=what)
        if file_sha256(path, what=what) != entry["sha256"]:
            return "checksum mismatch (content altered)"
    except UnsafeEntryError as exc:
        return f"is {unsafe_problem(exc)}"
    except FileNotFoundError:
        return "missing"
    return ""


def _shown(name) -> str:
    """A manifest's name as a problem line shows it: quoted when it is no plain file name."""
    return name if isinstance(name, str) and not name_problem(name) else repr(name)


def verify_corpora(cache: CacheDirectory, names: Sequence[str]) -> Tuple[List[str], int, int]:
    """(problems, shards checked, rows in them) for the shards that hold the keys of corpora
    `names` (mixup rows' parents included): each checked in full as `verify_cache` does, so a
    run reading those corpora meets no damaged byte, whichever columns it reads."""
    wanted: set = set()
    for name in names:
        for row in cache.read_corpus(name):
            wanted.update(k for k in (row["key"], row.get("mix_key_a"), row.get("mix_key_b"))
                          if k)
    expected = shard_schema(cache.spec)
    problems: List[str] = []
    checked = rows = 0
    for info in cache.shards():
        try:
            holds = any(k in wanted for k in cache._keys_of(info))
        except UnsafeEntryError as exc:
            problems.append(f"{_shown(info.name)}: {unsafe_problem(exc)}")
            continue
        except (CacheError, OSError) as exc:
            problems.append(f"{info.name}: unreadable ({exc})")
            continue
        if not holds:
            continue
        problem, _ = shard_problem(cache, info, expected)
        checked, rows = checked + 1, rows + info.rows
        if problem:
            problems.append(f"{info.name}: {problem}")
    return problems, checked, rows


def adopt_uncommitted(cache: CacheDirectory) -> List[ShardInfo]:
    """Commit the complete shards that an interrupted build wrote but never committed.

    A shard file appears only whole (temp file, fsync, rename to its content-derived name), so
    one that is present but not in the manifest holds finished teacher outputs: a build killed
    before its last step leaves them behind, and the next build would score those texts again.
    Each is checked like `verify` checks a committed one; one that fails is left alone (and
    said in the log). A concurrent build's not yet committed shard may be adopted too: its own
    commit then finds it committed and skips it. Returns the shards added."""
    directory = os.path.join(cache.path, SHARD_DIR)
    committed = {info.name for info in cache.shards()}
    found = []
    for name in sorted(os.listdir(directory)) if real_directory(directory) else []:
        if name.startswith(".") or not name.endswith(".parquet") or name in committed:
            continue  # hidden names are a writer's temp files
        try:
            found.append(uncommitted_info(cache, name))
        except ValueError as exc:
            log.warning("left uncommitted shard %s alone: %s", name, exc)
    added = cache.commit(found) if found else []
    if added:
        log.info("adopted %d uncommitted shard(s), %d rows, left by an interrupted build",
                 len(added), sum(i.rows for i in added))
    return added


def merge_into(cache: CacheDirectory, other_path: str) -> List[ShardInfo]:
    """Copy into `cache` the shards and corpora of the cache at `other_path` (same spec).

    Shards are copied (temp + rename) then committed; keys already present are skipped. A corpus
    of the same name but different content is an error (rename one first)."""
    other = CacheDirectory.open(other_path)
    cache.spec.check_compatible(other.spec, what="cache")
    problems = verify_cache(other)
    if problems:
        raise CorruptShardError(f"refusing to merge from {other_path!r}: it fails verify: "
                                + "; ".join(problems))
    infos = []
    present = set(cache.keys())
    for info in other.shards():
        keys = other._keys_of(info)
        if all(k in present for k in keys):
            continue
        dst = cache.shard_path(info.name)  # names checked: no write lands outside `cache`
        if not os.path.lexists(dst) or file_sha256(dst, what="shard") != info.sha256:
            _copy_regular(other.shard_path(info.name), dst)
        infos.append(ShardInfo(name=info.name, rows=info.rows, bytes=info.bytes,
                               sha256=info.sha256, tokens=info.tokens, truncated=info.truncated,
                               keys=tuple(keys), positions=info.positions))
    added = cache.commit(infos)
    _merge_vocabulary(cache, other)
    mine = cache.refresh().get("corpora", {})
    for name, entry in other.manifest.get("corpora", {}).items():
        if name in mine:
            if mine[name]["sha256"] != entry["sha256"]:
                raise CacheError(f"both caches hold a corpus {name!r} with different rows: "
                                 "rename one before merging")
            continue
        cache.write_corpus(name, other.read_corpus(name), task=entry.get("task"),
                           labelled=entry.get("labelled", True),
                           questions=other.read_questions(name))
    log.info("merged %s into %s: %d shard(s) added", other_path, cache.path, len(added))
    return added


def _copy_regular(src: str, dst: str) -> None:
    """Copy the regular file `src` to `dst` through a temp name and a rename (the rename
    replaces whatever `dst` is, a link included, never writing through it)."""
    with open_regular(src, what="shard") as fin, atomic_open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _merge_vocabulary(cache: CacheDirectory, other: CacheDirectory) -> None:
    """Copy the other cache's recorded vocabulary when this one has none (same fingerprint)."""
    entry = other.manifest.get("vocab")
    if not entry or cache.refresh().get("vocab"):
        return
    what = "vocabulary file"
    with open_regular(entry_path(other.path, "", entry["file"], what=what), what=what) as fh:
        data = fh.read()
    with locked(cache.path):
        manifest = read_manifest(cache.path)
        if not manifest.get("vocab"):
            atomic_write_bytes(entry_path(cache.path, "", entry["file"], what=what), data)
            manifest["vocab"] = dict(entry)
            write_manifest(cache.path, manifest)
    cache.refresh()
