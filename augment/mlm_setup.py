"""Setting up a masked LM for `distiller mlm-adapt` (distiller.augment.mlm_adapt): load an encoder
with a fresh head (the decoder tied to the input embeddings where the architecture allows), freeze
the first layers on request, and the optimizer with its schedule (the device and its autocast:
distiller.augment.mlm_model, shared with the contextual augmenter)."""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional

from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

__all__ = ["load_masked_lm", "quiet_transformers", "is_tied", "freeze", "make_optimizer"]


def load_masked_lm(encoder: str, seed: int):
    """(model, tokenizer, names of the tensors the checkpoint lacked) for an encoder loaded as a
    masked LM with a fresh head, the decoder tied to the input embeddings where it can be."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(encoder)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load a tokenizer from {encoder!r}: {exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(f"{encoder!r} has no fast tokenizer (tokenizer.json): word boundaries "
                         "are needed for whole-word masking and by the contextual augmenter")
    if tokenizer.mask_token_id is None:
        raise UsageError(f"the tokenizer of {encoder!r} has no mask token: it cannot be trained "
                         "as a masked LM")
    torch.manual_seed(derive_seed(seed, "mlm-head-init"))  # the fresh head's initial weights
    try:
        with quiet_transformers():  # the load report lists the (expected) new head
            model, info = AutoModelForMaskedLM.from_pretrained(
                encoder, tie_word_embeddings=True, output_loading_info=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"cannot load {encoder!r} as a masked LM: {exc}") from None
    prefix = model.base_model_prefix + "."
    missing = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    body_missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(prefix))
    if body_missing:
        raise UsageError(f"{encoder!r} lacks encoder weights ({body_missing[:4]} ...): it is not "
                         "a trained encoder of this architecture")
    return model, tokenizer, missing


@contextlib.contextmanager
def quiet_transformers():
    """No load report and no progress bars from transformers inside (restored after)."""
    import transformers
    from transformers.utils import logging as hf_logging

    verbosity = transformers.logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def is_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is not None and out.weight is model.get_input_embeddings().weight


def freeze(model, up_to: Optional[int]) -> int:
    """Freeze the embeddings and encoder layers 1..up_to; returns the frozen parameter count."""
    import torch

    if up_to is None:
        return 0
    body = model.base_model
    n_layers = model.config.num_hidden_layers
    if up_to > n_layers:
        raise UsageError(f"--freeze-up-to {up_to}: the encoder has only {n_layers} layers")
    layers = next((m for m in body.modules() if isinstance(m, torch.nn.ModuleList)
                   and len(m) == n_layers), None)
    embeddings = getattr(body, "embeddings", None) or model.get_input_embeddings()
    if layers is None:
        raise UsageError(f"cannot find the {n_layers} encoder layers of "
                         f"{type(model).__name__} to freeze; train without --freeze-up-to")
    frozen = 0
    for module in [embeddings] + list(layers[:up_to]):
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def make_optimizer(model, config, total_steps: int):
    """AdamW (no decay on biases and norms; the new head at head_lr, default 10 x lr) and a
    linear warm-up then linear decay to 0 over `total_steps` (config: an MlmAdaptConfig)."""
    import torch

    prefix = model.base_model_prefix + "."
    groups: Dict[tuple, List] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_head = not name.startswith(prefix)
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((is_head, no_decay), []).append(p)
    head_lr = config.head_lr if config.head_lr is not None else 10 * config.lr
    params = [{"params": ps, "lr": head_lr if is_head else config.lr,
               "weight_decay": 0.0 if no_decay else config.weight_decay}
              for (is_head, no_decay), ps in sorted(groups.items())]
    opt = torch.optim.AdamW(params)
    warmup = int(config.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
