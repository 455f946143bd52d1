"""Storage encodings of float tensors: float32, float16, int8 with one float32 scale per vector.

A "vector" is the last axis (one token's hidden state, one row of an attention map, a logits row),
so int8 error is bounded by max|x| / 254 per vector: an outlier token does not ruin the others.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from distiller.common.errors import UsageError

__all__ = ["encode", "decode", "itemsize", "max_abs_error_bound"]

_NP = {"float32": np.float32, "float16": np.float16, "int8": np.int8}


def itemsize(dtype: str) -> int:
    return np.dtype(_NP[dtype]).itemsize


def encode(x: np.ndarray, dtype: str) -> Tuple[bytes, Optional[bytes]]:
    """(data bytes, scale bytes or None) of a float array; shapes are not stored (known by spec).

    float16 saturates at +-65504 rather than overflowing to inf.
    """
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float32":
        return np.ascontiguousarray(x).tobytes(), None
    if dtype == "float16":
        return np.clip(x, -65504.0, 65504.0).astype(np.float16).tobytes(), None
    if dtype == "int8":
        flat = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
        amax = np.abs(flat).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
        return q.tobytes(), scale.tobytes()
    raise UsageError(f"unknown storage dtype {dtype!r}: use float32, float16 or int8")


def decode(data: bytes, scale: Optional[bytes], dtype: str, shape: Tuple[int, ...]) -> np.ndarray:
    """float32 array of `shape` from `encode`'s output; ValueError if the sizes disagree."""
    arr = np.frombuffer(data, dtype=_NP[dtype])
    n = int(np.prod(shape)) if shape else 1
    if arr.size != n:
        raise UsageError(f"stored tensor has {arr.size} values, expected {n} for shape {shape}")
    if dtype == "int8":
        s = np.frombuffer(scale, dtype=np.float32)
        vec = shape[-1] if shape else 1
        if s.size * vec != n:
            raise UsageError(f"stored int8 tensor has {s.size} scales, expected {n // vec}")
        return (arr.reshape(-1, vec).astype(np.float32) * s[:, None]).reshape(shape)
    return arr.astype(np.float32).reshape(shape)


def max_abs_error_bound(x: np.ndarray, dtype: str) -> float:
    """Worst-case absolute reconstruction error of `encode` for `x` (used by tests)."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "float32":
        return 0.0
    if dtype == "float16":
        return float(np.abs(x).max(initial=0.0)) * 2.0 ** -11 + 6e-8
    amax = np.abs(x.reshape(-1, x.shape[-1])).max(axis=1)
    return float((amax / 127.0 / 2.0).max(initial=0.0)) * 1.0001 + 1e-12
