"""Corpus indexes and dead letters at scale: sorted parts written by many workers, merged once.

A build's workers write what its last step indexes (corpus rows, mixup rows, dead letters) as
*part* files, each sorted, into a staging directory inside the cache: a temp-named directory
(distiller.common.tempnames), so the one a killed build leaves is removed by ``distiller cache
clean`` and by the next build, like any temp file whose writer is gone. The committing step merges
the parts (a k-way merge holding one line per part; more than `FAN_IN` parts are merged in rounds)
straight into the corpus files and the dead-letter file, hashing as it writes: no process ever holds
a whole corpus, so the commit's memory does not grow with the rows.

The files written are the ones `TeacherCache.write_corpus` writes for the same rows: one
``json.dumps(corpus_item(row), sort_keys=True)`` line per row, sorted by id (a sort is stable and
parts are merged by the same key, so equal ids keep an order, as a list sort keeps it).
"""
from __future__ import annotations

import hashlib
import heapq
import json
import os
import uuid
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from distiller.common.files import atomic_open, replace_durably
from distiller.common.tempnames import temp_path

from .corpus_rows import check_corpus_name
from .manifest import CORPUS_DIR, atomic_write_bytes, locked, read_manifest, write_manifest

__all__ = ["PART_ROWS", "FAN_IN", "staging_dir", "write_part", "merged_lines", "part_sort_key",
           "CorpusFile", "install_corpora", "write_text_atomic"]

PART_ROWS = 4096   # lines per part file: what one worker sorts in memory at a time
FAN_IN = 128       # part files open at once while merging


def staging_dir(cache_path: str) -> str:
    """A new staging directory for one build's parts (created; temp-named after this process)."""
    path = temp_path(os.path.join(os.path.abspath(cache_path), "parts"))
    os.makedirs(path)
    return path


def part_sort_key(kind: str) -> Callable[[str], Any]:
    """Sort key of a part line: a corpus row's id; a dead letter's (source, row, reason)."""
    if kind == "dead":
        def dead_key(line: str) -> Tuple[str, int, str]:
            d = json.loads(line)
            return d["source"], d["row"], d["reason"]
        return dead_key
    return lambda line: json.loads(line)["id"]


def write_part(directory: str, kind: str, lines: Iterable[str]) -> Dict[str, Any]:
    """Sort `lines` (by `part_sort_key(kind)`) into a new part file; returns its descriptor
    {"kind", "file", "rows"} (the file name is relative to `directory`)."""
    key = part_sort_key(kind)
    ordered = sorted(lines, key=key)
    name = f"{kind}-{uuid.uuid4().hex}.jsonl"
    with open(os.path.join(directory, name), "w", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in ordered)
    return {"kind": kind, "file": name, "rows": len(ordered)}


def _read_lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield line.rstrip("\n")


def merged_lines(directory: str, files: Sequence[str], kind: str) -> Iterator[str]:
    """Every line of the sorted part `files` (in `directory`), in one sorted stream. With more
    than FAN_IN parts, groups are first merged into larger parts there (removed afterwards)."""
    key = part_sort_key(kind)
    files = sorted(files)  # a fixed merge order whatever order the descriptors arrived in
    made: List[str] = []
    try:
        while len(files) > FAN_IN:
            merged = []
            for start in range(0, len(files), FAN_IN):
                name = f"{kind}-merged-{uuid.uuid4().hex}.jsonl"
                group = [_read_lines(os.path.join(directory, f))
                         for f in files[start:start + FAN_IN]]
                with open(os.path.join(directory, name), "w", encoding="utf-8") as out:
                    out.writelines(line + "\n" for line in heapq.merge(*group, key=key))
                made.append(name)
                merged.append(name)
            files = merged
        yield from heapq.merge(*(_read_lines(os.path.join(directory, f)) for f in files),
                               key=key)
    finally:
        for name in made:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass


class CorpusFile:
    """A corpus file being written into `cache_path`/corpora under a temp name: lines are
    counted and hashed as they are written; `install_corpora` renames it into place."""

    def __init__(self, cache_path: str, name: str):
        check_corpus_name(name)
        self.name, self.file = name, f"{name}.jsonl"
        self.final = os.path.join(cache_path, CORPUS_DIR, self.file)
        self.tmp = temp_path(self.final)
        self._fh = open(self.tmp, "wb")
        self._hash = hashlib.sha256()
        self.rows = 0

    def write(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        self._fh.write(data)
        self._hash.update(data)
        self.rows += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass


def install_corpora(cache, files: Sequence[CorpusFile], *, task: Optional[Dict[str, Any]] = None,
                    labelled: bool = True,
                    questions: Optional[Sequence[Dict[str, Any]]] = None) -> None:
    """Rename the finished corpus `files` into place and record them in the manifest: under the
    cache lock, one atomic manifest replace for all of them (what `write_corpus` records).
    questions (question answering): the question rows written beside every corpus."""
    qdata = None if questions is None else "".join(
        json.dumps(q, sort_keys=True, ensure_ascii=False) + "\n" for q in questions
    ).encode("utf-8")
    with locked(cache.path):
        manifest = read_manifest(cache.path)
        for f in files:
            f.close()
            replace_durably(f.tmp, f.final)
            entry = {"file": f.file, "rows": f.rows, "sha256": f.sha256,
                     "labelled": bool(labelled)}
            if qdata is not None:
                qfile = f"{f.name}.questions.jsonl"
                atomic_write_bytes(os.path.join(cache.path, CORPUS_DIR, qfile), qdata)
                entry["questions"] = {"file": qfile, "rows": len(questions),
                                      "sha256": hashlib.sha256(qdata).hexdigest()}
            if task is not None:
                entry["task"] = dict(task)
            manifest.setdefault("corpora", {})[f.name] = entry
        write_manifest(cache.path, manifest)
    cache.refresh()


def write_text_atomic(path: str, lines: Iterable[str]) -> int:
    """Write `lines` (newline added) to the local file `path` through a temp name and a rename;
    returns the number of lines."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    count = 0
    with atomic_open(os.path.abspath(path), durable=False) as fh:
        for line in lines:
            fh.write(line + "\n")
            count += 1
    return count
