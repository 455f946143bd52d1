"""The distillation objective: the one place where losses are chosen, mapped and mixed.

    total = w_kd * L_pred + w_inter * sum_pairs L_inter + w_gold * L_gold      (`combine_losses`)

`DistillObjective` is an nn.Module because it owns learned parts trained jointly with the
student (width projections, MI-alpha critics and baselines); the optimizer gets its parameters.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from distiller.common.errors import UsageError

from .forward import mixed_targets
from .inter_losses import HIDDEN_LOSSES, AttentionLoss
from .mapping import emd_flow, layer_pairs
from .mi_alpha import MIAlphaLoss, make_critic
from .pred_losses import GoldLoss, LogitMSELoss, SoftTargetLoss
from .span_losses import SpanGoldLoss, SpanKDLoss

__all__ = ["combine_losses", "DistillObjective"]

log = logging.getLogger(__name__)

# MI-alpha's gradient on the student is ~40x the prediction loss's at equal weight (measured on
# SST-2, 2-layer MiniLM student, transformer critic): above this ratio the student barely learns
# the task (59% SST-2 accuracy at w_inter = 1; 75% at 0.1 and 0.02).
MI_WEIGHT_WARNING = 0.5


def combine_losses(*, pred: Optional[torch.Tensor], inter: Sequence[torch.Tensor],
                   gold: Optional[torch.Tensor], w_kd: float = 1.0, w_inter: float = 1.0,
                   w_gold: float = 0.0) -> torch.Tensor:
    """w_kd * pred + w_inter * sum(inter) + w_gold * gold; a None or zero-weighted term is left out
    (so a missing teacher or label never turns into NaN * 0)."""
    total = None
    terms = [(w_kd, pred), (w_gold, gold)] + [(w_inter, t) for t in inter]
    for weight, term in terms:
        if term is None or weight == 0:
            continue
        total = weight * term if total is None else total + weight * term
    if total is None:
        raise UsageError("no loss term is active: every weight is 0 or every term is missing")
    return total


class DistillObjective(nn.Module):
    """Computes the total loss of a batch from the student's outputs and the cached teacher's.

    Args (keyword-only): config (TrainConfig), n_student / n_teacher (layers), student_width /
    teacher_width (hidden sizes).
    """

    def __init__(self, config, *, n_student: int, n_teacher: int, student_width: int,
                 teacher_width: int):
        super().__init__()
        self.w_kd, self.w_inter, self.w_gold = config.w_kd, config.w_inter, config.w_gold
        # question answering: start/end distributions over a window's positions (span_losses)
        self.span = config.task_def.is_span
        self.gold = SpanGoldLoss() if self.span else GoldLoss(config.problem_type)
        if self.span and config.pred_loss != "none":
            self.pred = SpanKDLoss(config.temperature, kind=config.pred_loss,
                                   scale_by_t2=config.scale_by_t2)
        elif config.pred_loss in ("kl", "soft_ce"):
            self.pred = SoftTargetLoss(config.temperature, kind=config.pred_loss,
                                       scale_by_t2=config.scale_by_t2)
        elif config.pred_loss == "mse":
            self.pred = LogitMSELoss()
        else:
            self.pred = None
        self.kind = config.inter_loss
        self.emd = config.mapping == "emd"
        self.n_student, self.n_teacher = n_student, n_teacher
        self.pairs: List[Tuple[int, int]] = []
        self.inter = None
        self.projections = nn.ModuleDict()
        self.critics = nn.ModuleDict()
        if self.kind == "none" or self.w_inter == 0:
            self.kind = "none"
            return
        self.pairs = layer_pairs(config.mapping, n_student, n_teacher, config.mapping_pairs)
        if self.kind.startswith("att_"):
            self.pairs = [(s, t) for s, t in self.pairs if s > 0 and t > 0]
            self.inter = AttentionLoss(self.kind[4:])
        elif self.kind == "mi":
            if self.w_kd and self.w_inter / self.w_kd > MI_WEIGHT_WARNING:
                log.warning("MI-alpha with w_inter/w_kd = %g: its gradients are ~40x the "
                            "prediction loss's at equal weight and can drown it; w_inter "
                            "0.02-0.1 worked on SST-2 (README, Results)",
                            self.w_inter / self.w_kd)
            for s in sorted({s for s, _ in self.pairs}):
                self.critics[str(s)] = MIAlphaLoss(make_critic(
                    config.critic, student_width, teacher_width, out_dim=config.critic_dim,
                    layers=config.critic_layers, heads=config.critic_heads,
                    ff=config.critic_ff), config.mi_alpha)
        else:
            self.inter = HIDDEN_LOSSES[self.kind]()
            if student_width != teacher_width:
                for s in sorted({s for s, _ in self.pairs}):
                    self.projections[str(s)] = nn.Linear(student_width, teacher_width)

    @property
    def teacher_layers(self) -> List[int]:
        """Teacher hidden states (or attention maps for att_*) the batches must carry."""
        return sorted({t for _, t in self.pairs})

    @property
    def needs_attentions(self) -> bool:
        return self.kind.startswith("att_")

    def _pair_loss(self, s: int, t: int, student, teacher, mask, real=None) -> torch.Tensor:
        if self.kind == "mi":
            if student[s].shape[0] < 2:  # no in-batch negatives in a batch of one
                return student[s].sum() * 0.0
            return self.critics[str(s)](student[s], teacher[t], mask)
        x, y = student[s], teacher[t]
        if self.kind.startswith("att_"):
            return self.inter(x, y, mask)
        if self.kind == "pkd":  # only [CLS] matters: project just that position
            x, y, mask = x[:, :1], y[:, :1], mask[:, :1]
        elif real is not None:
            # Token-wise losses: keep real tokens only, as one sequence [1, N, H], so padding
            # costs no projection work (the losses average over real tokens either way).
            x, y = x[real][None], y[real][None]
            mask = torch.ones(x.shape[:2], dtype=mask.dtype, device=mask.device)
        if str(s) in self.projections:
            x = self.projections[str(s)](x)
        return self.inter(x, y.to(x.dtype), mask)

    def intermediate(self, student: Sequence[torch.Tensor], teacher: Mapping[int, torch.Tensor],
                     mask: torch.Tensor) -> List[torch.Tensor]:
        """One loss per mapped pair; for EMD [embeddings term, flow-weighted sum over layers].

        student: the student's hidden states (or attention maps) indexed like HF's output
        (attention maps from index 1 on); teacher: {teacher index: [B, L, H] or [B, h, L, L]}.
        """
        if self.kind == "none":
            return []
        if self.kind.startswith("att_"):
            student = (None,) + tuple(student)  # attention of layer i at index i
        missing = [t for t in self.teacher_layers if t not in teacher]
        if missing:
            raise UsageError(f"the batch lacks teacher layers {missing} needed by the "
                             f"{self.kind!r} loss over mapping pairs {self.pairs}: build the cache "
                             f"with those layers (or attentions) or change the mapping")
        real = mask.bool() if self.kind in ("ce", "mse", "cosine") else None
        if not self.emd:
            return [self._pair_loss(s, t, student, teacher, mask, real) for s, t in self.pairs]
        out = []
        if (0, 0) in self.pairs:
            out.append(self._pair_loss(0, 0, student, teacher, mask, real))
        cost = torch.stack([torch.stack([self._pair_loss(i, j, student, teacher, mask, real)
                                         for j in range(1, self.n_teacher + 1)])
                            for i in range(1, self.n_student + 1)])            # [N, M]
        flow = torch.as_tensor(emd_flow(cost.detach().double().cpu().numpy()),
                               dtype=cost.dtype, device=cost.device)
        out.append((flow * cost).sum())
        return out

    def forward(self, *, student_logits: torch.Tensor, student_hidden=None, student_attn=None,
                batch: Mapping) -> Tuple[torch.Tensor, Dict[str, float]]:
        """-> (total loss, {"pred", "inter", "gold", "loss"} as floats for logging)."""
        mask = batch["attention_mask"]
        pred = gold = None
        if self.span:
            if self.pred is not None and self.w_kd and "teacher_logits" in batch:
                pred = self.pred(student_logits, batch["teacher_logits"], batch["span_mask"])
            if self.w_gold:
                gold = self.gold(student_logits, batch["labels"], batch["span_mask"])
        elif self.pred is not None and self.w_kd and "teacher_logits" in batch:
            t_logits = batch["teacher_logits"].to(student_logits.device)
            pred = self.pred(student_logits.reshape(t_logits.shape), t_logits)
        if self.w_gold and not self.span:
            labels = batch["labels"]
            if "mix_lam" in batch:  # mixup: mixed one-hot (or mixed regression) targets
                labels = mixed_targets(labels, batch["mix_label_b"], batch["mix_lam"],
                                       student_logits.shape[-1])
            gold = self.gold(student_logits, labels)
        if self.kind.startswith("att_"):
            inter = self.intermediate(student_attn, batch.get("teacher_attn", {}), mask)
        else:
            inter = self.intermediate(student_hidden, batch.get("teacher_hidden", {}), mask)
        total = combine_losses(pred=pred, inter=inter, gold=gold, w_kd=self.w_kd,
                               w_inter=self.w_inter, w_gold=self.w_gold)
        parts = {"loss": float(total.detach())}
        if pred is not None:
            parts["pred"] = float(pred.detach())
        if inter:
            parts["inter"] = float(sum(x.detach() for x in inter))
        if gold is not None:
            parts["gold"] = float(gold.detach())
        return total, parts
