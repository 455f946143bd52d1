"""Synthetic teacher outputs (no model) for cache tests, and a writer process for kill/race tests.

Run as a script: python synthetic.py CACHE_DIR PREFIX N_CHUNKS CHUNK [--pause-before-commit FILE]
"""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np

SPEC_KW = dict(fingerprint="f" * 32, tokenization={"max_length": 16}, layers=(0, 2),
               hidden_size=8, num_heads=2, num_hidden_layers=2, num_labels=3, max_length=16)


def make_spec(**overrides):
    from distiller.builders import CacheSpec

    kw = dict(SPEC_KW)
    kw.update(overrides)
    return CacheSpec(**kw)


def make_outputs(keys, *, attentions=(), seed=0, hidden_size=8, num_labels=3):
    out = []
    for k in keys:
        rng = np.random.default_rng(zlib.crc32(k.encode()) + seed)
        n = int(rng.integers(3, 16))
        o = {"key": k, "input_ids": rng.integers(0, 100, n).astype(np.int32),
             "token_type_ids": np.zeros(n, np.int8), "truncated": bool(n == 15),
             "logits": rng.normal(size=num_labels).astype(np.float32),
             "hidden": {l: (rng.normal(size=(n, hidden_size)) * 3).astype(np.float32)
                        for l in (0, 1, 2)}}
        if attentions:
            a = rng.random((len(attentions), 2, n, n)).astype(np.float32)
            o["attentions"] = {l: a[i] / a[i].sum(-1, keepdims=True)
                               for i, l in enumerate(attentions)}
        out.append(o)
    return out


def damage_a_data_page(path):
    """Zero the last 64 bytes of the last column's data in the first row group: damage that only
    the page checksums find (a shard not yet committed has no sha256 in the manifest)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata.row_group(0)
    column = meta.column(meta.num_columns - 1)
    with open(path, "r+b") as fh:
        fh.seek(column.data_page_offset + column.total_compressed_size - 64)
        fh.write(b"\0" * 64)


def main(argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from distiller.builders import TeacherCache

    path, prefix, n_chunks, chunk = argv[0], argv[1], int(argv[2]), int(argv[3])
    pause = argv[5] if len(argv) > 5 and argv[4] == "--pause-before-commit" else None
    cache = TeacherCache.open(path)
    for c in range(n_chunks):
        keys = [f"{prefix}-{c}-{i}" for i in range(chunk)] + [f"shared-{c}-{i}" for i in range(2)]
        info = cache.write_shard(make_outputs(keys))
        if pause and c == n_chunks - 1:
            with open(pause, "w") as fh:
                fh.write(info.name)
            import time

            time.sleep(600)
        cache.commit([info])
        print(f"committed {c}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
