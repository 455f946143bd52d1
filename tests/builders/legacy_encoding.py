"""The per-row shard encoding as it was before the vectorised one (builders/cache/encoding.py), kept
verbatim as the reference that the new encoding must equal byte for byte (test_encoding.py)."""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np

from distiller.builders.cache.quant import encode
from distiller.builders.cache.shards import shard_schema
from distiller.builders.cache.spec import CacheSpec


def _check_output(o: Dict[str, Any], spec: CacheSpec) -> int:
    n = len(o["input_ids"])
    missing = [l for l in spec.layers if l not in o.get("hidden", {})]
    if missing:
        raise ValueError(f"output for key {o.get('key')!r} lacks hidden layers {missing} that the "
                         f"cache spec keeps ({list(spec.layers)}): score with a matching teacher")
    missing = [l for l in spec.attentions if l not in (o.get("attentions") or {})]
    if missing:
        raise ValueError(f"output for key {o.get('key')!r} lacks attentions of layers {missing}")
    if len(o["logits"]) != spec.num_labels:
        raise ValueError(f"output for key {o.get('key')!r} has {len(o['logits'])} logits, the "
                         f"cache spec says {spec.num_labels}")
    return n


def _topk(logits: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray, float]:
    z = logits.astype(np.float64)
    logp = z - (np.log(np.exp(z - z.max()).sum()) + z.max())
    k = min(k, len(z))
    idx = np.argsort(-logp, kind="stable")[:k].astype(np.int32)
    rest = float(max(0.0, 1.0 - np.exp(logp[idx]).sum()))
    return idx, logp[idx].astype(np.float32), rest


def encode_rows(outputs: Sequence[Dict[str, Any]], spec: CacheSpec) -> Dict[str, list]:
    """Column lists for `outputs` (teacher.score dicts): keys deduplicated (first kept) and rows
    sorted by key, so the same set of outputs always gives byte-identical shards."""
    cols: Dict[str, list] = {f.name: [] for f in shard_schema(spec)}
    unique: Dict[str, Dict[str, Any]] = {}
    for o in outputs:
        unique.setdefault(o["key"], o)
    for _, o in sorted(unique.items()):
        n = _check_output(o, spec)
        cols["key"].append(o["key"])
        cols["length"].append(n)
        cols["truncated"].append(bool(o.get("truncated", False)))
        cols["input_ids"].append(np.asarray(o["input_ids"], dtype="<i4").tobytes())
        cols["token_type_ids"].append(np.asarray(o["token_type_ids"], dtype="i1").tobytes())
        logits = np.asarray(o["logits"], dtype=np.float32)
        if spec.logits_topk:
            idx, vals, rest = _topk(logits, spec.logits_topk)
            cols["topk_indices"].append(idx.tobytes())
            cols["rest_mass"].append(rest)
            logits = vals
        tensors = {"logits": (logits, spec.logits_dtype)}
        for l in spec.layers:
            h = np.asarray(o["hidden"][l], dtype=np.float32)
            want = (n, spec.hidden_size) if spec.pooling == "none" else (spec.hidden_size,)
            if spec.hidden_size and h.shape != want:
                raise ValueError(f"hidden layer {l} of key {o['key']!r} has shape {h.shape}, "
                                 f"expected {want} (trimmed to the real length)")
            tensors[f"hidden_{l}"] = (h, spec.dtype)
        for l in spec.attentions:
            tensors[f"attn_{l}"] = (np.asarray(o["attentions"][l], dtype=np.float32), spec.dtype)
        for col, (x, dtype) in tensors.items():
            data, scale = encode(x, dtype)
            cols[col].append(data)
            if scale is not None:
                cols[col + "_scale"].append(scale)
    return cols
