"""One padded forward of a token-level teacher (a masked or causal LM) and the sparse forms of its
distributions at each record's predicted positions (docs/cache.md, "Token-level caches").

Only the rows of the predicted positions are kept (on the teacher's device): with the eager
backend the model's output embeddings (the LM head's vocabulary projection, its largest matrix
product: a masked LM predicts about one position in seven) are fed only the hidden states of those
positions, through a forward pre-hook; a backend or model the hook cannot reach gives logits
[B, W, V], gathered after. The rows are turned into the cache's sparse form there
(sparse_tokens): top-k over
blocks of at most `ROWS_PER_BLOCK` positions of the whole batch (rows are independent, so the
blocks change nothing but the memory: a few [rows, V] float32 temporaries), draws record by
record (each record has its own seed). Hidden states and attention maps are extracted as the
sentence-level forward does (distiller.builders.teacher.forward), from the same `LoadedTeacher`.
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

from ..cache.sparse_tokens import TokenSpec, TopKTokens, sample_tokens, topk_tokens
from .forward import _to_host, autocast, extract_states, pad_batch
from .load import LoadedTeacher

__all__ = ["run_token_batch", "ROWS_PER_BLOCK"]

ROWS_PER_BLOCK = 256   # positions turned into top-k forms at once


def _topk_split(rows, k: int, counts: Sequence[int]) -> List[TopKTokens]:
    """Per-record top-k forms of the gathered logit rows [sum(counts), V]."""
    parts = [topk_tokens(rows[a:a + ROWS_PER_BLOCK], k)
             for a in range(0, max(1, rows.shape[0]), ROWS_PER_BLOCK)]
    ids = np.concatenate([p.ids for p in parts])
    lps = np.concatenate([p.logprobs for p in parts])
    tails = np.concatenate([p.log_tail for p in parts])
    ends = np.cumsum(counts)
    return [TopKTokens(ids=ids[e - c:e], logprobs=lps[e - c:e], log_tail=tails[e - c:e])
            for c, e in zip(counts, ends)]


@contextlib.contextmanager
def _projected_rows(loaded: LoadedTeacher, flat) -> Iterator[List[bool]]:
    """Within it, the eager model's output embeddings project only the hidden rows `flat` (indices
    into the batch's [B * W] positions); yields a list that holds True once the hook ran (the
    logits are then [len(flat), V])."""
    fired: List[bool] = []
    model = loaded.backend.model if loaded.backend.name == "eager" else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield fired
        return

    def at_rows(module, args):
        fired.append(True)
        hidden = args[0]
        return (hidden.reshape(-1, hidden.shape[-1])[flat.to(hidden.device)],) + tuple(args[1:])

    handle = head.register_forward_pre_hook(at_rows)
    try:
        yield fired
    finally:
        handle.remove()


def run_token_batch(loaded: LoadedTeacher, ids_list: Sequence[np.ndarray],
                    tts_list: Sequence[np.ndarray], positions: Sequence[np.ndarray],
                    seeds: Sequence[int], spec: TokenSpec,
                    store_as: Optional[str] = None) -> List[Dict[str, Any]]:
    """One padded forward of a loaded LM teacher; per record {"tokens" (its sparse form at
    `positions`), "hidden" {layer: [n, H] or [H]}, "attentions" {layer: [heads, n, n]} when
    kept}. seeds: each record's draw seed (used by `sample:N`)."""
    import torch

    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    ids, tts, mask = pad_batch(ids_list, tts_list, pad_id)
    lens = mask.sum(1)
    half = store_as == "float16"
    device = loaded.device
    kwargs: Dict[str, Any] = {"input_ids": torch.from_numpy(ids).to(device),
                              "attention_mask": torch.from_numpy(mask).to(device)}
    if loaded.uses_token_types:
        kwargs["token_type_ids"] = torch.from_numpy(tts).to(device)
    layers, attn_layers, pooling = loaded.layers, loaded.attention_layers, loaded.config.pooling
    width = ids.shape[1]
    counts = [len(p) for p in positions]
    flat = np.concatenate([b * width + np.asarray(p, dtype=np.int64)
                           for b, p in enumerate(positions)] + [np.zeros(0, np.int64)])
    index = torch.from_numpy(flat).to(device)
    with torch.inference_mode():
        with autocast(loaded), _projected_rows(loaded, index) as fired:
            # the forward only: the extraction below runs in float32
            logits, states, attn = loaded.backend.forward(kwargs, layers, attn_layers)
        rows = logits if fired else logits.reshape(-1, logits.shape[-1])[index.to(logits.device)]
        del logits
        if spec.kind == "topk":
            tokens = _topk_split(rows, spec.k, counts)
        else:
            ends = np.cumsum(counts)
            tokens = [sample_tokens(rows[e - c:e], spec.k, int(seed))
                      for c, e, seed in zip(counts, ends, seeds)]
        hidden, attn = extract_states(states, attn, kwargs, lens, pooling, half)
        hidden, attn = _to_host([hidden, attn])
    ends = np.cumsum(lens).tolist()
    starts = [0] + ends[:-1]
    results: List[Dict[str, Any]] = []
    for r, (s, e) in enumerate(zip(starts, ends)):
        res: Dict[str, Any] = {"tokens": tokens[r]}
        if hidden is None:
            res["hidden"] = {}
        elif pooling == "none":
            res["hidden"] = {l: hidden[k, s:e] for k, l in enumerate(layers)}
        else:
            res["hidden"] = {l: hidden[k, r] for k, l in enumerate(layers)}
        if attn is not None:
            res["attentions"] = {l: attn[k, r, :, :e - s, :e - s]
                                 for k, l in enumerate(attn_layers)}
        results.append(res)
    return results
