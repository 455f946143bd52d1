"""Teacher inputs and outputs of mixup pairs, as docs/cache.md ("Mixup rows") defines
them; `Teacher.score_mixed` (model.py) runs the forwards with these pieces.

Pair (i, j, lam): both token sequences padded to L = max(len_i, len_j); input embeddings =
lam * word_embeddings(ids_i) + (1 - lam) * word_embeddings(ids_j) (word embeddings only: the model
adds position and token-type embeddings itself); attention mask = elementwise max of both masks;
token_type_ids from i where i is real, else from j. Key = mixup_key(key_i, key_j, lam).
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from ..cache.keys import mixup_key

__all__ = ["mix_inputs", "check_lambdas", "pad_mixed", "mix_embeddings", "mixed_output"]

Mixed = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def mix_inputs(ids_i: np.ndarray, tts_i: np.ndarray, ids_j: np.ndarray, tts_j: np.ndarray,
               pad_id: int) -> Mixed:
    """(ids_i padded to L, ids_j padded to L, token_type_ids, attention mask), all [L]."""
    length = max(len(ids_i), len(ids_j))
    a = np.full(length, pad_id, dtype=np.int32)
    b = np.full(length, pad_id, dtype=np.int32)
    a[:len(ids_i)] = ids_i
    b[:len(ids_j)] = ids_j
    tts = np.zeros(length, dtype=np.int8)
    tts[:len(tts_j)] = tts_j
    tts[:len(tts_i)] = tts_i
    mask = np.ones(length, dtype=np.int64)   # max of two prefix masks: the longer one
    return a, b, tts, mask


def check_lambdas(pairs: Sequence[Tuple[Any, Any, float]]) -> None:
    """UsageError unless every pair's lambda is in [0, 1]."""
    for _, _, lam in pairs:
        if not 0.0 <= float(lam) <= 1.0:
            raise UsageError(f"mixup lambda must be in [0, 1], got {lam!r}")


def pad_mixed(mixed: Sequence[Mixed], batch: Sequence[int], pad_id: int
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids_i, ids_j, attention mask), int64[B, W], of the pairs `batch` (positions in `mixed`,
    each from `mix_inputs`) padded to the batch's longest, W."""
    lengths = [len(mixed[k][0]) for k in batch]
    width = max(lengths)
    a = np.full((len(batch), width), pad_id, dtype=np.int64)
    b = np.full((len(batch), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    for r, (k, n) in enumerate(zip(batch, lengths)):
        a[r, :n], b[r, :n], mask[r, :n] = mixed[k][0], mixed[k][1], mixed[k][3]
    return a, b, mask


def mix_embeddings(embed, a: np.ndarray, b: np.ndarray, lams: Sequence[float], device):
    """lam * embed(a) + (1 - lam) * embed(b), float32 [B, W, H] on `device`, per row's lam."""
    import torch

    lam = torch.tensor([float(x) for x in lams], dtype=torch.float32, device=device)[:, None, None]
    with torch.inference_mode():
        ea = embed(torch.from_numpy(a).to(device)).float()
        eb = embed(torch.from_numpy(b).to(device)).float()
        return lam * ea + (1.0 - lam) * eb


def mixed_output(res: Dict[str, Any], key_i: str, key_j: str, lam: float, mixed: Mixed,
                 truncated: bool) -> Dict[str, Any]:
    """A forward's output `res` on one mixed pair, made storable (key = mixup key, input_ids =
    ids of i padded to L) and carrying "mix": {"key_i", "key_j", "lam", "input_ids_j"} for the
    student side."""
    res.update({"key": mixup_key(key_i, key_j, lam), "input_ids": mixed[0],
                "token_type_ids": mixed[2], "truncated": bool(truncated),
                "mix": {"key_i": key_i, "key_j": key_j, "lam": round(lam, 6),
                        "input_ids_j": mixed[1]}})
    return res
