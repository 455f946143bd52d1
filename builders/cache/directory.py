"""The cache directory: Parquet shards of teacher outputs plus an atomic manifest
(`CacheDirectory`, the core of distiller.builders.cache.store.TeacherCache).

Layout::

    cache/manifest.json      spec, schema version, committed shards (rows, bytes, sha256), corpora,
                             stats -- replaced atomically, last (it is the completion marker)
    cache/shards/*.parquet   committed shards (plus, invisibly, uncommitted ones)
    cache/corpora/*.jsonl    corpus indexes: which keys (and labels) make a training set; a
                             question-answering corpus has one row per context window and a
                             NAME.questions.jsonl beside it (contexts, offsets, gold answers)
    cache/.lock              fcntl lock serialising commits

A shard is visible only once the manifest lists it, so a killed writer leaves the cache as it was
plus whole committed shards. Commits re-read the manifest under the lock and merge, so concurrent
writers never lose each other's shards; keys already present are skipped (stored once).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from distiller.taskdata.task import Task

from .corpus_rows import check_corpus_name, clean_rows
from .files import check_regular, entry_path, open_regular
from .errors import CacheError, CorruptShardError, ForeignDirectoryError
from .manifest import (CORPUS_DIR, MANIFEST, SHARD_DIR, atomic_write_bytes, locked,
                       new_manifest, read_manifest, write_manifest)
from .shards import ShardInfo, read_shard_table, write_shard_file, write_table_file
from .spec import CacheSpec
from .stats import manifest_stats, token_stats

__all__ = ["CacheDirectory"]

log = logging.getLogger(__name__)


class CacheDirectory:
    """Handle on one cache directory: shards, keys, commits and corpora. Cheap to construct;
    methods re-read the manifest as needed. `TeacherCache` (store.py) adds the checks and the
    maintenance that work on a whole cache."""

    def __init__(self, path: str, manifest: Dict[str, Any]) -> None:
        self.path = os.path.abspath(path)
        self._manifest = manifest
        self.spec = CacheSpec.from_dict(manifest["spec"])
        self._shard_keys: Dict[str, List[str]] = {}   # shard name -> keys (memo; shards immutable)

    # ------------------------------------------------------------------ open / create
    @classmethod
    def create(cls, path: str, spec: CacheSpec) -> "CacheDirectory":
        """A new empty cache; ForeignDirectoryError if `path` holds anything but an empty dir."""
        if os.path.exists(os.path.join(path, MANIFEST)):
            raise CacheError(f"a teacher cache already exists at {path!r}: use TeacherCache.open "
                             "or open_or_create")
        if os.path.isdir(path) and _foreign_entries(path):
            raise ForeignDirectoryError(
                f"{path!r} is not empty and not a teacher cache ({sorted(os.listdir(path))[:5]}"
                "...): refusing to write into it; pick a new or empty directory")
        os.makedirs(os.path.join(path, SHARD_DIR), exist_ok=True)
        os.makedirs(os.path.join(path, CORPUS_DIR), exist_ok=True)
        with locked(path):
            if os.path.exists(os.path.join(path, MANIFEST)):   # another process won the race
                return cls.open(path, spec)
            write_manifest(path, new_manifest(spec.to_dict()))
        log.info("created teacher cache %s (fingerprint %s)", path, spec.fingerprint)
        return cls(path, read_manifest(path))

    @classmethod
    def open(cls, path: str, spec: Optional[CacheSpec] = None) -> "CacheDirectory":
        """An existing cache; with `spec`, CacheSpecMismatch unless it stores exactly that."""
        cache = cls(path, read_manifest(path))
        if spec is not None:
            cache.spec.check_compatible(spec)
        return cache

    @classmethod
    def open_or_create(cls, path: str, spec: CacheSpec) -> "CacheDirectory":
        if os.path.exists(os.path.join(path, MANIFEST)):
            return cls.open(path, spec)
        return cls.create(path, spec)

    def refresh(self) -> Dict[str, Any]:
        self._manifest = read_manifest(self.path)
        return self._manifest

    @property
    def manifest(self) -> Dict[str, Any]:
        return self._manifest

    def shard_path(self, name: str) -> str:
        """shards/`name`; UnsafeEntryError unless `name` is a plain file name (cachefiles)."""
        return entry_path(self.path, SHARD_DIR, name, what="shard")

    def shards(self) -> List[ShardInfo]:
        return [ShardInfo.from_manifest(s) for s in self.refresh()["shards"]]

    # ------------------------------------------------------------------ keys
    def _keys_of(self, info: ShardInfo) -> List[str]:
        if info.name not in self._shard_keys:
            table = read_shard_table(self.shard_path(info.name), info.name, columns=["key"])
            keys = table.column("key").to_pylist()
            if len(keys) != info.rows:
                raise CorruptShardError(f"shard {info.name!r} holds {len(keys)} rows, the manifest "
                                        f"says {info.rows}", shard=info.name)
            self._shard_keys[info.name] = keys
        return self._shard_keys[info.name]

    def _key_set(self, manifest: Dict[str, Any]) -> set:
        out: set = set()
        for s in manifest["shards"]:
            out.update(self._keys_of(ShardInfo.from_manifest(s)))
        return out

    def keys(self) -> List[str]:
        """Every committed key, in shard (commit) order."""
        out: List[str] = []
        for info in self.shards():
            out.extend(self._keys_of(info))
        return out

    def __len__(self) -> int:
        return sum(s["rows"] for s in self.refresh()["shards"])

    def contains(self, keys: Sequence[str]) -> List[bool]:
        present = self._key_set(self.refresh())
        return [k in present for k in keys]

    def missing(self, keys: Iterable[str]) -> List[str]:
        """Keys (deduplicated, order kept) not yet committed: the ones still to score."""
        present = self._key_set(self.refresh())
        seen: set = set()
        out = []
        for k in keys:
            if k not in present and k not in seen:
                seen.add(k)
                out.append(k)
        return out

    # ------------------------------------------------------------------ writing
    def write_shard(self, outputs: Sequence[Dict[str, Any]],
                    name: Optional[str] = None) -> ShardInfo:
        """Write outputs (Teacher.score dicts) as an uncommitted, invisible shard."""
        return write_shard_file(os.path.join(self.path, SHARD_DIR), self.spec, outputs, name)

    def commit(self, shard_infos: Sequence[ShardInfo], *,
               known: Optional[Iterable[str]] = None) -> List[ShardInfo]:
        """Make shards visible: one atomic manifest replace under the lock. Keys already present
        (committed by anyone) are skipped; a partly duplicate shard is rewritten without them.
        Returns the shards actually added.

        known: shards committed when the caller chose the keys to score (a build's snapshot):
        keys are then checked only against shards committed since (usually none: nothing read,
        memory flat), the new shards taken to hold distinct keys (a build scores each once)."""
        added: List[ShardInfo] = []
        with locked(self.path):
            manifest = read_manifest(self.path)
            committed = {s["name"] for s in manifest["shards"]}
            if known is None:
                present = self._key_set(manifest)
            else:
                known = set(known)
                present = self._key_set({"shards": [s for s in manifest["shards"]
                                                    if s["name"] not in known]})
            for info in shard_infos:
                if info.name in committed:
                    continue                       # a retried bundle: already there
                fresh = None                       # None: nothing to check the keys against
                if known is None or present:
                    keys = list(info.keys) or self._keys_of(info)
                    fresh = [k for k in keys if k not in present]
                    if not fresh:
                        self._discard(info.name)
                        continue
                    if len(fresh) < len(keys):
                        info = self._rewrite_without(info, set(fresh))
                        if info.name in committed:
                            continue
                self._check_written(info)
                manifest["shards"].append(info.to_manifest())
                committed.add(info.name)
                if fresh is not None:
                    present.update(fresh)
                    self._shard_keys[info.name] = fresh
                added.append(info)
            if added:
                manifest["stats"] = manifest_stats(manifest)
                write_manifest(self.path, manifest)
        self._manifest = manifest
        if added:
            log.info("committed %d shard(s), %d rows to %s", len(added),
                     sum(i.rows for i in added), self.path)
        return added

    def add(self, outputs: Sequence[Dict[str, Any]]) -> List[ShardInfo]:
        """write_shard + commit of the outputs whose keys are not yet committed."""
        todo = set(self.missing(o["key"] for o in outputs))
        outputs = [o for o in outputs if o["key"] in todo]
        if not outputs:
            return []
        return self.commit([self.write_shard(outputs)])

    def _discard(self, name: str) -> None:
        try:
            os.unlink(self.shard_path(name))
        except FileNotFoundError:
            pass

    def _check_written(self, info: ShardInfo) -> None:
        # Size only: the sha256 was computed as the shard was written; verify() re-hashes.
        path = self.shard_path(info.name)
        if not os.path.lexists(path) or check_regular(path, what="shard").st_size != info.bytes:
            raise CacheError(f"shard {info.name!r} changed or vanished between write_shard and "
                             "commit: write it again")

    def _rewrite_without(self, info: ShardInfo, keep: set) -> ShardInfo:
        """A new shard holding only the rows of `info` whose keys are in `keep`."""
        import pyarrow.compute as pc

        table = read_shard_table(self.shard_path(info.name), info.name)
        table = table.filter(pc.is_in(table.column("key"), value_set=_pa_strings(sorted(keep))))
        new = write_table_file(os.path.join(self.path, SHARD_DIR), self.spec, table)
        if new.name != info.name:
            self._discard(info.name)
        return new

    # ------------------------------------------------------------------ corpora
    def write_corpus(self, name: str, rows: Sequence[Dict[str, Any]], *,
                     allow_missing: bool = False, task: Optional[Dict[str, Any]] = None,
                     labelled: bool = True,
                     questions: Optional[Sequence[Dict[str, Any]]] = None) -> None:
        """Atomically (re)write corpus `name`: rows {"id","key","label","parent_id","chain","copy"}.
        Every key must be committed unless allow_missing (a corpus pointing at absent teacher
        outputs would train on nothing silently). task: the corpus's task (a `taskdata.Task` as
        a dict: labels, kind, metrics), recorded in the manifest so that training and evaluation
        need no task flags; labelled False marks a corpus whose rows carry no gold label.
        questions (question answering): one row per question {"id", "context", "offsets",
        "answers", "is_impossible"} (distiller.builders.teacher.qa_windows.question_row), written
        beside the
        corpus for decoding and scoring; rows then carry SPAN_FIELDS."""
        check_corpus_name(name)
        clean = clean_rows(rows)
        if not allow_missing:
            absent = self.missing(r["key"] for r in clean)
            if absent:
                raise CacheError(f"corpus {name!r} refers to {len(absent)} key(s) the cache does "
                                 f"not hold (first: {absent[0]}): commit their teacher outputs "
                                 "first")
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in clean).encode("utf-8")
        fname = f"{name}.jsonl"
        qdata = None if questions is None else "".join(
            json.dumps(q, sort_keys=True, ensure_ascii=False) + "\n" for q in questions
        ).encode("utf-8")
        with locked(self.path):
            if qdata is not None:
                atomic_write_bytes(os.path.join(self.path, CORPUS_DIR, f"{name}.questions.jsonl"),
                                   qdata)
            atomic_write_bytes(os.path.join(self.path, CORPUS_DIR, fname), data)
            manifest = read_manifest(self.path)
            entry = {"file": fname, "rows": len(clean),
                     "sha256": hashlib.sha256(data).hexdigest(), "labelled": bool(labelled)}
            if qdata is not None:
                entry["questions"] = {"file": f"{name}.questions.jsonl", "rows": len(questions),
                                      "sha256": hashlib.sha256(qdata).hexdigest()}
            if task is not None:
                entry["task"] = dict(task)
            manifest.setdefault("corpora", {})[name] = entry
            write_manifest(self.path, manifest)
        self._manifest = manifest

    def _corpus_entry(self, name: str) -> Dict[str, Any]:
        corpora = self.refresh().get("corpora", {})
        if name not in corpora:
            raise CacheError(f"cache {self.path!r} has no corpus {name!r}; it has "
                             f"{sorted(corpora)}")
        return corpora[name]

    def _read_checked(self, name: str, entry: Dict[str, Any]) -> List[Dict[str, Any]]:
        path = entry_path(self.path, CORPUS_DIR, entry["file"], what=f"corpus {name!r} file")
        with open_regular(path, what=f"corpus {name!r} file") as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CacheError(f"corpus {name!r} ({entry['file']}) was altered after it was "
                             "written (checksum mismatch): write it again")
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line]

    def read_corpus(self, name: str) -> List[Dict[str, Any]]:
        return self._read_checked(name, self._corpus_entry(name))

    def read_questions(self, name: str) -> Optional[List[Dict[str, Any]]]:
        """The question rows of a question-answering corpus (see write_corpus), or None for a
        corpus that has none."""
        entry = self._corpus_entry(name).get("questions")
        return None if entry is None else self._read_checked(name, entry)

    def corpora(self) -> List[str]:
        return sorted(self.refresh().get("corpora", {}))

    def corpus_task(self, name: str):
        """The `taskdata.Task` a build recorded with corpus `name` (None for a corpus written
        without one, e.g. by an older version)."""
        corpora = self.refresh().get("corpora", {})
        if name not in corpora:
            raise CacheError(f"cache {self.path!r} has no corpus {name!r}; it has "
                             f"{sorted(corpora)}")
        task = corpora[name].get("task")
        return Task.from_dict(task) if task else None

    def corpus_labelled(self, name: str) -> bool:
        """Whether the rows of corpus `name` carry gold labels (a build with --unlabelled: no)."""
        entry = self.refresh().get("corpora", {}).get(name, {})
        return bool(entry.get("labelled", True))

    # ------------------------------------------------------------------ reporting
    def stats(self) -> Dict[str, Any]:
        """examples, tokens, shards, bytes, bytes_per_example, truncated, plus the spec's dtype;
        a token-level cache adds positions (predicted tokens stored), bytes_per_token (shard
        bytes per position) and stats.token_stats."""
        manifest = self.refresh()
        out = manifest_stats(manifest)
        out.update({"dtype": self.spec.dtype, "layers": list(self.spec.layers),
                    "pooling": self.spec.pooling, "attentions": list(self.spec.attentions),
                    "corpora": {k: v["rows"] for k, v in manifest.get("corpora", {}).items()}})
        if self.spec.token_level:
            out.update(token_stats(self.spec))
        return out


def _foreign_entries(path: str) -> List[str]:
    """Entries of `path` other than what an interrupted `create` leaves (lock, empty subdirs)."""
    out = []
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if name == ".lock" or (name in (SHARD_DIR, CORPUS_DIR) and os.path.isdir(full)
                                and not os.listdir(full)):
            continue
        out.append(name)
    return out


def _pa_strings(values: List[str]):
    import pyarrow as pa

    return pa.array(values, type=pa.string())
