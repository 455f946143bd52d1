"""CacheReader: random access to a teacher cache for training (contract 6: never loads a teacher).

Shards are memory-mapped; a key -> (shard, row group, offset) index is built from the key columns
at open; whole row groups (a few MB each) are decoded on demand into a small LRU, so resident
memory stays bounded by (LRU size x row-group size) + the index, whatever the cache size.

A token-level cache's rows (`CacheSpec.tokens`; docs/cache.md, "Token-level caches") are numpy
arrays: input_ids int32 [L] (what the teacher saw: a masked LM's masked input), token_type_ids
int8 [L], positions int32 [P], targets int32 [P] and the sparse distributions at those positions
under their column's name: `token_topk` (a sparse_tokens.TopKTokens) or `token_sample` (a
SampledTokens), ready for distill_train.token_losses' pad_topk / pad_samples; plus hidden states
{layer: float32 array} when kept.
"""
from __future__ import annotations

import bisect
import collections
import logging
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from distiller.common.errors import MissingEntryError

from .files import entry_path
from .errors import CacheSpecMismatch, CorruptShardError, UnsatisfiableRequest
from .manifest import SHARD_DIR, read_manifest
from .shards import (TOKENS_DECODED, ShardInfo, decode_row, decode_tokens, file_sha256,
                     open_shard, token_column)
from .spec import CacheSpec

__all__ = ["CacheReader"]

log = logging.getLogger(__name__)


