"""MI-alpha: the negative of Poole et al.'s (2019) interpolated lower bound I_alpha between a
student representation x and a teacher representation y, with in-batch negatives.

For a batch of B pairs, scores[i, j] = f(x_j, y_i) (row: teacher example, column: student
example; the diagonal holds the positive pairs). With m_{-j}(y_i) the leave-one-out mean of
exp f(x_k, y_i) over k != j and D_{ij} = alpha * m_{-j}(y_i) + (1 - alpha) * q(y_i):

  I_alpha = 1 + mean_{i != j} [ f(x_i, y_i) - log D_{ij} ]
              - mean_{i != j} [ exp f(x_j, y_i) / D_{ii} ]

(the joint term's normaliser leaves out one negative, so it holds the positive and B-2
negatives; the marginal term's normaliser leaves out the positive, so x_j is one of the K = B-1
samples it averages over). alpha = 1 is InfoNCE, alpha = 0 NWJ/TUBA with baseline q; both ends
are computed exactly (no log(0)). The critic f and the baseline log q(y) are learned with the
student in the same optimizer; the loss is -I_alpha.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from distiller.common.errors import UsageError

__all__ = ["interpolated_bound", "MIAlphaLoss", "TransformerCritic", "MLPCritic", "make_critic"]


def _log_loo_mean_exp(scores: torch.Tensor) -> torch.Tensor:
    """out[i, j] = log( mean_{k != j} exp scores[i, k] ) for scores [B, B], B >= 2.

    Exact and O(B^2): the log-sum-exp of the entries before j (exclusive prefix) combined with
    that of the entries after j (exclusive suffix), so no subtraction cancels.
    """
    b = scores.shape[1]
    pad = scores.new_full((scores.shape[0], 1), float("-inf"))
    prefix = torch.cat([pad, torch.logcumsumexp(scores, 1)[:, :-1]], 1)
    suffix = torch.cat([torch.logcumsumexp(scores.flip(1), 1)[:, :-1].flip(1), pad], 1)
    return torch.logaddexp(prefix, suffix) - math.log(b - 1)


def _log_interpolate(log_a: torch.Tensor, log_b: torch.Tensor, alpha: float) -> torch.Tensor:
    """log(alpha * e^log_a + (1 - alpha) * e^log_b), exact at alpha = 0 and 1."""
    if alpha >= 1.0:
        return log_a
    if alpha <= 0.0:
        return log_b
    return torch.logaddexp(log_a + math.log(alpha), log_b + math.log1p(-alpha))


def interpolated_bound(scores: torch.Tensor, log_baseline: torch.Tensor, alpha: float
                       ) -> torch.Tensor:
    """I_alpha (nats) from critic scores [B, B] (scores[i, j] = f(x_j, y_i)) and log q(y_i) [B]."""
    b = scores.shape[0]
    if scores.dim() != 2 or scores.shape[1] != b or b < 2:
        raise UsageError(f"MI-alpha needs a square score matrix over a batch of >= 2, got "
                         f"{tuple(scores.shape)}")
    if log_baseline.shape != (b,):
        raise UsageError(f"log q(y) must be [B]={b}, got {tuple(log_baseline.shape)}")
    scores = scores.float()
    log_q = log_baseline.float()[:, None].expand(b, b)
    log_d = _log_interpolate(_log_loo_mean_exp(scores), log_q, alpha)         # [B, B]
    eye = torch.eye(b, dtype=torch.bool, device=scores.device)
    joint_all = scores.diagonal()[:, None] - log_d
    joint = (joint_all.sum() - joint_all.diagonal().sum()) / (b * (b - 1))
    log_d_pos = log_d.diagonal()[:, None]                                       # leaves out x_i
    marg = (scores - log_d_pos).masked_fill(eye, float("-inf"))
    marginal = torch.exp(torch.logsumexp(marg.reshape(-1), 0) - math.log(b * (b - 1)))
    return 1.0 + joint - marginal


class _Head(nn.Module):
    """Linear -> L2-normalised `out_dim` vector."""

    def __init__(self, width: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(width, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(x), dim=-1)


class _SeparableCritic(nn.Module):
    """Scores = scale * <g(y_i), h(x_j)> with L2-normalised encodings; log q(y) from y's
    encoding. The learned scale (init 5) lets scores leave [-1, 1], which a bound on MI above
    about 2 nats needs."""

    def __init__(self, out_dim: int, teacher_width: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(5.0)))
        self.baseline = nn.Sequential(nn.Linear(teacher_width, 64), nn.ReLU(), nn.Linear(64, 1))

    def encode(self, h, mask, side):  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor):
        """x: [B, L, Hs] student, y: [B, L, Ht] teacher, mask [B, L]
        -> (scores [B, B], log q [B])."""
        zx, pooled_x = self.encode(x.float(), mask, "student")
        zy, pooled_y = self.encode(y.float(), mask, "teacher")
        scores = self.log_scale.exp() * zy @ zx.t()
        return scores, self.baseline(pooled_y).squeeze(-1)


class MLPCritic(_SeparableCritic):
    """Per side an MLP on the [CLS] vector (position 0) -> 16-d L2-normalised encoding."""

    def __init__(self, student_width: int, teacher_width: int, *, out_dim: int = 16,
                 hidden: int = 512):
        super().__init__(out_dim, teacher_width)
        self.student = nn.Sequential(nn.Linear(student_width, hidden), nn.ReLU(),
                                     _Head(hidden, out_dim))
        self.teacher = nn.Sequential(nn.Linear(teacher_width, hidden), nn.ReLU(),
                                     _Head(hidden, out_dim))

    def encode(self, h, mask, side):
        cls = h[:, 0]
        return getattr(self, side)(cls), cls


class TransformerCritic(_SeparableCritic):
    """Per side a small Transformer encoder (2 layers, 8 heads, feed-forward 512) at that side's
    width, mean-pooled over real tokens, then a 16-d L2-normalised head."""

    def __init__(self, student_width: int, teacher_width: int, *, out_dim: int = 16,
                 layers: int = 2, heads: int = 8, ff: int = 512):
        super().__init__(out_dim, teacher_width)
        for name, width in (("student", student_width), ("teacher", teacher_width)):
            if width % heads:
                raise UsageError(f"Transformer critic: {name} width {width} is not divisible by "
                                 f"critic_heads={heads}; pick heads dividing both widths or "
                                 f"critic 'mlp'")
            layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0, batch_first=True)
            setattr(self, f"{name}_enc", nn.TransformerEncoder(layer, layers,
                                                               enable_nested_tensor=False))
            setattr(self, f"{name}_head", _Head(width, out_dim))

    def encode(self, h, mask, side):
        enc = getattr(self, f"{side}_enc")(h, src_key_padding_mask=~mask.bool())
        m = mask.to(enc.dtype)[..., None]
        pooled = (enc * m).sum(1) / m.sum(1).clamp_min(1.0)
        return getattr(self, f"{side}_head")(pooled), (h * m).sum(1) / m.sum(1).clamp_min(1.0)


def make_critic(kind: str, student_width: int, teacher_width: int, *, out_dim: int = 16,
                layers: int = 2, heads: int = 8, ff: int = 512) -> nn.Module:
    if kind == "transformer":
        return TransformerCritic(student_width, teacher_width, out_dim=out_dim, layers=layers,
                                 heads=heads, ff=ff)
    if kind == "mlp":
        return MLPCritic(student_width, teacher_width, out_dim=out_dim, hidden=ff)
    raise UsageError(f"unknown critic {kind!r}: expected 'transformer' or 'mlp'")


class MIAlphaLoss(nn.Module):
    """-I_alpha between student x [B, L, Hs] and teacher y [B, L, Ht] (mask [B, L]) through a
    learned critic (which also gives the baseline log q(y))."""

    def __init__(self, critic: nn.Module, alpha: float = 0.9):
        super().__init__()
        if not 0.0 <= float(alpha) <= 1.0:
            raise UsageError(f"MI-alpha alpha must be in [0, 1], got {alpha!r}")
        self.critic, self.alpha = critic, float(alpha)

    def forward(self, student, teacher, mask):
        if student.shape[:2] != teacher.shape[:2] or mask.shape != student.shape[:2]:
            raise UsageError(f"MI-alpha needs student [B, L, Hs], teacher [B, L, Ht], mask [B, L];"
                             f" got {tuple(student.shape)}, {tuple(teacher.shape)}, "
                             f"{tuple(mask.shape)}")
        scores, log_q = self.critic(student, teacher, mask)
        return -interpolated_bound(scores, log_q, self.alpha)
