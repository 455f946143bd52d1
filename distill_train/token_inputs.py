"""Token-level inputs made from text: what a masked or causal LM is scored on.

One input is a mapping with the fields of a token-level cache row (docs/method.md, "Token-level
distillation") without the teacher's distribution:

- `input_ids`  int64 [L]: the tokens the model sees (masked_lm: after masking);
- `positions`  int64 [P]: the positions scored — masked_lm: the masked ones; causal_lm:
  0..L-2 (position p predicts the token at p + 1);
- `targets`    int64 [P]: the gold token at each position (masked_lm: the original token;
  causal_lm: input_ids[p + 1]);
- `token_type_ids` int64 [L] when the tokenizer gives them.

`distiller evaluate` scores LM students on text files with these; the tests and the online
baseline (token_online.py) build their teacher rows from them. Masking here is seeded per record
(the record's id and a seed): each non-special token is masked with probability `mask_prob` and
replaced by the mask token, so the same text gives the same input in every run and process.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

__all__ = ["LM_PROBLEMS", "masked_input", "causal_input", "text_inputs"]

LM_PROBLEMS = ("masked_lm", "causal_lm")


def _ids(values, name: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.int64).reshape(-1)
    if out.size and out.min() < 0:
        raise UsageError(f"{name} holds a negative token id ({int(out.min())})")
    return out


def masked_input(ids: Sequence[int], special: Sequence[int], *, mask_id: int, mask_prob: float,
                 seed: int) -> Dict[str, np.ndarray]:
    """Mask each token whose `special` flag is 0 with probability `mask_prob` (a generator
    seeded by `seed`): {input_ids with those tokens replaced by `mask_id`, positions, targets}."""
    if not 0.0 < mask_prob <= 1.0:
        raise UsageError(f"mask probability must be in (0, 1], got {mask_prob!r}")
    ids = _ids(ids, "input_ids")
    special = np.asarray(special, dtype=bool).reshape(-1)
    if special.shape != ids.shape:
        raise UsageError(f"special-token flags of length {len(special)} for {len(ids)} tokens")
    draw = np.random.default_rng(seed).random(len(ids))
    positions = np.flatnonzero((draw < mask_prob) & ~special).astype(np.int64)
    masked = ids.copy()
    masked[positions] = mask_id
    return {"input_ids": masked, "positions": positions, "targets": ids[positions]}


def causal_input(ids: Sequence[int]) -> Dict[str, np.ndarray]:
    """Next-token prediction at every position but the last: {input_ids, positions 0..L-2,
    targets input_ids[1:]}."""
    ids = _ids(ids, "input_ids")
    return {"input_ids": ids, "positions": np.arange(max(0, len(ids) - 1), dtype=np.int64),
            "targets": ids[1:].copy()}


def text_inputs(records: Sequence[Mapping[str, Any]], tokenizer, problem_type: str, *,
                max_length: int = 128, mask_prob: float = 0.15, seed: int = 0
                ) -> Dict[str, Dict[str, np.ndarray]]:
    """record id -> input, for records with `id`, `text_a` and optionally `text_b` (taskdata's
    records); masked_lm masks with a seed derived from (`seed`, the record's id)."""
    if problem_type not in LM_PROBLEMS:
        raise UsageError(f"problem type must be one of {LM_PROBLEMS}, got {problem_type!r}")
    mask_id: Optional[int] = getattr(tokenizer, "mask_token_id", None)
    if problem_type == "masked_lm" and mask_id is None:
        raise UsageError("masked-LM inputs need a tokenizer with a mask token; this one has none")
    out: Dict[str, Dict[str, np.ndarray]] = {}
    for rec in records:
        enc = tokenizer(rec["text_a"], rec.get("text_b"), truncation=True, max_length=max_length,
                        return_special_tokens_mask=True)
        if problem_type == "masked_lm":
            item = masked_input(enc["input_ids"], enc["special_tokens_mask"], mask_id=mask_id,
                                mask_prob=mask_prob, seed=derive_seed(seed, "mask", rec["id"]))
        else:
            item = causal_input(enc["input_ids"])
        if "token_type_ids" in enc:
            item["token_type_ids"] = _ids(enc["token_type_ids"], "token_type_ids")
        out[str(rec["id"])] = item
    return out
