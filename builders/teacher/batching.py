"""Length bucketing: which examples go into which forward batch.

Sorting by length within a window keeps padding small while bounding how far an example travels
from its position (so a streaming caller can flush windows); a token cap bounds memory per batch.
"""
from __future__ import annotations

from typing import List, Sequence

from distiller.common.errors import UsageError

__all__ = ["plan_batches"]


def plan_batches(lengths: Sequence[int], *, max_tokens: int, max_batch_size: int,
                 window: int) -> List[List[int]]:
    """Batches of indices into `lengths`: every index exactly once.

    Within each window of `window` consecutive examples, examples are sorted by length (longest
    first, ties by position, so the plan is deterministic) and cut greedily so that
    batch_size * longest_length <= max_tokens and batch_size <= max_batch_size. An example longer
    than max_tokens forms a batch alone.
    """
    if max_tokens < 1 or max_batch_size < 1 or window < 1:
        raise UsageError(f"plan_batches needs positive limits, got max_tokens={max_tokens}, "
                         f"max_batch_size={max_batch_size}, window={window}")
    batches: List[List[int]] = []
    for start in range(0, len(lengths), window):
        order = sorted(range(start, min(start + window, len(lengths))),
                       key=lambda i: (-lengths[i], i))
        current: List[int] = []
        longest = 0
        for i in order:
            longest_if = max(longest, lengths[i])
            if current and ((len(current) + 1) * longest_if > max_tokens
                            or len(current) >= max_batch_size):
                batches.append(current)
                current, longest_if = [], lengths[i]
            current.append(i)
            longest = longest_if
        if current:
            batches.append(current)
    return batches
