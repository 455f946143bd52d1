"""Student-side losses on sparse per-token teacher distributions (docs/method.md, "Token-level
distillation"): top-k with the tail as one bucket, the sampled (random-sampling KD) estimator,
the gold language-model loss, and their mix.

Shapes: student logits are [..., V] (e.g. [B, L, V], or [P, V] gathered at the positions the
cache holds); the teacher's tensors share the leading dimensions; `mask` [...] marks the valid
positions (None: all); reduction "mean" (the default) averages over them, "none" gives the
loss per position (0 at invalid ones) for per-token weighting or evaluation. Padded positions
may hold anything (ids -1, NaN): they are replaced by harmless values before any arithmetic, so
they reach neither the loss nor the gradient. A batch without a valid position gives a zero that
still has a gradient (so a step with no masked token is a no-op, not a NaN).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from distiller.builders.cache.sparse_tokens import SampledTokens, TopKTokens
from distiller.common.errors import UsageError

__all__ = ["topk_kd_loss", "sampled_kd_loss", "gold_lm_loss", "mix_token_losses",
           "TopKBatch", "SampleBatch", "pad_topk", "pad_samples"]

KINDS = ("kl", "soft_ce")


def _check(temperature: float, kind: str, reduction: str) -> float:
    if reduction not in ("mean", "none"):
        raise UsageError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise UsageError(f"temperature must be a finite number > 0, got {temperature!r}")
    if kind not in KINDS:
        raise UsageError(f"token KD loss kind must be one of {KINDS}, got {kind!r}")
    return float(temperature)


def _mask(student_logits: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    lead = student_logits.shape[:-1]
    if mask is None:
        return torch.ones(lead, dtype=torch.bool, device=student_logits.device)
    if tuple(mask.shape) != tuple(lead):
        raise UsageError(f"mask of shape {tuple(mask.shape)} does not match the student's "
                         f"positions {tuple(lead)}")
    return mask.to(device=student_logits.device, dtype=torch.bool)


def _reduce(per_position: torch.Tensor, mask: torch.Tensor, student_logits: torch.Tensor,
            reduction: str, scale: float) -> torch.Tensor:
    """x scale, then the mean over the valid positions (a zero with a gradient when none is), or
    per position (reduction "none", 0 at invalid ones)."""
    per_position = torch.where(mask, per_position, torch.zeros_like(per_position)) * scale
    if reduction == "none":
        return per_position
    total = per_position.sum()
    count = mask.sum()
    if not bool(count):
        return student_logits.sum() * 0.0
    return total / count


def _plogp_diff(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """sum p (log p - log q) over the last axis, 0 where p = 0 (log p = -inf)."""
    has = log_p > float("-inf")
    safe_p = torch.where(has, log_p, torch.zeros_like(log_p))
    return torch.where(has, safe_p.exp() * (safe_p - log_q), torch.zeros_like(log_p)).sum(-1)


def _neg_plogq(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """-sum p log q over the last axis, 0 where p = 0."""
    has = log_p > float("-inf")
    p = torch.where(has, log_p, torch.zeros_like(log_p)).exp()
    return -torch.where(has, p * log_q, torch.zeros_like(log_p)).sum(-1)


def topk_kd_loss(student_logits: torch.Tensor, ids: torch.Tensor, logprobs: torch.Tensor,
                 log_tail: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                 temperature: float = 1.0, kind: str = "kl", scale_by_t2: bool = True,
                 reduction: str = "mean") -> torch.Tensor:
    """KL(teacher || student) (kind "kl") or the cross-entropy (kind "soft_ce": the KL plus the
    teacher's entropy, same gradients) over K + 1 buckets: the K stored tokens and the rest.

    ids, logprobs [..., K]; log_tail [...]. The student's buckets are its log-probabilities at
    the K ids and the log-sum-exp of its logits over every other id (computed on a copy of the
    logits with the K ids set to -inf: exact, where log(1 - sum) would cancel). Temperature acts
    the same way on both sides' K + 1 buckets: bucket log-probabilities divided by tau and
    renormalised (p_i^(1/tau) / sum_j p_j^(1/tau), the tail counted as one token), then x tau^2.
    The teacher's buckets are renormalised at tau = 1 too, which absorbs the float16 rounding of
    the stored values. With K = V there is no tail bucket and this is the dense loss.
    """
    t = _check(temperature, kind, reduction)
    z = student_logits.float()
    lead, V, K = z.shape[:-1], z.shape[-1], ids.shape[-1]
    if tuple(ids.shape) != tuple(lead) + (K,) or tuple(logprobs.shape) != tuple(ids.shape) \
            or tuple(log_tail.shape) != tuple(lead) or not 1 <= K <= V:
        raise UsageError(f"top-k teacher tensors ids {tuple(ids.shape)}, logprobs "
                         f"{tuple(logprobs.shape)}, log_tail {tuple(log_tail.shape)} do not fit "
                         f"student logits {tuple(z.shape)} (K <= V)")
    valid = _mask(z, mask)
    keep = valid.unsqueeze(-1)
    ids = torch.where(keep, ids.to(z.device).long(), torch.zeros((), dtype=torch.long,
                                                                  device=z.device))
    teacher = torch.where(keep, logprobs.to(z.device).float(), torch.zeros((), device=z.device))
    s_top = z.gather(-1, ids)
    if K < V:   # the tail: each side's remaining mass as one more bucket
        tail = torch.where(valid, log_tail.to(z.device).float(), torch.zeros((), device=z.device))
        teacher = torch.cat([teacher, tail.unsqueeze(-1)], dim=-1)
        s_tail = torch.logsumexp(z.scatter(-1, ids, float("-inf")), dim=-1, keepdim=True)
        s_top = torch.cat([s_top, s_tail], dim=-1)
    log_p = torch.log_softmax(teacher / t, dim=-1)
    log_q = torch.log_softmax(s_top / t, dim=-1)
    per = _plogp_diff(log_p, log_q) if kind == "kl" else _neg_plogq(log_p, log_q)
    return _reduce(per, valid, student_logits, reduction, t * t if scale_by_t2 else 1.0)


def sampled_kd_loss(student_logits: torch.Tensor, ids: torch.Tensor, counts: torch.Tensor,
                    logprobs: torch.Tensor, mask: Optional[torch.Tensor] = None, *,
                    temperature: float = 1.0, kind: str = "kl", scale_by_t2: bool = True,
                    reduction: str = "mean") -> torch.Tensor:
    """The random-sampling estimate of the dense KL (kind "kl") or cross-entropy ("soft_ce").

    ids, counts, logprobs [..., M]: the distinct ids drawn at a position, how often, and the
    teacher's log-probability of each (count 0 = padding); N = sum of counts. At tau = 1 the
    weights are w_v = c_v / N and
        CE_hat = -sum_v w_v log q(v),     KL_hat = sum_v w_v (log p(v) - log q(v)),
    unbiased for the dense CE and KL since E[c_v / N] = p(v). At tau != 1 the target is the
    teacher at tau, r = p^(1/tau) / Z, reached by self-normalised importance weights
    w_v = c_v p(v)^(1/tau - 1) / sum_u c_u p(u)^(1/tau - 1), with log r(v) = log p(v) / tau -
    log Z_hat, Z_hat = sum_u c_u p(u)^(1/tau - 1) / N: consistent (exact as N grows), not
    unbiased. q is the student at tau, softmax(z / tau); the loss is x tau^2.
    """
    t = _check(temperature, kind, reduction)
    z = student_logits.float()
    lead, M = z.shape[:-1], ids.shape[-1]
    if tuple(ids.shape) != tuple(lead) + (M,) or tuple(counts.shape) != tuple(ids.shape) \
            or tuple(logprobs.shape) != tuple(ids.shape) or M < 1:
        raise UsageError(f"sampled teacher tensors ids {tuple(ids.shape)}, counts "
                         f"{tuple(counts.shape)}, logprobs {tuple(logprobs.shape)} do not fit "
                         f"student logits {tuple(z.shape)}")
    valid = _mask(z, mask)
    zero = torch.zeros((), device=z.device)
    # padded positions get one draw of id 0 (nothing below is then -inf - -inf); masked after
    counts = torch.where(valid.unsqueeze(-1), counts.to(z.device).float(),
                         (torch.arange(M, device=z.device) == 0).float())
    drawn = counts > 0
    real = drawn & valid.unsqueeze(-1)
    ids = torch.where(real, ids.to(z.device).long(), torch.zeros((), dtype=torch.long,
                                                                 device=z.device))
    log_pt = torch.where(real, logprobs.to(z.device).float(), zero)
    a = 1.0 / t
    log_w = torch.where(drawn, counts.clamp_min(1).log() + (a - 1.0) * log_pt,
                        torch.full((), float("-inf"), device=z.device))
    log_norm = torch.logsumexp(log_w, dim=-1, keepdim=True)
    w = (log_w - log_norm).exp()                       # 0 at padding; c_v / N at tau = 1
    log_q = z.gather(-1, ids) / t - torch.logsumexp(z / t, dim=-1, keepdim=True)
    if kind == "kl":
        log_z_hat = log_norm - counts.sum(-1, keepdim=True).log()
        per = (w * torch.where(drawn, a * log_pt - log_z_hat - log_q, zero)).sum(-1)
    else:
        per = -(w * torch.where(drawn, log_q, zero)).sum(-1)
    return _reduce(per, valid, student_logits, reduction, t * t if scale_by_t2 else 1.0)


def gold_lm_loss(logits: torch.Tensor, labels: torch.Tensor, *, shift: bool = False
                 ) -> torch.Tensor:
    """Cross-entropy of logits [..., V] against token labels [...] (-100: no label), mean over
    the labelled positions; zero with a gradient when none is. shift=True is a causal LM's
    next-token loss: the logits at position t are scored against the label at t + 1."""
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise UsageError(f"labels of shape {tuple(labels.shape)} do not match logits "
                         f"{tuple(logits.shape)}")
    if shift:
        logits, labels = logits[..., :-1, :], labels[..., 1:]
    flat = logits.reshape(-1, logits.shape[-1]).float()
    gold = labels.reshape(-1).to(flat.device).long()
    if not bool((gold != -100).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(flat, gold, ignore_index=-100)


def mix_token_losses(kd: Optional[torch.Tensor], gold: Optional[torch.Tensor], *,
                     w_kd: float = 1.0, w_gold: float = 0.0) -> torch.Tensor:
    """w_kd x kd + w_gold x gold; a term whose weight is 0 may be None (and is not computed).
    The weights are finite and >= 0, and not both 0."""
    for name, w in (("w_kd", w_kd), ("w_gold", w_gold)):
        if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
            raise UsageError(f"{name} must be a finite number >= 0, got {w!r}")
    if not (w_kd or w_gold):
        raise UsageError("w_kd and w_gold are both 0: nothing to train on; give one a weight")
    terms = [(w_kd, kd, "kd"), (w_gold, gold, "gold")]
    missing = [name for w, x, name in terms if w and x is None]
    if missing:
        raise UsageError(f"the {missing[0]} loss has weight > 0 but was not computed")
    return sum(float(w) * x for w, x, _ in terms if w)


# --- padded batches of cached records ----------------------------------------------------------

@dataclasses.dataclass
class TopKBatch:
    """ids long [B, L, K], logprobs float32 [B, L, K], log_tail float32 [B, L], mask bool [B, L]
    (L = the most positions of a record, or the length asked for)."""
    ids: torch.Tensor
    logprobs: torch.Tensor
    log_tail: torch.Tensor
    mask: torch.Tensor


@dataclasses.dataclass
class SampleBatch:
    """ids long [B, L, M], counts float32 [B, L, M] (0 = padding), logprobs float32 [B, L, M],
    mask bool [B, L] (M = the most distinct ids drawn at one position)."""
    ids: torch.Tensor
    counts: torch.Tensor
    logprobs: torch.Tensor
    mask: torch.Tensor


def _length(records: Sequence, length: Optional[int]) -> int:
    most = max((r.positions for r in records), default=0)
    if length is None:
        return most
    if length < most:
        raise UsageError(f"a record has {most} positions, more than the padded length {length}")
    return int(length)


def pad_topk(records: Sequence[TopKTokens], k: int, length: Optional[int] = None) -> TopKBatch:
    """Records of the top-k form, padded to one batch (K = k for an empty batch too)."""
    B, L = len(records), _length(records, length)
    ids = np.zeros((B, L, k), np.int64)
    lps = np.zeros((B, L, k), np.float32)
    tails = np.zeros((B, L), np.float32)
    mask = np.zeros((B, L), bool)
    for b, r in enumerate(records):
        p = r.positions
        ids[b, :p], lps[b, :p], tails[b, :p], mask[b, :p] = r.ids, r.logprobs, r.log_tail, True
    return TopKBatch(*(torch.from_numpy(x) for x in (ids, lps, tails, mask)))


def pad_samples(records: Sequence[SampledTokens], length: Optional[int] = None) -> SampleBatch:
    """Records of the sampled form, padded to one batch."""
    B, L = len(records), _length(records, length)
    M = max((int(r.sizes.max()) for r in records if r.positions), default=1)
    ids = np.zeros((B, L, M), np.int64)
    counts = np.zeros((B, L, M), np.float32)
    lps = np.zeros((B, L, M), np.float32)
    mask = np.zeros((B, L), bool)
    for b, r in enumerate(records):
        pos, slot = _entry_places(r.sizes)
        ids[b, pos, slot], counts[b, pos, slot], lps[b, pos, slot] = r.ids, r.counts, r.logprobs
        mask[b, :r.positions] = True
    return SampleBatch(*(torch.from_numpy(x) for x in (ids, counts, lps, mask)))


def _entry_places(sizes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(position, slot within the position) of each flat entry of a record of these sizes."""
    sizes = np.asarray(sizes, dtype=np.int64)
    pos = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else sizes
    return pos, np.arange(len(pos)) - np.repeat(starts, sizes)
