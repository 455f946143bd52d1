"""Intermediate objectives over one mapped (student, teacher) hidden-state pair (docs/method.md).

Hidden-state losses take ``student`` [B, L, H] (already projected to the teacher's width H by the
objective when the widths differ), ``teacher`` [B, L, H] and ``mask`` [B, L] (1 = real token) and
return a scalar. Padding never contributes. Attention losses take [B, heads, L, L]
probabilities. MI-alpha lives in `mi_alpha.py` (its critics take each side at its own width).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distiller.common.errors import UsageError

__all__ = ["HiddenCELoss", "HiddenMSELoss", "CosineLoss", "PKDLoss", "AttentionLoss",
           "HIDDEN_LOSSES"]


def _check(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor) -> None:
    if student.shape != teacher.shape or mask.shape != student.shape[:2]:
        raise UsageError(f"intermediate loss needs student and teacher [B, L, H] of one shape and "
                         f"mask [B, L]; got {tuple(student.shape)}, {tuple(teacher.shape)}, "
                         f"{tuple(mask.shape)}")


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per_token [B, L] over real tokens."""
    m = mask.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp_min(1.0)


class HiddenCELoss(nn.Module):
    """Token-wise cross-entropy between softmax over the hidden dimension of teacher and student:
    -sum_h softmax(t)_h log softmax(s)_h, averaged over real tokens."""

    def forward(self, student, teacher, mask):
        _check(student, teacher, mask)
        per = -(F.softmax(teacher.float(), -1) * F.log_softmax(student.float(), -1)).sum(-1)
        return _token_mean(per, mask)


class HiddenMSELoss(nn.Module):
    """Squared error averaged over real tokens and hidden units."""

    def forward(self, student, teacher, mask):
        _check(student, teacher, mask)
        per = (student.float() - teacher.float()).pow(2).mean(-1)
        return _token_mean(per, mask)


class CosineLoss(nn.Module):
    """1 - cos(student, teacher) per token, averaged over real tokens (DistilBERT)."""

    def forward(self, student, teacher, mask):
        _check(student, teacher, mask)
        per = 1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=1e-8)
        return _token_mean(per, mask)


class PKDLoss(nn.Module):
    """Patient KD: squared distance between L2-normalised [CLS] (position 0) vectors, mean
    over B."""

    def forward(self, student, teacher, mask):
        _check(student, teacher, mask)
        s = F.normalize(student[:, 0].float(), dim=-1)
        t = F.normalize(teacher[:, 0].float(), dim=-1)
        return (s - t).pow(2).sum(-1).mean()


class AttentionLoss(nn.Module):
    """Attention-map distillation (TinyBERT MSE, MiniLM KL) between attention probabilities.

    student, teacher: [B, heads, L, L] (rows: queries, columns: keys); mask [B, L].
    "mse": squared error over real (query, key) cells, averaged over heads and cells;
    "kl": KL(teacher row || student row) summed over real keys, averaged over heads and real
    queries.
    """

    def __init__(self, kind: str = "mse"):
        super().__init__()
        if kind not in ("mse", "kl"):
            raise UsageError(f"AttentionLoss kind must be 'mse' or 'kl', got {kind!r}")
        self.kind = kind

    def forward(self, student, teacher, mask):
        if student.shape != teacher.shape or student.dim() != 4:
            raise UsageError(f"attention maps must both be [B, heads, L, L] with the same "
                             f"number of heads; got student {tuple(student.shape)}, teacher "
                             f"{tuple(teacher.shape)} (pick a student with the teacher's heads)")
        m = mask.float()
        cell = m[:, None, :, None] * m[:, None, None, :]           # [B, 1, L, L]
        heads = student.shape[1]
        if self.kind == "mse":
            err = (student.float() - teacher.float()).pow(2) * cell
            return err.sum() / (cell.sum() * heads).clamp_min(1.0)
        t = teacher.float()
        log_s = student.float().clamp_min(1e-12).log()
        log_t = t.clamp_min(1e-12).log()
        per_query = (t * (log_t - log_s) * cell).sum(-1)           # [B, heads, L]
        rows = m[:, None, :].expand_as(per_query)
        return per_query.sum() / rows.sum().clamp_min(1.0)


HIDDEN_LOSSES = {"ce": HiddenCELoss, "mse": HiddenMSELoss, "cosine": CosineLoss, "pkd": PKDLoss}
