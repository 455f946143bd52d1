"""What runs the teacher's forward: PyTorch eager (the default), torch.compile, or ONNX Runtime.

Every backend takes the model's keyword inputs (input_ids or inputs_embeds, attention_mask,
token_type_ids) and returns (logits [B, C], or [B, W, 2] start/end logits of a
question-answering model (`output_logits`), the kept hidden states (a sequence of K [B, W, H]
tensors, or None), the kept attention maps stacked [A, B, heads, W, W] or None) as torch
tensors. Outputs of different backends differ in the last bits (measured in
benchmarks/bench_cache.py), so the backend is part of the cache spec (CacheSpec.backend) and a
cache holds one.

`warmup_s` is what the backend spent before its first batch could run (compiling, exporting).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional, Sequence, Tuple

__all__ = ["output_logits", "EagerBackend", "CompiledBackend"]

log = logging.getLogger(__name__)


def output_logits(out):
    """The logits of a model output: `logits` [B, C], or for a question-answering model its
    start and end logits stacked per position [B, W, 2]."""
    import torch

    start = getattr(out, "start_logits", None)
    if start is not None:
        return torch.stack([start, out.end_logits], dim=-1)
    return out.logits


def _stack(states, indices: Sequence[int], offset: int = 0):
    import torch

    return torch.stack([states[i - offset] for i in indices])


class EagerBackend:
    """The model's own forward, as Hugging Face runs it."""

    name = "eager"

    def __init__(self, model) -> None:
        self.model = model
        self.warmup_s = 0.0

    def forward(self, kwargs: Dict[str, Any], layers: Sequence[int],
                attn_layers: Sequence[int]) -> Tuple[Any, Optional[Any], Optional[Any]]:
        out = self.model(**kwargs, output_hidden_states=bool(layers),
                         output_attentions=bool(attn_layers))
        return (output_logits(out), tuple(out.hidden_states[i] for i in layers) if layers else None,
                _stack(out.attentions, attn_layers, 1) if attn_layers else None)


class CompiledBackend(EagerBackend):
    """torch.compile (Inductor) of the forward and the stacking of the kept states, with
    dynamic shapes so batches of any size and width reuse one graph. The graph is compiled on the
    first batch (and again for a new kind of input, e.g. embeddings for mixup): that cost is
    counted in `warmup_s`."""

    name = "compile"

    def __init__(self, model) -> None:
        import torch

        super().__init__(model)
        self._compiled = torch.compile(self._run, dynamic=True)
        self._warm: set = set()

    def _run(self, kwargs, layers, attn_layers):
        return EagerBackend.forward(self, kwargs, layers, attn_layers)

    def forward(self, kwargs, layers, attn_layers):
        kind = tuple(sorted(kwargs))
        if kind in self._warm:
            return self._compiled(kwargs, tuple(layers), tuple(attn_layers))
        start = time.perf_counter()
        out = self._compiled(kwargs, tuple(layers), tuple(attn_layers))
        self._warm.add(kind)
        spent = time.perf_counter() - start
        self.warmup_s += spent
        log.info("torch.compile of the teacher (%s): %.1f s", ", ".join(kind), spent)
        return out
