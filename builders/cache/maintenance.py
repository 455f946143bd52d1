"""verify and merge: whole-cache checks and combining two caches of one spec."""
from __future__ import annotations

import json
import logging
import os
import shutil
from typing import TYPE_CHECKING, List, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.common.files import atomic_open

from .files import (ADVICE, check_regular, entry_path, name_problem, open_regular,
                         real_directory)
from .errors import CacheError, CorruptShardError, UnsafeEntryError
from .manifest import CORPUS_DIR, SHARD_DIR
from .shards import (SPEC_METADATA_KEY, ShardInfo, file_sha256, open_shard, shard_name_for,
                     shard_schema, table_counts)

if TYPE_CHECKING:
    from .store import TeacherCache

__all__ = ["verify_cache", "verify_corpora", "merge_into", "adopt_uncommitted"]

log = logging.getLogger(__name__)


def _spec_problem(pf, cache: "TeacherCache", expected) -> str:
    """What makes an open shard file foreign to `cache` (schema, embedded spec), or ''."""
    schema = pf.schema_arrow
    if not schema.remove_metadata().equals(expected):
        return f"schema differs from the spec's ({schema.names} vs {expected.names})"
    meta = (schema.metadata or {}).get(SPEC_METADATA_KEY)
    if meta is None or json.loads(meta) != cache.spec.to_dict():
        return "embedded spec differs from the manifest's"
    return ""


def _shard_problem(cache: "TeacherCache", info: ShardInfo, expected) -> Tuple[str, List[str]]:
    """(what is wrong with a committed shard or '', its keys): size, sha256 of every byte,
    Parquet footer, schema and embedded spec against the manifest's, row count."""
    import pyarrow as pa

    try:
        path = cache.shard_path(info.name)
        size = check_regular(path, what="shard").st_size
    except UnsafeEntryError as exc:
        return _unsafe(exc), []
    except FileNotFoundError:
        return "missing (listed in the manifest, file not found)", []
    if size != info.bytes:
        return (f"size {size} bytes, manifest says {info.bytes} "
                f"({'truncated' if size < info.bytes else 'grown'})"), []
    if file_sha256(path, what="shard") != info.sha256:
        return "checksum mismatch (content altered)", []
    try:
        pf = open_shard(path, info.name)
        problem = _spec_problem(pf, cache, expected)
        if problem:
            return problem, []
        if pf.metadata.num_rows != info.rows:
            return f"{pf.metadata.num_rows} rows, manifest says {info.rows}", []
        return "", pf.read(columns=["key"]).column("key").to_pylist()
    except (CorruptShardError, pa.ArrowException, OSError, ValueError) as exc:
        return f"unreadable ({exc})", []


def verify_cache(cache: "TeacherCache") -> List[str]:
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
        problem, keys = _shard_problem(cache, info, expected)
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


def _file_problem(cache: "TeacherCache", sub: str, entry: dict, *, what: str) -> str:
    """What is wrong with a corpus or vocabulary file the manifest lists, or ''."""
    try:
        path = entry_path(cache.path, sub, entry["file"], what=what)
        if file_sha256(path, what=what) != entry["sha256"]:
            return "checksum mismatch (content altered)"
    except UnsafeEntryError as exc:
        return f"is {_unsafe(exc)}"
    except FileNotFoundError:
        return "missing"
    return ""


def _shown(name) -> str:
    """A manifest's name as a problem line shows it: quoted when it is no plain file name."""
    return name if isinstance(name, str) and not name_problem(name) else repr(name)


def _unsafe(exc: UnsafeEntryError) -> str:
    return f"{exc.problem}; {ADVICE}"


def verify_corpora(cache: "TeacherCache", names: Sequence[str]) -> Tuple[List[str], int, int]:
    """(problems, shards checked, rows in them) for the shards that hold the keys of corpora
    `names` (mixup rows' parents included): each checked in full as `verify_cache` does, so a
    run reading those corpora meets no damaged byte, whichever columns it reads."""
    from .errors import CacheError

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
            problems.append(f"{_shown(info.name)}: {_unsafe(exc)}")
            continue
        except (CacheError, OSError) as exc:
            problems.append(f"{info.name}: unreadable ({exc})")
            continue
        if not holds:
            continue
        problem, _ = _shard_problem(cache, info, expected)
        checked, rows = checked + 1, rows + info.rows
        if problem:
            problems.append(f"{info.name}: {problem}")
    return problems, checked, rows


def _uncommitted_info(cache: "TeacherCache", name: str) -> ShardInfo:
    """The ShardInfo of an uncommitted shard file after checking it as verify does (schema,
    embedded spec, content-derived name, every page's CRC); ValueError says what is wrong."""
    import pyarrow as pa

    path = cache.shard_path(name)
    try:
        pf = open_shard(path, name)
    except UnsafeEntryError as exc:
        raise UsageError(f"it is {exc.problem}") from exc
    try:
        problem = _spec_problem(pf, cache, shard_schema(cache.spec))
        if problem:
            raise UsageError(f"{problem}: written under another cache spec")
        table = pf.read()  # reads every page: a damaged one fails its CRC here
    except (CorruptShardError, pa.ArrowException, OSError) as exc:
        raise UsageError(f"it cannot be read ({exc})") from exc
    keys = table.column("key").to_pylist()
    if shard_name_for(keys) != name:
        raise UsageError("its name is not the one its keys give")
    return ShardInfo(name=name, rows=table.num_rows, bytes=os.lstat(path).st_size,
                     sha256=file_sha256(path, what="shard"), keys=tuple(keys),
                     **table_counts(table))


def adopt_uncommitted(cache: "TeacherCache") -> List[ShardInfo]:
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
            found.append(_uncommitted_info(cache, name))
        except ValueError as exc:
            log.warning("left uncommitted shard %s alone: %s", name, exc)
    added = cache.commit(found) if found else []
    if added:
        log.info("adopted %d uncommitted shard(s), %d rows, left by an interrupted build",
                 len(added), sum(i.rows for i in added))
    return added


def merge_into(cache: "TeacherCache", other_path: str) -> List[ShardInfo]:
    """Copy into `cache` the shards and corpora of the cache at `other_path` (same spec).

    Shards are copied (temp + rename) then committed; keys already present are skipped. A corpus
    of the same name but different content is an error (rename one first)."""
    from .store import TeacherCache

    other = TeacherCache.open(other_path)
    cache.spec.check_compatible(other.spec, what="cache")
    problems = other.verify()
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


def _merge_vocabulary(cache: "TeacherCache", other: "TeacherCache") -> None:
    """Copy the other cache's recorded vocabulary when this one has none (same fingerprint)."""
    from .manifest import atomic_write_bytes, locked, read_manifest, write_manifest

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
