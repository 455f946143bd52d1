"""Deterministic seeds: every random choice is drawn from a generator seeded by hashing names.

As docs/architecture.md ("Augment") says: outputs depend only on (base seed, record id, augmenter
name, copy index, ...), never on global RNG state, batch composition, worker count or bundle
order.
"""
from __future__ import annotations

import hashlib
import os
import random
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import numpy as np

Part = Union[str, int, float, bytes, None]

__all__ = ["derive_seed", "make_rng", "make_numpy_rng", "make_torch_generator", "stable_hash",
           "THREAD_INDEPENDENT_MKL", "thread_independent_math"]

# Worker count must not change outputs either, and it sets the torch threads of each local worker
# (CPUs // workers). MKL's float32 GEMM gives different last bits on 1 and 2 threads for some
# shapes (measured: 12 of 528 rows of a tiny BERT's logits, small batches, where the classifier's
# GEMM splits a few rows between threads): that made caches built with 1 and 2 workers differ.
# Strict conditional numerical reproducibility makes GEMM results independent of the thread count
# (no measurable cost here: see benchmarks/README.md). MKL reads it at its first call, so the
# entry points (the `distiller` command, a teacher loading in a worker, a spawned training rank)
# call `thread_independent_math` before any torch math; a value the user set wins.
THREAD_INDEPENDENT_MKL = ("MKL_CBWR", "AUTO,STRICT")


def thread_independent_math() -> None:
    """Make MKL's results independent of the thread count, here and in child processes (they
    inherit the environment). Call it before the first torch computation of a process."""
    os.environ.setdefault(*THREAD_INDEPENDENT_MKL)


def stable_hash(*parts: Part, digest_size: int = 16) -> str:
    """Hex digest of the parts, each length-prefixed so ("ab", "c") != ("a", "bc")."""
    h = hashlib.blake2b(digest_size=digest_size)
    for part in parts:
        data = part if isinstance(part, bytes) else repr(part).encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def derive_seed(*parts: Part) -> int:
    """A 63-bit seed from the parts: the same parts give the same seed in every process."""
    return int(stable_hash(*parts, digest_size=8), 16) & ((1 << 63) - 1)


def make_rng(*parts: Part) -> random.Random:
    """A private `random.Random` seeded from the parts."""
    return random.Random(derive_seed(*parts))


def make_numpy_rng(*parts: Part) -> np.random.Generator:
    """A private numpy Generator seeded from the parts."""
    import numpy as np

    return np.random.default_rng(derive_seed(*parts))


def make_torch_generator(*parts: Part):
    """A private CPU `torch.Generator` seeded from the parts (sampling is done per row on CPU)."""
    import torch

    gen = torch.Generator(device="cpu")
    gen.manual_seed(derive_seed(*parts))
    return gen
