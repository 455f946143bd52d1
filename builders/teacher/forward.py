"""One padded forward over a batch and the extraction of what a cache keeps, vectorised per batch.

Padding, trimming and the split into per-example outputs are whole-batch array operations: the
real tokens of every kept layer are gathered in one step (on the teacher's device) into a packed
[layers, tokens, hidden] array, and each example's hidden state is a view of its rows in it. No
per-example copy is made here; the cache writer converts whole columns at once (encoding.py).

On a GPU the packed outputs go to page-locked host buffers with asynchronous copies and one
synchronisation per batch (measured on a lent H200: benchmarks/README.md, "Scoring on a GPU").
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from .load import LoadedTeacher

__all__ = ["pad_batch", "run_batch", "autocast"]


def pad_batch(ids_list: Sequence[np.ndarray], tts_list: Sequence[np.ndarray], pad_id: int
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_ids int64[B, W], token_type_ids int64[B, W], attention_mask int64[B, W]) of
    sequences padded on the right to the longest one, W."""
    lens = np.fromiter((len(x) for x in ids_list), dtype=np.int64, count=len(ids_list))
    tlens = np.fromiter((len(x) for x in tts_list), dtype=np.int64, count=len(tts_list))
    if len(lens) == 0:
        raise UsageError("pad_batch needs at least one sequence")
    if len(tlens) != len(lens) or (tlens != lens).any():
        raise UsageError("every token_type_ids sequence must be as long as its input_ids")
    real = np.arange(int(lens.max()))[None, :] < lens[:, None]       # [B, W], row-major = order
    ids = np.full(real.shape, pad_id, dtype=np.int64)
    ids[real] = np.concatenate(ids_list)
    tts = np.zeros(real.shape, dtype=np.int64)
    tts[real] = np.concatenate(tts_list)
    return ids, tts, real.astype(np.int64)


# GPU outputs reach the host through freshly page-locked buffers and asynchronous copies (True),
# or plain synchronous copies (False); benchmarks/bench_gpu.py measures both.
PIN_HOST_COPIES = True


def _to_host(tensors: List[Any]) -> List[Any]:
    """numpy arrays of `tensors` (None stays None); one synchronisation on a GPU."""
    import torch

    out = []
    for t in tensors:
        if t is not None and t.device.type == "cuda" and not PIN_HOST_COPIES:
            t = t.cpu()
        elif t is not None and t.device.type == "cuda":
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            host.copy_(t, non_blocking=True)
            t = host
        out.append(t)
    if any(t is not None and t.is_pinned() for t in out):
        torch.cuda.current_stream().synchronize()
    return [None if t is None else t.numpy() for t in out]


def _clipped(t, half: bool):
    """float32 `t`, clipped to +-65504 when it is to be stored as float16 (converting that to
    float16 gives bit for bit what quant.encode does: checked over every float32 value but NaN
    payloads). In place when `t` is already a float32 temporary."""
    t = t.float()
    return t.clamp_(-65504.0, 65504.0) if half else t


def _stored(t, half: bool):
    """float32 `t`, or float16 clipped as the cache stores it (see `_clipped`)."""
    t = _clipped(t, half)
    return t.half() if half else t


def _packed_tokens(states: Sequence[Any], lens: np.ndarray, half: bool):
    """[K, sum(lens), H]: the real tokens of each [B, W, H] state, rows in batch order, gathered
    layer by layer straight into one buffer (no padded stack of all layers)."""
    import torch

    first = states[0]
    bsz, width, hidden = first.shape
    real = (torch.arange(width)[None, :] < torch.from_numpy(lens)[:, None]).reshape(-1)
    index = torch.nonzero(real).squeeze(1).to(first.device)
    out = torch.empty((len(states), len(index), hidden), device=first.device,
                      dtype=torch.float16 if half else torch.float32)
    for k, h in enumerate(states):
        # copy_ converts into the packed buffer: no float16 temporary per layer
        out[k].copy_(_clipped(torch.index_select(h.reshape(-1, hidden), 0, index), half))
    return out


