"""What killed or failed writers leave in a cache directory, and removing what nothing can use.

Temp names say who writes them (distiller.common.tempnames). Leftovers are of two kinds:
- temp files: removable when their writer no longer runs (same host, process gone). One from
  another host of a shared filesystem is never removed: its writer cannot be checked from here.
- uncommitted shards: whole shards (renamed into place) that no commit listed, because the build
  died or failed before its last step. A sound one holds finished teacher outputs and the next
  build commits it (maintenance.adopt_uncommitted); one that fails the checks (damaged, or
  written under another spec) can never be used and `clean` removes it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from typing import Dict, List

from distiller.common.tempnames import HOST, temp_owner, writer_alive

from .directory import CacheDirectory
from .files import real_directory
from .manifest import CORPUS_DIR, SHARD_DIR, locked
from .shard_checks import uncommitted_info

__all__ = ["TempFile", "temp_files", "Uncommitted",
           "uncommitted_shards", "leftover_warnings", "remove_dead_temp_files", "clean_cache"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TempFile:
    path: str        # absolute
    rel: str         # relative to the cache directory
    host: str
    pid: int
    alive: bool      # its writer may still run (or runs on another host)
    bytes: int

    def describe(self) -> str:
        who = (f"process {self.pid} still runs" if self.alive and self.host == HOST else
               f"written on host {self.host}, not checked from here" if self.alive else
               f"process {self.pid} is gone")
        what = "staging directory" if real_directory(self.path) else "temp file"
        return f"{what} {self.rel} ({self.bytes} bytes, {who})"


def _size(path: str) -> int:
    """Bytes of a file, or of the files in a directory (a build's staging directory of corpus
    parts, distiller.builders.cache.corpusparts); FileNotFoundError once its writer removed it."""
    if not real_directory(path):
        return os.lstat(path).st_size  # a link is measured, never followed
    total = 0
    for name in os.listdir(path):
        try:
            total += os.lstat(os.path.join(path, name)).st_size
        except FileNotFoundError:
            pass
    return total


def temp_files(cache_path: str) -> List[TempFile]:
    """Temp files in the cache directory, shards/ and corpora/ (and temp-named directories at
    the top: a build's staging parts), sorted by path."""
    out = []
    for sub in ("", SHARD_DIR, CORPUS_DIR):
        directory = os.path.join(cache_path, sub)
        if not real_directory(directory):
            continue  # (a link there is the cache's damage, which verify reports)
        for name in sorted(os.listdir(directory)):
            owner = temp_owner(name)
            path = os.path.join(directory, name)
            if owner is None or (sub and real_directory(path)):
                continue
            try:
                size = _size(path)
            except FileNotFoundError:  # renamed or removed by its writer meanwhile
                continue
            out.append(TempFile(path=path, rel=os.path.join(sub, name) if sub else name,
                                host=owner[0], pid=owner[1], alive=writer_alive(*owner),
                                bytes=size))
    return out


@dataclasses.dataclass(frozen=True)
class Uncommitted:
    name: str
    rows: int        # 0 when unusable
    problem: str     # '' when sound (the next build commits it)


def uncommitted_shards(cache: CacheDirectory) -> List[Uncommitted]:
    """Shard files the manifest does not list, each checked as `verify` checks a shard."""
    directory = os.path.join(cache.path, SHARD_DIR)
    committed = {info.name for info in cache.shards()}
    out = []
    for name in sorted(os.listdir(directory)) if real_directory(directory) else []:
        if name.startswith(".") or not name.endswith(".parquet") or name in committed:
            continue
        try:
            out.append(Uncommitted(name, uncommitted_info(cache, name).rows, ""))
        except ValueError as exc:
            out.append(Uncommitted(name, 0, _short(str(exc))))
    return out


def _short(problem: str) -> str:
    """The kind of problem of an unusable shard, without the reader's nested detail."""
    if problem.startswith("it cannot be read"):
        return "damaged: it cannot be read"
    if "another cache spec" in problem:
        return "written under another cache spec"
    return problem


def leftover_warnings(cache: CacheDirectory) -> List[str]:
    """One line per leftover, saying what it is and what will happen to it."""
    lines = []
    for tmp in temp_files(cache.path):
        fate = ("`distiller cache clean` or the next build removes it" if not tmp.alive
                else "left alone while its writer may run")
        lines.append(f"{tmp.describe()}: {fate}")
    for shard in uncommitted_shards(cache):
        if shard.problem:
            lines.append(f"uncommitted shard shards/{shard.name} is unusable ({shard.problem}): "
                         "`distiller cache clean` removes it")
        else:
            lines.append(f"uncommitted shard shards/{shard.name} ({shard.rows} row(s), left by a "
                         "build that did not finish): the next build commits it")
    return lines


def _unlink(path: str) -> bool:
    try:
        if real_directory(path):  # a link is removed, never what it points to
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_dead_temp_files(cache_path: str) -> List[TempFile]:
    """Remove, under the cache lock, the temp files whose writer is gone; returns them."""
    removed = []
    with locked(cache_path):
        for tmp in temp_files(cache_path):
            if not tmp.alive and _unlink(tmp.path):
                removed.append(tmp)
    if removed:
        log.info("removed %d temp file(s) left by writers that are gone (%d bytes) from %s",
                 len(removed), sum(t.bytes for t in removed), cache_path)
    return removed


def clean_cache(cache: CacheDirectory) -> Dict[str, list]:
    """Remove dead writers' temp files and unusable uncommitted shards (under the lock).

    Returns {"temp_files": removed TempFiles, "shards": removed Uncommitted, "kept": lines for
    what stays (live writers' temp files, sound uncommitted shards the next build commits)}."""
    removed_temp = remove_dead_temp_files(cache.path)
    removed_shards, sound = [], []
    with locked(cache.path):
        for shard in uncommitted_shards(cache):
            if not shard.problem:
                sound.append(shard)
            elif _unlink(cache.shard_path(shard.name)):
                removed_shards.append(shard)
    kept = [f"{t.describe()}: left alone" for t in temp_files(cache.path) if t.alive]
    if sound:
        kept.append(f"{len(sound)} uncommitted shard(s) holding {sum(s.rows for s in sound)} "
                    "row(s), whole and sound: the next build commits them")
    return {"temp_files": removed_temp, "shards": removed_shards, "kept": kept}
