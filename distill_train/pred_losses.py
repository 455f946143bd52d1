"""Prediction-layer objectives (docs/method.md, "The objective").

Shapes: logits are [B, C] (C = 1 for regression); `weights` in every loss is an optional [B]
per-example weight (1 = real example); all losses return a scalar mean over the batch.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from distiller.common.errors import UsageError

__all__ = ["SoftTargetLoss", "LogitMSELoss", "GoldLoss"]


def _mean(per_example: torch.Tensor) -> torch.Tensor:
    return per_example.mean() if per_example.numel() else per_example.sum()


class SoftTargetLoss(nn.Module):
    """Soft-target loss between teacher and student class distributions at temperature tau.

    kind "kl": KL(p_t || p_s); kind "soft_ce": -sum p_t log p_s (KL plus the teacher's entropy,
    same gradients). Both are averaged over the batch and multiplied by tau^2 when
    `scale_by_t2` (keeps gradient magnitudes comparable across temperatures, Hinton et al.).
    """

    def __init__(self, temperature: float = 1.0, *, kind: str = "kl", scale_by_t2: bool = True):
        super().__init__()
        if not temperature > 0:
            raise UsageError(f"temperature must be > 0, got {temperature!r}")
        if kind not in ("kl", "soft_ce"):
            raise UsageError(f"SoftTargetLoss kind must be 'kl' or 'soft_ce', got {kind!r}")
        self.temperature, self.kind, self.scale_by_t2 = float(temperature), kind, scale_by_t2

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """student_logits, teacher_logits: [B, C] -> scalar."""
        if student_logits.shape != teacher_logits.shape:
            raise UsageError(f"logit shapes differ: student {tuple(student_logits.shape)}, "
                             f"teacher {tuple(teacher_logits.shape)}")
        t = self.temperature
        log_ps = F.log_softmax(student_logits.float() / t, dim=-1)
        log_pt = F.log_softmax(teacher_logits.float() / t, dim=-1)
        pt = log_pt.exp()
        if self.kind == "kl":
            per = (pt * (log_pt - log_ps)).sum(-1)
        else:
            per = -(pt * log_ps).sum(-1)
        loss = _mean(per)
        return loss * (t * t) if self.scale_by_t2 else loss


class LogitMSELoss(nn.Module):
    """Mean squared error between student and teacher logits, mean over B x C."""

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        if student_logits.shape != teacher_logits.shape:
            raise UsageError(f"logit shapes differ: student {tuple(student_logits.shape)}, "
                             f"teacher {tuple(teacher_logits.shape)}")
        return F.mse_loss(student_logits.float(), teacher_logits.float())


class GoldLoss(nn.Module):
    """Loss against gold labels: cross-entropy for classification, MSE for regression.

    labels: [B] class ids (Long), or [B, C] soft/mixed one-hot targets (mixup), or [B] floats
    for regression.
    """

    def __init__(self, problem_type: str):
        super().__init__()
        if problem_type not in ("single_label_classification", "regression"):
            raise UsageError(f"problem_type must be single_label_classification or regression, "
                             f"got {problem_type!r}")
        self.problem_type = problem_type

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Rows without a gold label (-100, or NaN for regression: an unlabelled corpus) are
        left out; a batch with none gives a zero loss, not NaN."""
        logits = logits.float()
        if self.problem_type == "regression":
            pred, gold = logits.reshape(-1), labels.float().reshape(-1)
            known = ~torch.isnan(gold)
            if not bool(known.all()):
                pred, gold = pred[known], gold[known]
            return F.mse_loss(pred, gold) if gold.numel() else logits.sum() * 0.0
        if labels.dim() == 2:  # soft targets
            return _mean(-(labels.float() * F.log_softmax(logits, -1)).sum(-1))
        if not bool((labels != -100).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, labels.long())