def extract_states(states, attn, kwargs: Dict[str, Any], lens: np.ndarray, pooling: str,
                   half: bool):
    """(hidden, attentions) of a forward as a cache keeps them: hidden states packed per token
    ("none") or pooled ("cls"/"mean" over the attention mask), both in their storage precision;
    None where the forward returned none."""
    import torch

    hidden = None
    if states:
        if pooling == "none":
            hidden = _packed_tokens(states, lens, half)
        else:
            stacked = torch.stack(list(states)).float()
            if pooling == "cls":
                stacked = stacked[:, :, 0]
            else:
                m = kwargs["attention_mask"].to(stacked.dtype)
                stacked = (stacked * m[None, :, :, None]).sum(2) / m.sum(1)[None, :, None]
            hidden = _stored(stacked, half)
    if attn is not None:
        attn = _stored(attn, half)
    return hidden, attn


def autocast(loaded: LoadedTeacher):
    """The autocast context of a loaded teacher's forward (a no-op at float32)."""
    import torch

    compute = loaded.compute_dtype
    if compute == "float32":
        return contextlib.nullcontext()
    return torch.autocast(loaded.device.type, dtype=getattr(torch, compute))


def run_batch(loaded: LoadedTeacher, ids_list: Sequence[np.ndarray],
              tts_list: Sequence[np.ndarray], *, inputs_embeds=None,
              attention_mask: Optional[np.ndarray] = None,
              store_as: Optional[str] = None) -> List[Dict[str, Any]]:
    """One padded forward of a loaded teacher; per example {"logits" float32[C] (a
    question-answering teacher's per-token start/end logits: float32[n, 2]), "hidden" {layer:
    [n, H] or [H]},
    "attentions" {layer: [heads, n, n]} when kept}, n = the example's real length (its number of
    ones in `attention_mask` when one is given, as for mixup inputs).

    store_as: "float16" gives hidden states and attention maps in float16, clipped as a float16
    cache stores them (half the memory; the writer copies them as they are); else float32."""
    import torch

    pad_id = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    ids, tts, mask = pad_batch(ids_list, tts_list, pad_id)
    if attention_mask is not None:
        mask = np.asarray(attention_mask, dtype=np.int64)
    lens = mask.sum(1)
    half = store_as == "float16"
    device = loaded.device
    kwargs: Dict[str, Any] = {"attention_mask": torch.from_numpy(mask).to(device)}
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = torch.from_numpy(ids).to(device)
    if loaded.uses_token_types:
        kwargs["token_type_ids"] = torch.from_numpy(tts).to(device)
    layers, attn_layers, pooling = loaded.layers, loaded.attention_layers, loaded.config.pooling
    with torch.inference_mode():
        with autocast(loaded):   # the forward only: the extraction below runs in float32
            logits, states, attn = loaded.backend.forward(kwargs, layers, attn_layers)
        hidden, attn = extract_states(states, attn, kwargs, lens, pooling, half)
        logits, hidden, attn = _to_host([logits.float(), hidden, attn])
    ends = np.cumsum(lens).tolist()
    starts = [0] + ends[:-1]
    results: List[Dict[str, Any]] = []
    for r, (s, e) in enumerate(zip(starts, ends)):
        # per-token logits [B, W, 2] (question answering) are trimmed like hidden states
        res: Dict[str, Any] = {"logits": logits[r, :e - s] if logits.ndim == 3 else logits[r]}
        if hidden is None:
            res["hidden"] = {}
        elif pooling == "none":
            res["hidden"] = {l: hidden[k, s:e] for k, l in enumerate(layers)}
        else:
            res["hidden"] = {l: hidden[k, r] for k, l in enumerate(layers)}
        if attn is not None:
            n = e - s
            res["attentions"] = {l: attn[k, r, :, :n, :n] for k, l in enumerate(attn_layers)}
        results.append(res)
    return results
