"""The Arrow schema of a shard for a cache spec: the columns a shard holds, in order.

Both the column encoder (encoding.py) and the shard reader and writer (shards.py) need it, so it
lives below both.
"""
from __future__ import annotations

from typing import List

from .spec import CacheSpec

__all__ = ["tensor_columns", "shard_schema"]


def tensor_columns(spec: CacheSpec) -> List[str]:
    """The tensor columns a shard of `spec` holds: logits, hidden_<layer>, attn_<layer>."""
    cols = ["logits"]
    cols += [f"hidden_{l}" for l in spec.layers]
    cols += [f"attn_{l}" for l in spec.attentions]
    return cols


def shard_schema(spec: CacheSpec):
    """The exact Arrow schema of a shard for `spec` (verify compares against it)."""
    import pyarrow as pa

    fields = [pa.field("key", pa.string(), nullable=False),
              pa.field("length", pa.int32(), nullable=False),
              pa.field("truncated", pa.bool_(), nullable=False),
              pa.field("input_ids", pa.binary(), nullable=False),
              pa.field("token_type_ids", pa.binary(), nullable=False)]
    if spec.logits_topk:
        fields += [pa.field("topk_indices", pa.binary(), nullable=False),
                   pa.field("rest_mass", pa.float32(), nullable=False)]
    for col in tensor_columns(spec):
        fields.append(pa.field(col, pa.binary(), nullable=False))
        dtype = spec.logits_dtype if col == "logits" else spec.dtype
        if dtype == "int8":
            fields.append(pa.field(col + "_scale", pa.binary(), nullable=False))
    return pa.schema(fields)
