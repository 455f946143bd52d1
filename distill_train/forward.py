"""The student's forward pass over a batch (plain or mixup), a language-model student's logits at
the scored positions only, and its predictions over a set (dev-set metrics: dev_metrics.py)."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np
import torch

from distiller.common.errors import UsageError

__all__ = ["student_forward", "mixed_embeddings", "mixed_targets", "predict", "to_device",
           "logits_of", "gather_positions", "scored_logits"]


def logits_of(out) -> torch.Tensor:
    """A model output's logits: [B, C], or [B, L, 2] (start, end) for a question-answering
    model, which has no single `logits`."""
    if getattr(out, "start_logits", None) is not None:
        return torch.stack([out.start_logits, out.end_logits], dim=-1)
    return out.logits


def to_device(batch: Mapping[str, Any], device) -> Dict[str, Any]:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to(device, non_blocking=True)
        elif isinstance(v, dict):
            out[k] = {kk: vv.to(device, non_blocking=True) for kk, vv in v.items()}
        else:
            out[k] = v
    return out


def mixed_embeddings(model, ids_a: torch.Tensor, ids_b: torch.Tensor, lam: torch.Tensor
                     ) -> torch.Tensor:
    """lam * E(ids_a) + (1 - lam) * E(ids_b): word embeddings only (the model adds position and
    token-type embeddings itself), as the teacher's mixup scoring does. ids [B, L], lam [B]."""
    emb = model.get_input_embeddings()
    lam = lam.to(emb.weight.dtype)[:, None, None]
    return lam * emb(ids_a) + (1.0 - lam) * emb(ids_b)


def mixed_targets(labels: torch.Tensor, labels_b: torch.Tensor, lam: torch.Tensor,
                  num_labels: int) -> torch.Tensor:
    """Mixed gold targets: lam * onehot(y_a) + (1 - lam) * onehot(y_b) [B, C] for classification,
    lam * y_a + (1 - lam) * y_b [B] for regression (num_labels == 1)."""
    if num_labels == 1:
        return lam * labels.float() + (1 - lam) * labels_b.float()
    one_a = torch.nn.functional.one_hot(labels.long(), num_labels).float()
    one_b = torch.nn.functional.one_hot(labels_b.long(), num_labels).float()
    return lam[:, None] * one_a + (1 - lam[:, None]) * one_b


def student_forward(model, batch: Mapping[str, Any], *, hidden: bool = False,
                    attentions: bool = False):
    """HF outputs of the student on a padded batch; mixup rows get interpolated embeddings."""
    kwargs = dict(attention_mask=batch["attention_mask"], output_hidden_states=hidden,
                  output_attentions=attentions)
    if getattr(model.config, "type_vocab_size", 0):  # DistilBERT-style models take none
        kwargs["token_type_ids"] = batch["token_type_ids"]
    if "mix_ids_b" in batch:
        embeds = mixed_embeddings(model, batch["input_ids"], batch["mix_ids_b"], batch["mix_lam"])
        return model(inputs_embeds=embeds, **kwargs)
    return model(input_ids=batch["input_ids"], **kwargs)


def gather_positions(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """logits [B, L, V] at positions [B, P] (long) -> [B, P, V]."""
    if logits.dim() != 3 or positions.dim() != 2 or positions.shape[0] != logits.shape[0]:
        raise UsageError(f"cannot gather student logits {tuple(logits.shape)} at positions "
                         f"{tuple(positions.shape)}: an LM student gives [batch, length, vocab]")
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    return logits[rows, positions.to(logits.device).long()]


def scored_logits(model, batch: Mapping[str, Any]) -> torch.Tensor:
    """An LM student's logits [B, P, V] at a token-level batch's `positions` [B, P].

    The vocabulary projection is the largest matrix product of a small LM student, and a masked
    LM scores about one position in seven: the model's output embeddings (its LM head's last
    linear layer) are fed only the hidden states at the scored positions, through a forward
    pre-hook, so the projection and its gradient cost P instead of L rows per text. The values
    are those of gathering the full logits. A model whose head does not go through its output
    embeddings module (the hook never runs) gets the full logits, gathered."""
    positions = batch["positions"]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    fired = []

    def at_positions(module, args):
        fired.append(True)
        return (gather_positions(args[0], positions),) + tuple(args[1:])

    handle = head.register_forward_pre_hook(at_positions) if head is not None else None
    try:
        logits = student_forward(model, batch).logits
    finally:
        if handle is not None:
            handle.remove()
    return logits if fired else gather_positions(logits, positions)


@torch.no_grad()
def predict(model, batches, device, *, autocast=None
            ) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(student logits [N, C], gold labels [N], cached teacher logits [N, C] or None) over a
    `Batches`, in its order."""
    was_training = model.training
    model.eval()
    logits, teacher, labels = [], [], []
    for _, batch in batches.epoch(0):
        labels.append(batch["labels"].numpy())
        if "teacher_logits" in batch:
            teacher.append(batch["teacher_logits"].numpy())
        batch = to_device(batch, device)
        ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
        with ctx:
            out = student_forward(model, batch)
        logits.append(logits_of(out).float().cpu().numpy())
    model.train(was_training)
    return (np.concatenate(logits), np.concatenate(labels),
            np.concatenate(teacher) if teacher else None)
