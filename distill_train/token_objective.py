"""The objective of a token-level run (masked or causal LM student):

    total = w_kd * L_kd + w_gold * L_gold        (token_losses.mix_token_losses)

L_kd is the sparse KD loss against the cached distribution at the stored positions
(token_losses.topk_kd_loss for a `topk:K` cache, sampled_kd_loss for `sample:N`; kind "kl" or
"soft_ce"; temperature as docs/method.md defines it on the K + 1 buckets or by importance
weights), L_gold the cross-entropy against the gold token at the same positions (the LM loss).
Both average over the valid positions of the batch. `pred_loss: none` is the LM loss alone (the
no-KD baseline).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from distiller.common.errors import UsageError

from .token_losses import gold_lm_loss, mix_token_losses, sampled_kd_loss, topk_kd_loss

__all__ = ["TokenObjective", "TOKEN_PRED_LOSSES"]

TOKEN_PRED_LOSSES = ("kl", "soft_ce", "none")


class TokenObjective(nn.Module):
    """Loss of a token-level batch (token_data.collate_tokens) from the student's logits.

    form: the cache's TokenSpec kind ("topk" | "sample"); loss: "kl" | "soft_ce" | "none";
    temperature, scale_by_t2, w_kd, w_gold as in TrainConfig. It owns no parameters; the
    attributes below tell the trainer it needs neither hidden states nor attention maps."""

    kind = "none"                 # no intermediate objective
    needs_attentions = False

    def __init__(self, *, form: str, loss: str = "kl", temperature: float = 1.0,
                 scale_by_t2: bool = True, w_kd: float = 1.0, w_gold: float = 0.0):
        super().__init__()
        if form not in ("topk", "sample"):
            raise UsageError(f"token form must be 'topk' or 'sample', got {form!r}")
        if loss not in TOKEN_PRED_LOSSES:
            raise UsageError(f"pred_loss {loss!r} does not apply to a masked or causal LM "
                             f"student: use one of {TOKEN_PRED_LOSSES} (none: the LM loss alone)")
        self.form, self.loss = form, loss
        self.temperature, self.scale_by_t2 = float(temperature), bool(scale_by_t2)
        self.w_kd = 0.0 if loss == "none" else float(w_kd)
        self.w_gold = float(w_gold)
        if not (self.w_kd or self.w_gold):
            raise UsageError("the token-level objective has no term: w_kd is 0 (or pred_loss "
                             "none) and w_gold is 0; give one a weight")

    def kd(self, z: torch.Tensor, batch: Mapping, mask: torch.Tensor) -> torch.Tensor:
        """The sparse KD loss of student logits z [B, P, V] at the batch's positions."""
        opts = dict(temperature=self.temperature, kind=self.loss, scale_by_t2=self.scale_by_t2)
        if self.form == "topk":
            return topk_kd_loss(z, batch["teacher_ids"], batch["teacher_logprobs"],
                                batch["teacher_log_tail"], mask, **opts)
        return sampled_kd_loss(z, batch["teacher_ids"], batch["teacher_counts"],
                               batch["teacher_logprobs"], mask, **opts)

    def forward(self, *, student_logits: torch.Tensor, student_hidden=None, student_attn=None,
                batch: Mapping) -> Tuple[torch.Tensor, Dict[str, float]]:
        """-> (total loss, {"loss", "pred" (the KD term), "gold"} as floats for logging).
        `student_logits`: [B, P, V], the student's logits at the batch's positions
        (forward.scored_logits)."""
        z = student_logits
        if z.dim() != 3 or tuple(z.shape[:2]) != tuple(batch["positions"].shape):
            raise UsageError(f"student logits {tuple(z.shape)} are not at the batch's "
                             f"positions {tuple(batch['positions'].shape)} "
                             "(forward.scored_logits gives them)")
        mask = batch["position_mask"].to(z.device)
        kd: Optional[torch.Tensor] = self.kd(z, batch, mask) if self.w_kd else None
        gold = gold_lm_loss(z, batch["targets"].to(z.device)) if self.w_gold else None
        total = mix_token_losses(kd, gold, w_kd=self.w_kd, w_gold=self.w_gold)
        parts = {"loss": float(total.detach())}
        if kd is not None:
            parts["pred"] = float(kd.detach())
        if gold is not None:
            parts["gold"] = float(gold.detach())
        return total, parts
