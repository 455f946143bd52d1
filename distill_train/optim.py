"""The optimisation of a training run: AdamW (no weight decay on biases and LayerNorm), a linear
warm-up then linear decay, gradient clipping (student and objective parameters apart) and mixed
precision (autocast and a loss scaler on CUDA), behind one object the loop calls per step.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from distiller.builders.teacher.precision import warn_if_bf16_emulated

__all__ = ["Optimisation", "param_groups", "clip_apart", "linear_schedule", "autocast_for"]


def param_groups(modules: Sequence[torch.nn.Module], weight_decay: float) -> List[Dict]:
    """AdamW groups: weight decay on weight matrices, none on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            lname = name.lower()
            if p.ndim < 2 or "bias" in lname or "layernorm" in lname or "layer_norm" in lname:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def clip_apart(groups: Sequence[Sequence[torch.nn.Parameter]], max_norm: float) -> None:
    """Clip each group's gradient norm to `max_norm` on its own.

    The trainer passes (student parameters, objective parameters): under one joint norm a fresh
    MI critic's gradients (measured ~20 against the prediction loss's ~0.5 on the student) shrank
    the student's step to almost nothing and the student did not learn the task.
    """
    for params in groups:
        params = [p for p in params if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: 0 -> 1 over `warmup` steps, then 1 -> 0 linearly at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def autocast_for(amp: str, device: torch.device) -> Tuple[Optional[Callable[[], Any]], bool]:
    """(autocast context factory or None, use a GradScaler) for the config's `amp` mode: "auto"
    is bf16 where the GPU supports it, else fp16, and off on a CPU; fp16 on CUDA needs the
    scaler (its gradients underflow without it)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "bf16" and device.type == "cpu":
        warn_if_bf16_emulated("training")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), (dtype == torch.float16
                                                                and device.type == "cuda")


@dataclasses.dataclass
class Optimisation:
    """AdamW over the student and the objective's own parameters (MI critics, projections), its
    learning-rate schedule, AMP's autocast and loss scaler, and the clipping groups."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    autocast: Optional[Callable[[], Any]]   # an autocast context factory; None: full precision
    clip_groups: Tuple[List[torch.nn.Parameter], List[torch.nn.Parameter]]  # student, objective
    max_grad_norm: Optional[float]

    @classmethod
    def build(cls, config, model: torch.nn.Module, objective: torch.nn.Module,
              device: torch.device, total_steps: int) -> "Optimisation":
        """From the config's lr, weight_decay, warmup_ratio (of `total_steps` optimizer steps),
        amp and max_grad_norm."""
        # The fused kernel (CPU and CUDA) is ~4x faster than the per-tensor loop on CPU.
        optimizer = torch.optim.AdamW(param_groups([model, objective], config.weight_decay),
                                      lr=config.lr, fused=device.type in ("cpu", "cuda"))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, linear_schedule(int(config.warmup_ratio * total_steps), total_steps))
        autocast, use_scaler = autocast_for(config.amp, device)
        groups = ([p for p in model.parameters() if p.requires_grad],
                  [p for p in objective.parameters() if p.requires_grad])
        return cls(optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=use_scaler),
                   autocast, groups, config.max_grad_norm)

    def precision(self):
        """The context of a forward pass: autocast under AMP, else nothing."""
        return self.autocast() if self.autocast else contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        """Accumulate the gradients of `loss` (scaled under fp16)."""
        self.scaler.scale(loss).backward()

    def step(self) -> None:
        """The step at the end of an accumulation group: unscale and clip, step, update the
        scaler, clear the gradients, advance the schedule."""
        if self.max_grad_norm:
            self.scaler.unscale_(self.optimizer)
            clip_apart(self.clip_groups, self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.scheduler.get_last_lr()[0]

    def checkpointed(self) -> Dict[str, Any]:
        """What a checkpoint saves and restores of it (runlog.save/load_checkpoint keywords)."""
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}
