"""Loading a teacher: `load_teacher(config, auto_class)` turns a TeacherConfig into one
`LoadedTeacher`, everything fixed for the teacher's life.

This module owns the decisions made once per load: the weights' dtype (float32) and attention
implementation (eager when attention maps are kept), a seeded head for weights the checkpoint
lacks, the device, CPU threads, the max_length check against the model's positions, the
fingerprint (distiller.builders.teacher.fingerprint), the kept layers and attention layers, the
compute
precision (distiller.builders.teacher.precision.teacher_compute) and the backend that runs the
forward
(distiller.builders.teacher.backends). Keys, tokenisation and scoring are
distiller.builders.teacher.model's; the
forward and the extraction of outputs are distiller.builders.teacher.forward's.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, Optional, Tuple

from distiller.common.errors import UsageError
from distiller.common.device import resolve_device
from distiller.common.seeding import thread_independent_math

from ..cache.spec import default_layers
from .backends import CompiledBackend, EagerBackend
from .config import TeacherConfig
from .devices import usable_cpus
from .fingerprint import teacher_fingerprint
from .onnx_backend import OnnxBackend
from .precision import teacher_compute

__all__ = ["LoadedTeacher", "load_teacher", "make_backend"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedTeacher:
    """A loaded teacher and what was decided while loading it.

    model: the transformers model, in eval mode, on `device` (a torch.device); tokenizer: its
    tokenizer; fingerprint: 32 hex digits of weights, config and tokenizer; layers: hidden
    states kept (0 = embeddings output, i = output of transformer layer i); attention_layers:
    transformer layers (1..N) whose attention maps are kept; compute_dtype: what forwards run at
    ("float32", or "bfloat16" / "float16" under autocast); uses_token_types: whether the model
    takes token_type_ids; backend: what runs the forward (distiller.builders.teacher.backends; None
    only
    while
    `load_teacher` builds it)."""

    config: TeacherConfig
    model: Any
    tokenizer: Any
    device: Any
    fingerprint: str
    layers: Tuple[int, ...]
    attention_layers: Tuple[int, ...]
    compute_dtype: str
    uses_token_types: bool
    backend: Any


def load_teacher(config: TeacherConfig,
                 auto_class: str = "AutoModelForSequenceClassification") -> LoadedTeacher:
    """Load `config.model` as the transformers class `auto_class` (e.g.
    "AutoModelForQuestionAnswering") with its tokenizer. ValueError for a setting the model or
    device cannot honour (fp16 off a GPU, max_length beyond its positions, layers it lacks)."""
    thread_independent_math()   # a teacher loading in a worker: before any torch math
    import torch
    import transformers

    cfg = config
    kwargs: Dict[str, Any] = {"dtype": torch.float32}
    if cfg.attentions:
        kwargs["attn_implementation"] = "eager"  # SDPA kernels do not return attention maps
    if cfg.num_labels is not None:
        kwargs["num_labels"] = cfg.num_labels
    tokenizer = transformers.AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
    # Weights the checkpoint lacks (a bare encoder's classifier head) are initialised at
    # random: from a fixed seed, so that every worker process loads the same teacher (the
    # same fingerprint, hence the same keys) instead of one head per process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, info = getattr(transformers, auto_class).from_pretrained(
            cfg.model, output_loading_info=True, **kwargs)
    if info.get("missing_keys"):
        log.warning("teacher %s: %d weight(s) not in the checkpoint were initialised from "
                    "seed 0 (%s): is it fine-tuned?", cfg.model, len(info["missing_keys"]),
                    ", ".join(sorted(info["missing_keys"])[:4]))
    model.eval()
    device = resolve_device(cfg.device)
    compute = teacher_compute(cfg.amp, device.type)   # once: autocast runs on every batch
    if device.type == "cpu":
        threads = cfg.num_threads or usable_cpus()
        torch.set_num_threads(max(1, threads))
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise UsageError(f"max_length {cfg.max_length} exceeds what {cfg.model} can embed "
                         f"({limit} positions): lower max_length")
    model = model.to(device)
    fingerprint = teacher_fingerprint(model, tokenizer)
    layers, attention_layers = _kept_layers(cfg, int(model.config.num_hidden_layers))
    loaded = LoadedTeacher(
        config=cfg, model=model, tokenizer=tokenizer, device=device, fingerprint=fingerprint,
        layers=layers, attention_layers=attention_layers, compute_dtype=compute,
        uses_token_types="token_type_ids" in getattr(tokenizer, "model_input_names",
                                                     ["token_type_ids"]),
        backend=None)
    # a backend may check the rest of what was loaded (ONNX: CPU, float32, no attentions)
    return dataclasses.replace(loaded, backend=make_backend(cfg.backend, model, teacher=loaded))


def make_backend(name: str, model, *, teacher: Optional[LoadedTeacher] = None):
    """The backend called `name` ("eager", "compile" or "onnx", distiller.builders.teacher.backends)
    for a loaded model. teacher: the LoadedTeacher being built (ONNX checks its device, precision
    and kept layers and exports for them)."""
    if name == "eager":
        return EagerBackend(model)
    if name == "compile":
        return CompiledBackend(model)
    if name == "onnx":
        return OnnxBackend(model, teacher=teacher)
    raise UsageError(f"unknown teacher backend {name!r}: use eager, compile or onnx")


def _kept_layers(cfg: TeacherConfig, num_hidden_layers: int
                 ) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """(hidden-state layers kept, attention layers kept) of a model with that many layers."""
    layers = default_layers(num_hidden_layers, cfg.layers)
    bad = [i for i in layers if i > num_hidden_layers]
    if bad:
        raise UsageError(f"layers {bad} do not exist: {cfg.model} has hidden states "
                         f"0..{num_hidden_layers}")
    if cfg.attentions is True:
        return layers, tuple(range(1, num_hidden_layers + 1))
    if cfg.attentions is False:
        return layers, ()
    return layers, tuple(cfg.attentions)
