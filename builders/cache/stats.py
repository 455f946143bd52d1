"""What `CacheDirectory.stats` and `distiller cache stats` report: counts summed over the
manifest's shard entries (written into the manifest at each commit) and, for a token-level cache,
bytes per predicted token (docs/cache.md, "Token-level caches").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from .schema import token_column
from .shards import read_shard_table
from .token_columns import estimate_bytes_per_token, stored_bytes_per_token
from .spec import CacheSpec

if TYPE_CHECKING:
    from .directory import CacheDirectory

__all__ = ["manifest_stats", "token_stats", "measured_token_bytes"]


def manifest_stats(manifest: Dict[str, Any]) -> Dict[str, Any]:
    """examples, shards, bytes, tokens, truncated, bytes_per_example of the committed shards; a
    token-level cache adds positions (predicted tokens stored) and bytes_per_token (whole-shard
    bytes per position). A sentence-level manifest's stats are what they were before token-level
    caches existed (no new keys)."""
    shards = manifest["shards"]
    examples = sum(s["rows"] for s in shards)
    total = sum(s["bytes"] for s in shards)
    out = {"examples": examples, "shards": len(shards), "bytes": total,
           "tokens": sum(s["tokens"] for s in shards),
           "truncated": sum(s["truncated"] for s in shards),
           "bytes_per_example": (total / examples) if examples else 0.0}
    if manifest["spec"].get("tokens"):
        positions = sum(s.get("positions", 0) for s in shards)
        out.update(positions=positions,
                   bytes_per_token=(total / positions) if positions else 0.0)
    return out


def token_stats(spec: CacheSpec) -> Dict[str, Any]:
    """What a token-level cache's stats add to `manifest_stats`: its token spec, problem type,
    vocabulary size and the sparse column's estimated bytes per position
    (token_columns.estimate_bytes_per_token, Arrow bytes before Parquet)."""
    return {"token_spec": spec.tokens, "problem_type": spec.problem_type,
            "vocab_size": spec.vocab_size,
            "sparse_bytes_per_token_estimate": estimate_bytes_per_token(spec.tokens,
                                                                        spec.vocab_size)}


def measured_token_bytes(cache: "CacheDirectory") -> float:
    """The sparse column's Arrow bytes per position over every committed shard of a token-level
    `cache` (token_columns.stored_bytes_per_token): reads that column of each shard, so it is
    `distiller cache stats`'s, not every commit's."""
    import pyarrow as pa

    column = token_column(cache.spec)
    chunks = []
    for info in cache.shards():
        table = read_shard_table(cache.shard_path(info.name), info.name, columns=[column])
        chunks.extend(table.column(column).chunks)
    if not chunks:
        return 0.0
    return stored_bytes_per_token(pa.chunked_array(chunks))
