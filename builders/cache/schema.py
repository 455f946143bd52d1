"""The Arrow schema of a shard for a cache spec: the columns a shard holds, in order.

Both the column encoder (encoding.py) and the shard reader and writer (shards.py) need it, so it
lives below both. A token-level spec (`CacheSpec.tokens`) has no `logits` column but
`positions`, `targets` and one sparse column (`token_column`: sparse_tokens' Arrow type).
"""
from __future__ import annotations

from typing import List

from .sparse_tokens import SAMPLE_COLUMN, TOPK_COLUMN, parse_token_spec
from .token_columns import column_type
from .spec import CacheSpec

__all__ = ["tensor_columns", "shard_schema", "token_column"]


def token_column(spec: CacheSpec) -> str:
    """The sparse column of a token-level spec: `token_topk` or `token_sample`."""
    return TOPK_COLUMN if parse_token_spec(spec.tokens).kind == "topk" else SAMPLE_COLUMN


def tensor_columns(spec: CacheSpec) -> List[str]:
    """The tensor columns a shard of `spec` holds: logits (not for a token-level spec),
    hidden_<layer>, attn_<layer>."""
    cols = [] if spec.token_level else ["logits"]
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
    if spec.token_level:
        fields += [pa.field("positions", pa.binary(), nullable=False),
                   pa.field("targets", pa.binary(), nullable=False),
                   pa.field(token_column(spec), column_type(spec.tokens, spec.num_labels),
                            nullable=False)]
    if spec.logits_topk:
        fields += [pa.field("topk_indices", pa.binary(), nullable=False),
                   pa.field("rest_mass", pa.float32(), nullable=False)]
    for col in tensor_columns(spec):
        fields.append(pa.field(col, pa.binary(), nullable=False))
        dtype = spec.logits_dtype if col == "logits" else spec.dtype
        if dtype == "int8":
            fields.append(pa.field(col + "_scale", pa.binary(), nullable=False))
    return pa.schema(fields)
