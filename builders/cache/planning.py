"""Planning before scoring: storage size estimates and whether a loss configuration can be served.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from typing import Any, Dict, List, Mapping, Sequence

from distiller.common.errors import UsageError

from .errors import UnsatisfiableRequest
from .quant import itemsize
from .token_columns import estimate_bytes_per_token
from .spec import CacheSpec

__all__ = ["estimate", "plan", "satisfiable", "Satisfiability", "length_histogram",
           "positions_for_length"]

log = logging.getLogger(__name__)

# Parquet page/row-group overhead per row and per binary value (offsets), measured on small shards.
_ROW_OVERHEAD = 40
_VALUE_OVERHEAD = 4


def length_histogram(lengths: Sequence[int]) -> Dict[int, int]:
    out: Dict[int, int] = {}
    for n in lengths:
        out[int(n)] = out.get(int(n), 0) + 1
    return out


def positions_for_length(spec: CacheSpec, n: int) -> int:
    """Predicted positions a token-level row of `n` tokens stores: a causal LM's n - 1; a masked
    LM's share `mask_prob` of its tokens, at least one (an estimate: the two special tokens of
    a BERT-style input are taken as never masked); 0 for a sentence-level spec."""
    if not spec.token_level:
        return 0
    if spec.problem_type == "causal_lm":
        return max(0, n - 1)
    prob = float(spec.tokenization_settings.get("mask_prob", 0.15))
    return max(1, int(round(prob * max(1, n - 2))))


def bytes_for_length(spec: CacheSpec, n: int) -> int:
    """Estimated stored bytes of one example of `n` tokens under `spec`."""
    h, heads = spec.hidden_size, spec.num_heads
    b = 32 + 4 + 1 + 4 * n + n + _ROW_OVERHEAD + 5 * _VALUE_OVERHEAD     # key, ids, types
    if spec.token_level:   # positions and targets (int32), the sparse form per position
        p = positions_for_length(spec, n)
        b += 8 * p + int(round(p * estimate_bytes_per_token(spec.tokens, spec.num_labels))) + 4
    else:
        c = min(spec.logits_topk, spec.num_labels) if spec.logits_topk else \
            spec.num_labels * (n if spec.token_logits else 1)
        b += c * itemsize(spec.logits_dtype) + (4 if spec.logits_dtype == "int8" else 0)
        if spec.logits_topk:
            b += 4 * c + 4
    vectors = n if spec.pooling == "none" else 1
    per_layer = vectors * h * itemsize(spec.dtype) + _VALUE_OVERHEAD
    if spec.dtype == "int8":
        per_layer += 4 * vectors + _VALUE_OVERHEAD
    b += len(spec.layers) * per_layer
    per_attn = heads * n * n * itemsize(spec.dtype) + _VALUE_OVERHEAD
    if spec.dtype == "int8":
        per_attn += 4 * heads * n + _VALUE_OVERHEAD
    b += len(spec.attentions) * per_attn
    return int(b)


def estimate(spec: CacheSpec, histogram: Mapping[int, int]) -> Dict[str, Any]:
    """{"examples", "bytes_per_example", "total_bytes"} for a corpus with this length histogram
    (token length including special tokens -> count); a token-level spec adds "positions",
    "bytes_per_token" (whole rows per predicted position) and "sparse_bytes_per_token" (the
    sparse column alone, token_columns.estimate_bytes_per_token)."""
    examples = sum(histogram.values())
    total = sum(bytes_for_length(spec, min(int(n), spec.max_length)) * c
                for n, c in histogram.items())
    out = {"examples": examples, "total_bytes": total,
           "bytes_per_example": (total / examples) if examples else 0.0}
    if spec.token_level:   # per predicted position: whole rows, and the sparse column alone
        positions = sum(positions_for_length(spec, min(int(n), spec.max_length)) * c
                        for n, c in histogram.items())
        out.update(positions=positions,
                   bytes_per_token=(total / positions) if positions else 0.0,
                   sparse_bytes_per_token=estimate_bytes_per_token(spec.tokens,
                                                                   spec.num_labels))
    return out


def plan(spec: CacheSpec, histogram: Mapping[int, int], path: str) -> Dict[str, Any]:
    """`estimate` plus the free disk at `path` and a warning (logged and returned) if short."""
    out = estimate(spec, histogram)
    free = shutil.disk_usage(path).free
    out["free_bytes"] = free
    out["fits"] = out["total_bytes"] <= free
    if not out["fits"]:
        log.warning("the cache would need %.1f GB but only %.1f GB is free at %s",
                    out["total_bytes"] / 1e9, free / 1e9, path)
    return out


@dataclasses.dataclass(frozen=True)
class Satisfiability:
    """Truthy when the cache can serve the request; `missing` says what it lacks."""

    ok: bool
    missing: List[str]

    def __bool__(self) -> bool:
        return self.ok

    def raise_if_not(self) -> None:
        if not self.ok:
            raise UnsatisfiableRequest("the cache cannot serve this configuration: "
                                       + "; ".join(self.missing))


def satisfiable(spec: CacheSpec, requirements: Mapping[str, Any]) -> Satisfiability:
    """Can a cache with `spec` serve a loss configuration?

    requirements keys (all optional): layers (hidden-state indices), attentions (bool or layer
    indices), pooling ("none" when per-token states are needed, "cls"/"mean"), full_logits (bool:
    the loss needs every class's logit, not top-k), fingerprint (expected teacher fingerprint).
    """
    known = {"layers", "attentions", "pooling", "full_logits", "fingerprint"}
    unknown = sorted(set(requirements) - known)
    if unknown:
        raise UsageError(f"unknown requirement(s) {unknown}; known: {sorted(known)}")
    missing: List[str] = []
    layers = [int(i) for i in requirements.get("layers") or ()]
    absent = [i for i in layers if i not in spec.layers]
    if absent:
        missing.append(f"hidden layers {absent} are not kept (cache keeps {list(spec.layers)})")
    attn = requirements.get("attentions")
    if attn is True:
        if not spec.attentions:
            missing.append("attention maps are needed but the cache keeps none")
    elif attn:
        absent = [i for i in attn if i not in spec.attentions]
        if absent:
            missing.append(f"attention maps of layers {absent} are not kept "
                           f"(cache keeps {list(spec.attentions)})")
    pooling = requirements.get("pooling")
    if pooling is not None and pooling != spec.pooling:
        missing.append(f"pooling {pooling!r} needed, cache stores {spec.pooling!r}")
    if requirements.get("full_logits") and spec.logits_topk:
        missing.append(f"full logits needed, cache keeps only the top {spec.logits_topk}")
    fp = requirements.get("fingerprint")
    if fp is not None and fp != spec.fingerprint:
        missing.append(f"teacher fingerprint {spec.fingerprint} differs from the expected {fp}")
    return Satisfiability(ok=not missing, missing=missing)
