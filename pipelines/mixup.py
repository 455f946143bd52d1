"""MixupPairs: deterministic mixup pairs over a corpus, scored by the teacher offline.

For every record r (originals and augmented copies) and every m < pairs_per_example, a partner
p != r and λ ~ Beta(alpha, alpha) are drawn from a generator seeded by (base seed, r's id,
"mixup", m) over the corpus sorted by id — the same pairs on every runner and worker count.
λ is rounded to 6 decimals before use, so the key (distiller.builders.cache.keys.mixup_key(key_r,
key_p,
λ)) and the scored interpolation agree exactly. The teacher scores the interpolated word embeddings
(`Teacher.score_mixed`, docs/cache.md "Mixup rows": both sequences padded to the longer, mask =
max of the masks, token types from r where r is real); outputs are cached under the mixup key.

Pair rows carry what training needs (distiller.distill_train.data): ``mix_key_a``, ``mix_key_b``,
``mix_lam``, ``mix_label_b``, plus the parents' texts (``a``, ``b``) for scoring.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator

import apache_beam as beam

from distiller.builders.cache.keys import mixup_key
from distiller.common.errors import UsageError
from distiller.common.seeding import make_rng
from distiller.pipelines.keying import strip_internal

__all__ = ["MixupPairs", "draw_pairs", "MIXUP_CHAIN", "mixup_corpus_row"]

MIXUP_CHAIN = "mixup"


def draw_pairs(item, *, pairs_per_example: int, alpha: float, seed: int
               ) -> Iterator[Dict[str, Any]]:
    """(_, all keyed records) → pair rows, pairs_per_example per record (none if < 2 records)."""
    _, records = item
    records = sorted(records, key=lambda r: r["id"])
    n = len(records)
    if n < 2:
        return
    for i, r in enumerate(records):
        for m in range(pairs_per_example):
            rng = make_rng(seed, r["id"], MIXUP_CHAIN, m)
            j = rng.randrange(n - 1)
            j += j >= i                              # never the record itself
            lam = round(rng.betavariate(alpha, alpha), 6)
            p = records[j]
            yield {"id": f"{r['id']}#{MIXUP_CHAIN}#{m}",
                   "key": mixup_key(r["key"], p["key"], lam),
                   "label": r.get("label"), "parent_id": r["id"], "chain": MIXUP_CHAIN,
                   "copy": m, "mix_key_a": r["key"], "mix_key_b": p["key"], "mix_lam": lam,
                   "mix_label_b": p.get("label"), "a": strip_internal(r), "b": strip_internal(p),
                   "n_tokens": max(int(r["n_tokens"]), int(p["n_tokens"])),
                   "truncated": bool(r.get("truncated") or p.get("truncated"))}


def mixup_corpus_row(pair: Dict[str, Any]) -> Dict[str, Any]:
    """The corpus row of a pair (the pairing fields kept for the trainer)."""
    return {k: pair[k] for k in ("id", "key", "label", "parent_id", "chain", "copy",
                                 "mix_key_a", "mix_key_b", "mix_lam", "mix_label_b")}


class MixupPairs(beam.PTransform):
    """keyed records → mixup pair rows. Pairing needs the whole corpus: the (small) records are
    gathered on one worker, sorted by id, and the pairs are drawn there."""

    def __init__(self, *, pairs_per_example: int, alpha: float = 0.4, seed: int = 0):
        super().__init__()
        if pairs_per_example < 1:
            raise UsageError(f"pairs_per_example must be >= 1, got {pairs_per_example}")
        if alpha <= 0:
            raise UsageError(f"mixup alpha must be > 0 (Beta(alpha, alpha)), got {alpha}")
        self.kwargs = dict(pairs_per_example=pairs_per_example, alpha=alpha, seed=seed)

    def expand(self, records):
        return (records
                | "to_one_worker" >> beam.Map(lambda r: (None, r))
                | "gather_corpus" >> beam.GroupByKey()
                | "draw_pairs" >> beam.FlatMap(draw_pairs, **self.kwargs))
