"""Teacher outputs on mixup inputs (issue 8), as docs/cache.md ("Mixup rows") defines them.

Pair (i, j, lam): both token sequences padded to L = max(len_i, len_j); input embeddings =
lam * word_embeddings(ids_i) + (1 - lam) * word_embeddings(ids_j) (word embeddings only: the model
adds position and token-type embeddings itself); attention mask = elementwise max of both masks;
token_type_ids from i where i is real, else from j. Key = mixup_key(key_i, key_j, lam).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from .batching import plan_batches
from ..cache.keys import mixup_key
from .model import as_text_pair

if TYPE_CHECKING:
    from .model import Teacher

__all__ = ["score_mixed", "mix_inputs"]


def mix_inputs(ids_i: np.ndarray, tts_i: np.ndarray, ids_j: np.ndarray, tts_j: np.ndarray,
               pad_id: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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


def score_mixed(teacher: "Teacher",
                pairs: Sequence[Tuple[Any, Any, float]]) -> List[Dict[str, Any]]:
    """Teacher outputs of mixed pairs, in order. Each dict is storable in a cache of the
    teacher's spec (key = mixup key; input_ids = ids of i padded to L; hidden trimmed to L) and
    carries "mix": {"key_i", "key_j", "lam", "input_ids_j"} for the student side."""
    import torch

    teacher._require_loaded()
    pairs = list(pairs)
    for _, _, lam in pairs:
        if not 0.0 <= float(lam) <= 1.0:
            raise UsageError(f"mixup lambda must be in [0, 1], got {lam!r}")
    firsts = [p[0] for p in pairs]
    seconds = [p[1] for p in pairs]
    tok_i, tok_j = teacher.tokenize(firsts), teacher.tokenize(seconds)
    pad_id = teacher.tokenizer.pad_token_id if teacher.tokenizer.pad_token_id is not None else 0
    mixed = [mix_inputs(ti[0], ti[1], tj[0], tj[1], pad_id) for ti, tj in zip(tok_i, tok_j)]
    lengths = [len(m[0]) for m in mixed]
    embed = teacher.model.get_input_embeddings()
    cfg = teacher.config
    out: List[Dict[str, Any]] = [None] * len(pairs)  # type: ignore[list-item]
    for batch in plan_batches(lengths, max_tokens=cfg.max_tokens_per_batch,
                              max_batch_size=cfg.max_batch_size, window=cfg.sort_window):
        width = max(lengths[k] for k in batch)
        a = np.full((len(batch), width), pad_id, dtype=np.int64)
        b = np.full((len(batch), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        lam = torch.tensor([float(pairs[k][2]) for k in batch], dtype=torch.float32,
                           device=teacher.device)[:, None, None]
        for r, k in enumerate(batch):
            n = lengths[k]
            a[r, :n], b[r, :n], mask[r, :n] = mixed[k][0], mixed[k][1], mixed[k][3]
        with torch.inference_mode():
            ea = embed(torch.from_numpy(a).to(teacher.device)).float()
            eb = embed(torch.from_numpy(b).to(teacher.device)).float()
            embeds = lam * ea + (1.0 - lam) * eb
        results = teacher.forward_batch([mixed[k][0] for k in batch], [mixed[k][2] for k in batch],
                                        inputs_embeds=embeds, attention_mask=mask)
        for k, res in zip(batch, results):
            ka = teacher.cache_key(*as_text_pair(firsts[k]))
            kb = teacher.cache_key(*as_text_pair(seconds[k]))
            lam_k = float(pairs[k][2])
            res.update({"key": mixup_key(ka, kb, lam_k), "input_ids": mixed[k][0],
                        "token_type_ids": mixed[k][2],
                        "truncated": bool(tok_i[k][2] or tok_j[k][2]),
                        "mix": {"key_i": ka, "key_j": kb, "lam": round(lam_k, 6),
                                "input_ids_j": mixed[k][1]}})
            out[k] = res
    return out
