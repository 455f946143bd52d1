"""Prediction-layer objectives of extractive question answering (start and end positions).

Shapes: logits [B, L, 2] (start, end per position of a context window), `mask` [B, L] bool:
the positions an answer may take, the window's context tokens and its [CLS] token (the "no
answer" position); everything else (question, separators, padding) is left out of every
softmax, for teacher and student alike. labels [B, 2]: gold (start, end) positions, -100 for
a window without a label.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distiller.common.errors import UsageError

__all__ = ["SpanKDLoss", "SpanGoldLoss", "MASKED"]

MASKED = -1e9   # a logit no softmax gives weight to (finite: no inf - inf in the gradients)


def _check(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> None:
    if student.shape != teacher.shape or student.dim() != 3 or student.shape[-1] != 2:
        raise UsageError(f"span logits must both be [B, L, 2], got student "
                         f"{tuple(student.shape)} and teacher {tuple(teacher.shape)}")
    if mask.shape != student.shape[:2]:
        raise UsageError(f"span mask must be [B, L] = {tuple(student.shape[:2])}, got "
                         f"{tuple(mask.shape)}")


class SpanKDLoss(nn.Module):
    """Distillation of the start and the end distributions over positions, summed (as the
    study does): kind "kl" = KL(p_t || p_s), "soft_ce" = -sum p_t log p_s, each over the masked
    positions at temperature tau and averaged over the batch (times tau^2 when scale_by_t2);
    kind "mse" = mean squared error of the logits over the masked positions, start plus end."""

    def __init__(self, temperature: float = 1.0, *, kind: str = "kl", scale_by_t2: bool = True):
        super().__init__()
        if not temperature > 0:
            raise UsageError(f"temperature must be > 0, got {temperature!r}")
        if kind not in ("kl", "soft_ce", "mse"):
            raise UsageError(f"SpanKDLoss kind must be kl, soft_ce or mse, got {kind!r}")
        self.temperature, self.kind, self.scale_by_t2 = float(temperature), kind, scale_by_t2

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """student, teacher [B, L, 2], mask [B, L] -> scalar."""
        _check(student, teacher, mask)
        keep = mask.bool()[..., None]                               # [B, L, 1]
        s, t = student.float(), teacher.float().to(student.device)
        if self.kind == "mse":
            n = keep.sum(dim=(0, 1)).clamp(min=1)                   # [2]
            return (((s - t) ** 2) * keep).sum(dim=(0, 1)).div(n).sum()
        tau = self.temperature
        log_ps = F.log_softmax((s / tau).masked_fill(~keep, MASKED), dim=1)
        log_pt = F.log_softmax((t / tau).masked_fill(~keep, MASKED), dim=1)
        pt = log_pt.exp()
        per = pt * (log_pt - log_ps) if self.kind == "kl" else -pt * log_ps
        loss = (per * keep).sum(dim=1).sum(dim=-1).mean()           # start + end, mean over B
        return loss * (tau * tau) if self.scale_by_t2 else loss


class SpanGoldLoss(nn.Module):
    """Cross-entropy of the gold start and end positions over the masked positions, averaged
    over the two (as a Hugging Face QA head's own loss); rows labelled -100 are left out."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """logits [B, L, 2], labels [B, 2] (Long), mask [B, L] -> scalar."""
        if labels.dim() != 2 or labels.shape[-1] != 2:
            raise UsageError(f"span labels must be [B, 2] (start, end), got "
                             f"{tuple(labels.shape)}")
        known = labels[:, 0] != -100
        if not bool(known.any()):
            return logits.sum() * 0.0
        z = logits.float().masked_fill(~mask.bool()[..., None], MASKED)[known]
        gold = labels[known].long()
        return 0.5 * (F.cross_entropy(z[..., 0], gold[:, 0]) +
                      F.cross_entropy(z[..., 1], gold[:, 1]))
