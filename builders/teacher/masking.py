"""The masking of a masked-LM teacher's input, and a causal LM's predicted positions
(docs/cache.md, "Token-level caches").

Masked LM (BERT's scheme, "bert-80-10-10"): of a record's maskable tokens (every token but the
tokenizer's special ones: [CLS], [SEP], padding, ...), `round(mask_prob x count)` are chosen, at
least one, uniformly without replacement. Each chosen token becomes the mask token with
probability 0.8, a random token with probability 0.1 (uniform over the vocabulary's non-special
ids) and stays as it is with probability 0.1. The teacher predicts the original token at every
chosen position. A fixed count (not one coin per token, as BERT's data collator draws) keeps
every record's share the same and never leaves a record without a position.

The draws come from a numpy Generator seeded by the record's cache key (common.seeding), and the
key holds the masking settings (`masking_settings`: the scheme, mask_prob, mask_seed, part of the
teacher's tokenization settings): the same record under the same settings is masked the same way
in every process and on every machine, and other settings give other keys, hence other rows.

Causal LM: every position but the last predicts the next token (position p, target ids[p + 1]).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

import numpy as np

from distiller.common.seeding import derive_seed, make_numpy_rng

__all__ = ["MASKING", "MASKED_SHARE", "RANDOM_SHARE", "masking_settings", "mask_count",
           "Masker", "causal_positions", "sample_seed"]

MASKING = "bert-80-10-10"   # the scheme's name in the settings (so in every key)
MASKED_SHARE, RANDOM_SHARE = 0.8, 0.1   # of the chosen tokens; the remaining 0.1 stay


def masking_settings(mask_prob: float, mask_seed: int) -> Dict[str, Any]:
    """What joins a masked-LM teacher's tokenization settings (and so every key)."""
    return {"masking": MASKING, "mask_prob": float(mask_prob), "mask_seed": int(mask_seed)}


def mask_count(maskable: int, mask_prob: float) -> int:
    """Tokens chosen among `maskable` ones: round(mask_prob x maskable) (half up), at least one
    when there is any."""
    if maskable <= 0:
        return 0
    return max(1, min(maskable, int(np.floor(mask_prob * maskable + 0.5))))


class Masker:
    """Masks token ids for one tokenizer: mask id, special ids, replacement ids."""

    def __init__(self, *, mask_id: int, special_ids: Iterable[int], vocab_size: int,
                 mask_prob: float) -> None:
        self.mask_id, self.mask_prob = int(mask_id), float(mask_prob)
        self.special = np.unique(np.asarray(sorted(set(int(i) for i in special_ids)),
                                            dtype=np.int64))
        self.replacements = np.setdiff1d(np.arange(int(vocab_size), dtype=np.int64),
                                         self.special)
        if not len(self.replacements):
            self.replacements = np.arange(int(vocab_size), dtype=np.int64)

    def mask(self, ids: np.ndarray, key: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(masked ids int32 [L], chosen positions int32 [P] ascending, original ids there
        int32 [P]) of one record's ids, drawn from a generator seeded by its `key`."""
        ids = np.asarray(ids, dtype=np.int32)
        rng = make_numpy_rng("mlm-mask", key)
        maskable = np.flatnonzero(~np.isin(ids, self.special))
        m = mask_count(len(maskable), self.mask_prob)
        positions = np.sort(rng.choice(maskable, size=m, replace=False)) if m else \
            np.zeros(0, np.int64)
        u = rng.random(m)
        random_ids = self.replacements[rng.integers(0, len(self.replacements), size=m)]
        out = ids.copy()
        targets = ids[positions].astype(np.int32)
        masked = u < MASKED_SHARE
        swapped = (u >= MASKED_SHARE) & (u < MASKED_SHARE + RANDOM_SHARE)
        out[positions[masked]] = self.mask_id
        out[positions[swapped]] = random_ids[swapped]
        return out, positions.astype(np.int32), targets


def causal_positions(ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(positions 0..L-2, targets ids[1:]) of a causal LM's record, int32."""
    ids = np.asarray(ids, dtype=np.int32)
    n = max(0, len(ids) - 1)
    return np.arange(n, dtype=np.int32), ids[1:].copy()


def sample_seed(key: str) -> int:
    """The seed of a record's draws for a `sample:N` cache (sparse_tokens.sample_tokens)."""
    return derive_seed("token-sample", key)
