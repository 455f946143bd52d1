"""TeacherConfig: how to load and run a teacher (frozen, hashable: one teacher per worker process
per config, distiller.pipelines.workers); `as_text_pair`: the texts of a record.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Optional, Tuple, Union

from distiller.common.errors import UsageError

from ..cache.sparse_tokens import parse_token_spec
from ..cache.spec import BACKENDS, POOLINGS, TOKEN_PROBLEM_TYPES

__all__ = ["TeacherConfig", "as_text_pair", "HEADS", "head_for"]

HEADS = ("sequence", "span") + TOKEN_PROBLEM_TYPES


def head_for(task: Any) -> str:
    """The teacher head a task's kind asks for (a taskdata.Task): its own kind for a language
    model ("masked_lm" / "causal_lm"), "span" for question answering, else "sequence"."""
    if task.is_lm:
        return task.kind
    return "span" if task.is_span else "sequence"


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """How to load and run a teacher.

    model: HF model name or local directory; tokenizer: defaults to `model`.
    max_length: tokens per input including special tokens; longer inputs are truncated (counted).
    layers: "all" (0..N) or hidden-state indices to keep; pooling: "none" | "cls" | "mean".
    attentions: False, True (every transformer layer) or a tuple of layers (1..N).
    max_tokens_per_batch / max_batch_size / sort_window: length bucketing (see batching.py).
    device: "auto" (cuda if available), "cpu", "cuda", "cuda:1", ...
    amp: "auto" (bf16 if supported else fp16 on GPU, off on CPU), "bf16", "fp16", "off". On a
    CPU "bf16" autocasts to bfloat16 (faster where the CPU has AVX512-BF16 or AMX, see README;
    hidden states within ~0.4% relative RMS of float32) and "fp16" is refused. The precision
    is part of the cache spec (`CacheSpec.compute`).
    backend: what runs the forward: "eager" (PyTorch), "compile" (torch.compile: a warm-up of
    tens of seconds per process, then faster batches) or "onnx" (ONNX Runtime, CPU; needs the
    `onnxruntime` package). Recorded in the cache spec (`CacheSpec.backend`); see backends.py.
    num_threads: CPU threads for torch; None = the CPUs this process may run on.
    num_labels: override the head size (a random head for an encoder-only checkpoint).
    head: "sequence" (a classification/regression head: logits [C] per input) or "span" (a
    question-answering head over context windows: logits [L, 2] per window,
    distiller.builders.teacher.qa_teacher). doc_stride / max_query_length (head "span"): context
    tokens
    between the starts of consecutive windows, and question tokens kept
    (distiller.builders.teacher.qa_windows).
    head "masked_lm" / "causal_lm": a token-level teacher (distiller.builders.teacher.token_teacher,
    any AutoModelForMaskedLM / AutoModelForCausalLM) keeping, per predicted position, the sparse
    form `tokens` ("topk:K" or "sample:N", required for these heads only). mask_prob / mask_seed
    (masked_lm): the share of a text's tokens masked and the seed mixed into every record's
    masking (distiller.builders.teacher.masking); both are part of every key.
    """

    model: str
    max_length: int = 128
    layers: Union[str, Tuple[int, ...]] = "all"
    pooling: str = "none"
    attentions: Union[bool, Tuple[int, ...]] = False
    max_tokens_per_batch: int = 2048
    max_batch_size: int = 256
    sort_window: int = 4096
    device: str = "auto"
    amp: str = "auto"
    backend: str = "eager"
    num_threads: Optional[int] = None
    tokenizer: Optional[str] = None
    num_labels: Optional[int] = None
    head: str = "sequence"
    doc_stride: int = 128
    max_query_length: int = 64
    tokens: str = ""
    mask_prob: float = 0.15
    mask_seed: int = 0

    def __post_init__(self) -> None:
        if not self.model:
            raise UsageError("TeacherConfig.model must name a model or a directory")
        object.__setattr__(self, "model", os.fspath(self.model))   # accept pathlib paths
        if self.tokenizer is not None:
            object.__setattr__(self, "tokenizer", os.fspath(self.tokenizer))
        if self.max_length < 2:
            raise UsageError(f"TeacherConfig.max_length must be >= 2, got {self.max_length}")
        if self.pooling not in POOLINGS:
            raise UsageError(f"TeacherConfig.pooling must be one of {POOLINGS}, "
                             f"got {self.pooling!r}")
        if isinstance(self.layers, str):
            if self.layers != "all":
                raise UsageError(f"TeacherConfig.layers must be 'all' or a tuple of indices, "
                                 f"got {self.layers!r}")
        else:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if not isinstance(self.attentions, bool):
            object.__setattr__(self, "attentions", tuple(int(i) for i in self.attentions))
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise UsageError(f"TeacherConfig.amp must be auto, bf16, fp16 or off, got {self.amp!r}")
        if self.backend not in BACKENDS:
            raise UsageError(f"TeacherConfig.backend must be one of {BACKENDS}, "
                             f"got {self.backend!r}")
        for name in ("max_tokens_per_batch", "max_batch_size", "sort_window"):
            if getattr(self, name) < 1:
                raise UsageError(f"TeacherConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.head not in HEADS:
            raise UsageError(f"TeacherConfig.head must be one of {HEADS}, got {self.head!r}")
        for name in ("doc_stride", "max_query_length"):
            if getattr(self, name) < 1:
                raise UsageError(f"TeacherConfig.{name} must be >= 1, got {getattr(self, name)}")
        self._check_token_head()
        if self.max_tokens_per_batch < self.max_length:
            raise UsageError(f"max_tokens_per_batch ({self.max_tokens_per_batch}) must be at "
                             f"least max_length ({self.max_length})")

    def _check_token_head(self) -> None:
        """`tokens` given exactly for the token-level heads (canonical); mask_prob in (0, 1)."""
        if self.head in TOKEN_PROBLEM_TYPES:
            if not self.tokens:
                raise UsageError(f"a {self.head} teacher needs a token spec: --tokens topk:K or "
                                 "--tokens sample:N")
            object.__setattr__(self, "tokens", str(parse_token_spec(self.tokens)))
        elif self.tokens:
            raise UsageError(f"--tokens {self.tokens} is for language-model tasks (--kind "
                             f"masked_lm or causal_lm), not a {self.head!r} head")
        if isinstance(self.mask_prob, bool) or not isinstance(self.mask_prob, (int, float)) \
                or not 0.0 < self.mask_prob < 1.0:
            raise UsageError(f"mask_prob must be a share in (0, 1), got {self.mask_prob!r}")
        if isinstance(self.mask_seed, bool) or not isinstance(self.mask_seed, int) \
                or self.mask_seed < 0:
            raise UsageError(f"mask_seed must be an integer >= 0, got {self.mask_seed!r}")
        object.__setattr__(self, "mask_prob", float(self.mask_prob))


def as_text_pair(record: Any) -> Tuple[str, Optional[str]]:
    """(text_a, text_b) from a record dict, a (a, b) tuple or a plain string."""
    if isinstance(record, str):
        return record, None
    if isinstance(record, Mapping):
        if "text_a" not in record:
            raise UsageError(f"record has no 'text_a' field: {dict(record)!r}")
        return record["text_a"], record.get("text_b")
    if isinstance(record, (tuple, list)) and len(record) in (1, 2):
        return record[0], (record[1] if len(record) == 2 else None)
    raise TypeError(f"cannot read texts from a {type(record).__name__}: {record!r}")
