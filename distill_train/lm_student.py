"""Masked and causal LM students: built by name, cut from the teacher, or from a changed config;
and the check, before training, that a student shares the teacher's vocabulary.

A token-level cache holds, per position, a distribution over the teacher's V tokens; the sparse
losses compare it with the student's distribution over the same ids. So the student must predict
exactly V tokens, and its tokenizer must map the same tokens to the same ids (the cache records
the teacher's vocabulary, builders.cache.vocab; student.check_vocab compares them). Otherwise
training is refused with one line before the first step.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional, Sequence, Tuple

from torch import nn

from distiller.common.errors import UsageError

from .mapping import skip_mapping
from .student import _layer_list, _load_tokenizer, check_vocab, truncate_layers
from .token_inputs import LM_PROBLEMS

__all__ = ["lm_auto_class", "build_lm_student", "check_lm_vocab", "output_vocab_size",
           "lm_problem_of_model"]

log = logging.getLogger(__name__)


def lm_auto_class(problem_type: str):
    """transformers.AutoModelForMaskedLM or AutoModelForCausalLM for a problem type."""
    import transformers

    if problem_type == "masked_lm":
        return transformers.AutoModelForMaskedLM
    if problem_type == "causal_lm":
        return transformers.AutoModelForCausalLM
    raise UsageError(f"an LM student's problem type must be one of {LM_PROBLEMS}, got "
                     f"{problem_type!r}")


def output_vocab_size(model: nn.Module) -> int:
    """How many tokens the model's LM head scores (the width of its logits)."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if weight is not None else int(model.config.vocab_size)


def lm_problem_of_model(path: str) -> Optional[str]:
    """"masked_lm" / "causal_lm" for a saved model directory whose architecture (config.json)
    is one of transformers' masked / causal LM classes, else None."""
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        return None
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    with open(config_file, encoding="utf-8") as fh:
        architectures = json.load(fh).get("architectures") or []

    def names(mapping) -> set:
        out = set()
        for value in mapping.values():
            out.update(value if isinstance(value, (list, tuple)) else [value])
        return out

    for problem, mapping in (("masked_lm", MODEL_FOR_MASKED_LM_MAPPING_NAMES),
                             ("causal_lm", MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)):
        if any(a in names(mapping) for a in architectures):
            return problem
    return None


def _kept_layers(config, n_teacher: int) -> Sequence[int]:
    if config.student_layers is not None:
        return config.student_layers
    if not config.student_num_layers:
        raise UsageError("student_init 'truncate' needs student_layers (teacher layers to keep, "
                         "1-based) or student_num_layers (kept by skip mapping)")
    return [t for _, t in skip_mapping(config.student_num_layers, n_teacher)[1:]]


def _renumber_layers(model: nn.Module, keep: Sequence[int], n_teacher: int) -> None:
    """After truncation: each kept layer's modules know their new index (decoders index their
    key/value cache by it), and a per-layer `layer_types` list keeps the kept layers' entries."""
    parent, attr = _layer_list(model)
    for i, layer in enumerate(getattr(parent, attr)):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = i
    types = getattr(model.config, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == n_teacher:
        model.config.layer_types = [types[k - 1] for k in keep]


def _student_config(config):
    """The student's config: the named model's with the asked-for layers, width, heads and
    feed-forward size (names as transformers maps them; GPT-2's feed-forward is n_inner)."""
    from transformers import AutoConfig

    base = AutoConfig.from_pretrained(config.student)
    hidden, heads, inner = config.student_hidden, config.student_heads, \
        config.student_intermediate or (4 * config.student_hidden if config.student_hidden
                                        else None)
    for key, value in (("num_hidden_layers", config.student_num_layers), ("hidden_size", hidden),
                       ("num_attention_heads", heads), ("intermediate_size", inner)):
        if value is not None:
            setattr(base, key, value)
    if inner is not None and hasattr(base, "n_inner"):
        base.n_inner = inner
    if base.hidden_size % base.num_attention_heads:
        raise UsageError(f"student hidden size {base.hidden_size} is not divisible by "
                         f"{base.num_attention_heads} heads")
    if (hidden or heads) and getattr(base, "head_dim", None):
        base.head_dim = base.hidden_size // base.num_attention_heads
    kv = getattr(base, "num_key_value_heads", None)
    if heads and kv and heads % kv:
        base.num_key_value_heads = heads
    types, n = getattr(base, "layer_types", None), base.num_hidden_layers
    if isinstance(types, (list, tuple)) and types and len(types) != n:
        base.layer_types = [types[i * len(types) // n] for i in range(n)]
    return base


def build_lm_student(config, problem_type: str) -> Tuple[nn.Module, Any]:
    """(model, tokenizer or None) for a TrainConfig and a problem type: `student` loaded as a
    masked / causal LM (pretrained), cut to some of its layers (truncate: student_layers, or
    student_num_layers kept by skip mapping), or new from its changed config (config)."""
    auto = lm_auto_class(problem_type)
    tokenizer = _load_tokenizer(config.student)
    if config.student_init == "config":
        return auto.from_config(_student_config(config)), tokenizer
    model = auto.from_pretrained(config.student)
    if config.student_init == "truncate":
        n_teacher = model.config.num_hidden_layers
        keep = _kept_layers(config, n_teacher)
        model = truncate_layers(model, keep)
        _renumber_layers(model, keep, n_teacher)
        log.info("student: %s truncated to layers %s", config.student, list(keep))
    return model, tokenizer


def check_lm_vocab(model: nn.Module, tokenizer, *, vocab_size: int,
                   tokens: Optional[Sequence[Optional[str]]] = None, source: str = "",
                   student: str = "the student") -> None:
    """UsageError (one line) unless the student predicts exactly the teacher's `vocab_size`
    tokens and, when the teacher's vocabulary is known (`tokens`, the token of each id, from
    `source`), its tokenizer holds the same token at every id (student.check_vocab)."""
    fix = ("use a student with the teacher's vocabulary (--student-init truncate of the "
           "teacher, or a model built from its config)")
    width = output_vocab_size(model)
    if width != int(vocab_size):
        raise UsageError(f"{student} predicts {width} tokens but the teacher's distributions are "
                         f"over {vocab_size}{f' ({source})' if source else ''}: the token-level "
                         f"losses compare both over one vocabulary; {fix}")
    if tokens is not None:
        check_vocab(model, tokenizer, tokens, source=source, student=student)