class CacheReader:
    """Read teacher outputs by key or by row.

    layers: hidden-state indices wanted (None = all the cache keeps); a layer the cache lacks is an
    UnsatisfiableRequest naming it. attentions: False, True (all kept) or layer indices.
    expect_fingerprint: the teacher fingerprint the caller trained against (CacheSpecMismatch if
    it differs). verify_checksums: recompute every shard's sha256 at open (slow for big caches;
    sizes are always checked). max_row_groups: decoded row groups kept in memory (each at most
    ~512 KB of stored rows). memory_map: map shard files instead of reading row groups with
    positioned reads; mapped pages count towards RSS as they are touched, so the default (False)
    keeps resident memory bounded by the LRU whatever the cache size.
    Thread-safe; the trainer prefetches batches from it on a background thread (prefetch_safe).
    """

    prefetch_safe = True  # reads and decodes (GIL released): fit for Batches(prefetch=True)

    def __init__(self, path: str, layers: Optional[Sequence[int]] = None,
                 attentions: Union[bool, Sequence[int]] = False,
                 expect_fingerprint: Optional[str] = None, *, verify_checksums: bool = False,
                 max_row_groups: int = 8, memory_map: bool = False) -> None:
        self.path = os.path.abspath(path)
        manifest = read_manifest(self.path)
        self.spec = CacheSpec.from_dict(manifest["spec"])
        if expect_fingerprint is not None and expect_fingerprint != self.spec.fingerprint:
            raise CacheSpecMismatch(
                f"cache {path!r} holds outputs of teacher {self.spec.fingerprint}, the caller "
                f"expects teacher {expect_fingerprint}: point at the cache built with that teacher")
        self.layers = tuple(self.spec.layers if layers is None else (int(i) for i in layers))
        absent = [i for i in self.layers if i not in self.spec.layers]
        if absent:
            raise UnsatisfiableRequest(
                f"hidden layer(s) {absent} requested but cache {path!r} keeps only layers "
                f"{list(self.spec.layers)}: rebuild the cache with those layers or change the "
                "layer mapping")
        if attentions is True:
            if not self.spec.attentions:
                raise UnsatisfiableRequest(f"attention maps requested but cache {path!r} keeps "
                                           "none: rebuild it with attentions kept")
            self.attentions = tuple(self.spec.attentions)
        elif attentions is False or attentions is None:
            self.attentions = ()
        else:
            self.attentions = tuple(int(i) for i in attentions)
            absent = [i for i in self.attentions if i not in self.spec.attentions]
            if absent:
                raise UnsatisfiableRequest(
                    f"attention maps of layer(s) {absent} requested but cache {path!r} keeps "
                    f"{list(self.spec.attentions)}")
        self._columns = self._needed_columns()
        self._memory_map = memory_map
        self._files: List[Any] = []
        self._names: List[str] = []
        self._group_starts: List[List[int]] = []   # per shard: first row of each row group
        self._shard_starts: List[int] = []          # global row of each shard's first row
        self._keys: List[str] = []
        self._lengths: List[int] = []               # tokens of each row (length-grouped batches)
        total = 0
        for entry in manifest["shards"]:
            info = ShardInfo.from_manifest(entry)
            spath = entry_path(self.path, SHARD_DIR, info.name, what="shard")
            pf = open_shard(spath, info.name, memory_map=memory_map)
            size = os.lstat(spath).st_size  # a regular file: open_shard checked
            if size != info.bytes:
                raise CorruptShardError(f"shard {info.name!r} is {size} bytes, the manifest says "
                                        f"{info.bytes}: it was truncated or altered; run "
                                        "`distiller cache verify`", shard=info.name)
            if verify_checksums and file_sha256(spath, what="shard") != info.sha256:
                raise CorruptShardError(f"shard {info.name!r} fails its checksum", shard=info.name)
            starts, acc = [], 0
            for g in range(pf.metadata.num_row_groups):
                starts.append(acc)
                acc += pf.metadata.row_group(g).num_rows
            if acc != info.rows:
                raise CorruptShardError(f"shard {info.name!r} has {acc} rows, the manifest says "
                                        f"{info.rows}", shard=info.name)
            head = self._read(pf, info.name, None, ["key", "length"])
            self._keys.extend(head["key"].to_pylist())
            self._lengths.extend(head["length"].to_pylist())
            self._files.append(pf)
            self._names.append(info.name)
            self._group_starts.append(starts)
            self._shard_starts.append(total)
            total += info.rows
        self._index = {k: i for i, k in enumerate(self._keys)}
        if len(self._index) != len(self._keys):
            log.warning("cache %s stores %d duplicate key(s); the first copy is served",
                        path, len(self._keys) - len(self._index))
        self._lru: "collections.OrderedDict[Tuple[int, int], Dict[str, Any]]" = \
            collections.OrderedDict()
        self._max_groups = max(1, int(max_row_groups))
        self._lock = threading.RLock()

    def __getstate__(self) -> Dict[str, Any]:
        # Open files and decoded row groups stay behind (DataLoader workers): reopened lazily.
        state = dict(self.__dict__)
        state["_files"] = [None] * len(self._files)
        state["_lru"] = collections.OrderedDict()
        del state["_lock"]
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def _file(self, s: int):
        if self._files[s] is None:
            path = entry_path(self.path, SHARD_DIR, self._names[s], what="shard")
            self._files[s] = open_shard(path, self._names[s], memory_map=self._memory_map)
        return self._files[s]

    def _needed_columns(self) -> List[str]:
        spec = self.spec
        cols = ["key", "length", "truncated", "input_ids", "token_type_ids"]
        if spec.token_level:
            cols += ["positions", "targets", token_column(spec)]
        else:
            cols.append("logits")
        if spec.logits_topk:
            cols += ["topk_indices", "rest_mass"]
        if spec.logits_dtype == "int8" and not spec.token_level:
            cols.append("logits_scale")
        for prefix, layers in (("hidden", self.layers), ("attn", self.attentions)):
            for l in layers:
                cols.append(f"{prefix}_{l}")
                if spec.dtype == "int8":
                    cols.append(f"{prefix}_{l}_scale")
        return cols

    def _read(self, pf, name: str, group: Optional[int], columns: List[str]) -> Dict[str, Any]:
        import pyarrow as pa

        try:
            table = pf.read(columns=columns) if group is None else \
                pf.read_row_group(group, columns=columns)
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise CorruptShardError(f"shard {name!r} cannot be read ({exc}): it is truncated or "
                                    "altered; run `distiller cache verify`", shard=name) from exc
        return {c: table.column(c) for c in columns}

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> List[str]:
        return list(self._keys)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def row_of(self, key: str) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise MissingEntryError(f"key {key!r} is not in cache {self.path!r} (score it first; "
                                    "`TeacherCache.missing` lists absent keys)") from None

    def lengths(self, keys: Sequence[str]) -> List[int]:
        """Token count of each key's input (read at open: no row is decoded)."""
        return [self._lengths[self.row_of(k)] for k in keys]

    def get(self, key: str) -> Dict[str, Any]:
        return self.get_row(self.row_of(key))

    def __getitem__(self, row: int) -> Dict[str, Any]:
        return self.get_row(row)

    def get_many(self, keys: Sequence[str]) -> List[Dict[str, Any]]:
        """Rows of `keys`, in that order; rows sharing a row group are decoded together.
        Safe to call from several threads (the trainer prefetches on one)."""
        rows = [self.row_of(k) for k in keys]
        out: List[Optional[Dict[str, Any]]] = [None] * len(rows)
        for i in sorted(range(len(rows)), key=lambda i: rows[i]):
            out[i] = self.get_row(rows[i])
        return out  # type: ignore[return-value]

    def get_row(self, row: int) -> Dict[str, Any]:
        """torch tensors of one row: input_ids/token_type_ids Long[L], logits Float[C],
        hidden {layer: Float[L, H] or [H]}, attentions {layer: Float[heads, L, L]} if asked.
        A token-level cache's row holds numpy arrays and its sparse form instead (module doc)."""
        import torch

        if not 0 <= row < len(self._keys):
            raise IndexError(f"row {row} out of range for a cache of {len(self._keys)} rows")
        s = bisect.bisect_right(self._shard_starts, row) - 1
        local = row - self._shard_starts[s]
        g = bisect.bisect_right(self._group_starts[s], local) - 1
        with self._lock:  # the row-group LRU and the open files are shared between threads
            cols = self._group(s, g)
        try:
            ex = decode_row(cols, local - self._group_starts[s][g], self.spec, layers=self.layers,
                            attentions=self.attentions)
        except ValueError as exc:
            raise CorruptShardError(f"shard {self._names[s]!r} row {local} does not match the "
                                    f"spec ({exc})", shard=self._names[s]) from exc
        if self.spec.token_level:   # numpy fields (docs/cache.md, "Token-level caches")
            return _token_row(ex, token_column(self.spec))
        out: Dict[str, Any] = {
            "key": ex["key"], "truncated": ex["truncated"],
            "input_ids": torch.from_numpy(ex["input_ids"].astype("int64")),
            "token_type_ids": torch.from_numpy(ex["token_type_ids"].astype("int64")),
            "logits": torch.from_numpy(ex["logits"]),
            "hidden": {l: torch.from_numpy(v) for l, v in ex["hidden"].items()},
        }
        if self.attentions:
            out["attentions"] = {l: torch.from_numpy(v) for l, v in ex["attentions"].items()}
        if self.spec.logits_topk:
            out["topk_indices"] = torch.from_numpy(ex["topk_indices"].astype("int64"))
            out["topk_logprobs"] = torch.from_numpy(ex["topk_logprobs"])
            out["rest_mass"] = ex["rest_mass"]
        return out

    def _group(self, s: int, g: int) -> Dict[str, Any]:
        hit = self._lru.get((s, g))
        if hit is not None:
            self._lru.move_to_end((s, g))
            return hit
        cols = self._read(self._file(s), self._names[s], g, self._columns)
        if self.spec.token_level:   # the group's sparse records, decoded once for its rows
            try:
                cols[TOKENS_DECODED] = decode_tokens(cols[token_column(self.spec)], self.spec)
            except ValueError as exc:
                raise CorruptShardError(f"shard {self._names[s]!r} row group {g}: its sparse "
                                        f"column does not decode ({exc})",
                                        shard=self._names[s]) from exc
        self._lru[(s, g)] = cols
        while len(self._lru) > self._max_groups:
            self._lru.popitem(last=False)
        return cols


def _token_row(ex: Dict[str, Any], column: str) -> Dict[str, Any]:
    """A decoded token-level row as the reader returns it (numpy arrays, int32 ids; the sparse
    form under its column's name)."""
    out = {"key": ex["key"], "truncated": ex["truncated"],
           "input_ids": ex["input_ids"].astype("int32"),
           "token_type_ids": ex["token_type_ids"].astype("int8"),
           "positions": ex["positions"].astype("int32"), "targets": ex["targets"].astype("int32"),
           column: ex[column], "hidden": ex["hidden"]}
    if "attentions" in ex:
        out["attentions"] = ex["attentions"]
    return out
