"""Top-k picks that span the factors: the best configuration of each distinct (objective,
augmentation) first, so k suggestions are k different ideas rather than near-copies of one
configuration that differ in a weight or the mapping."""
from __future__ import annotations

from typing import Sequence

__all__ = ["spread_top_k", "SPREAD_FACTORS"]

SPREAD_FACTORS = ("inter_loss", "augmentation")


def spread_top_k(ranked, k: int, factors: Sequence[str] = SPREAD_FACTORS):
    """The first `k` rows of `ranked` (a DataFrame, best first) taking at most one row per
    distinct combination of `factors` until every combination has one, then the best of the
    rest; the order among the picks stays the ranking's."""
    if k >= len(ranked):
        return ranked.reset_index(drop=True)
    keys = ["|".join(map(str, row)) for row in ranked[list(factors)].itertuples(index=False)]
    seen, first, rest = set(), [], []
    for pos, key in enumerate(keys):
        (rest if key in seen else first).append(pos)
        seen.add(key)
    picked = sorted(first[:k] + rest[:max(0, k - len(first))])
    return ranked.iloc[picked].reset_index(drop=True)
