"""The teacher: any Hugging Face sequence-classification/regression model behind one object that
keys records, tokenizes them and scores them in length-bucketed batches.

This module owns the cache keys and the cache spec of a teacher, tokenisation (with truncation
counted) and scoring (`score`: bucketing by length, then one forward per batch). Loading, the
fingerprint, the kept layers, the device and the precision are decided once in
distiller.builders.teacher.load (`load_teacher`, whose `LoadedTeacher` the properties here read);
the padded forward and the extraction of what a cache keeps are distiller.builders.teacher.forward's
(`run_batch`).

Outputs per example (docs/cache.md, "Shards"): key, input_ids int32[L], token_type_ids int8[L],
logits float32[C], hidden {layer: float32[L, H] or [H] if pooled}, attentions {layer: [heads, L, L]}
when kept, truncated bool. Layer 0 is the embeddings output, i the output of transformer layer i.
A question-answering teacher (distiller.builders.teacher.qa_teacher, via `make_teacher`) scores
context
windows and keeps per-token logits float32[L, 2] (start, end) instead.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from .batching import plan_batches
from ..cache.keys import cache_key as _cache_key
from ..cache.spec import CacheSpec
from .config import TeacherConfig, as_text_pair
from .load import LoadedTeacher, load_teacher

__all__ = ["TeacherConfig", "Teacher", "as_text_pair", "make_teacher"]

log = logging.getLogger(__name__)


def make_teacher(config: TeacherConfig) -> "Teacher":
    """The teacher for a config: a question-answering one for head "span", a token-level one
    (masked or causal LM) for heads "masked_lm" / "causal_lm", else `Teacher`."""
    if config.head == "span":
        from .qa_teacher import QATeacher

        return QATeacher(config)
    if config.head in ("masked_lm", "causal_lm"):
        from .token_teacher import TokenTeacher   # (it subclasses Teacher: imported here)

        return TokenTeacher(config)
    return Teacher(config)


class Teacher:
    """A teacher. Construct cheaply; `load()` (idempotent) loads model and tokenizer
    (distiller.builders.teacher.load) and the properties below read what was loaded."""

    auto_class = "AutoModelForSequenceClassification"   # the transformers class to load

    def __init__(self, config: TeacherConfig) -> None:
        self.config = config
        self.loaded: Optional[LoadedTeacher] = None
        self.calls = 0            # forward passes run (tests count them)
        self.examples_scored = 0
        self.truncated_count = 0

    # ----------------------------------------------------------------- loading
    def load(self) -> "Teacher":
        if self.loaded is not None:
            return self
        self.loaded = load_teacher(self.config, self.auto_class)
        log.info("teacher %s loaded on %s: %d layers, hidden %d, %d labels, fingerprint %s",
                 self.config.model, self.device, self.num_hidden_layers, self.hidden_size,
                 self.num_labels, self.fingerprint)
        return self

    @property
    def model(self):
        """The transformers model (None before `load()`)."""
        return self.loaded.model if self.loaded is not None else None

    @property
    def tokenizer(self):
        return self.loaded.tokenizer if self.loaded is not None else None

    @property
    def device(self):
        """The torch.device the model runs on (None before `load()`)."""
        return self.loaded.device if self.loaded is not None else None

    @property
    def backend(self):
        """What runs the forward (distiller.builders.teacher.backends)."""
        self._require_loaded()
        return self.loaded.backend

    def _require_loaded(self) -> None:
        if self.loaded is None:
            raise RuntimeError("Teacher.load() must be called before using the teacher")

    @property
    def fingerprint(self) -> str:
        self._require_loaded()
        return self.loaded.fingerprint

    @property
    def num_labels(self) -> int:
        self._require_loaded()
        return int(self.model.config.num_labels)

    @property
    def problem_type(self) -> str:
        self._require_loaded()
        pt = getattr(self.model.config, "problem_type", None)
        if pt in ("single_label_classification", "regression", "multi_label_classification"):
            return pt
        return "regression" if self.num_labels == 1 else "single_label_classification"

    @property
    def num_hidden_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_attention_heads(self) -> int:
        return int(self.model.config.num_attention_heads)

    @property
    def layers(self) -> Tuple[int, ...]:
        self._require_loaded()
        return self.loaded.layers

    @property
    def attention_layers(self) -> Tuple[int, ...]:
        """Transformer layers (1..N) whose attention maps are kept."""
        self._require_loaded()
        return self.loaded.attention_layers

    @property
    def uses_token_types(self) -> bool:
        self._require_loaded()
        return self.loaded.uses_token_types

    @property
    def tokenization_settings(self) -> Dict[str, Any]:
        """Settings that change the token ids; part of every cache key."""
        return {"max_length": self.config.max_length, "truncation": "longest_first",
                "add_special_tokens": True}

    # ----------------------------------------------------------------- keys and spec
    def cache_key(self, text_a: str, text_b: Optional[str] = None) -> str:
        return _cache_key(self.fingerprint, self.tokenization_settings, text_a, text_b)

    def record_key(self, record: Any) -> str:
        """The cache key of a record (a dict, a pair or a string)."""
        return self.cache_key(*as_text_pair(record))

    def spec(self, dtype: str = "float16", *, logits_dtype: str = "float32",
             logits_topk: int = 0) -> CacheSpec:
        """The CacheSpec of a cache that stores this teacher's outputs in `dtype`."""
        self._require_loaded()
        return CacheSpec(
            fingerprint=self.fingerprint, tokenization=self.tokenization_settings,
            layers=self.layers, pooling=self.config.pooling, attentions=self.attention_layers,
            dtype=dtype, logits_dtype=logits_dtype, logits_topk=logits_topk,
            compute=self.compute_dtype, backend=self.backend.name, num_labels=self.num_labels,
            problem_type=self.problem_type,
            hidden_size=self.hidden_size, num_heads=self.num_attention_heads,
            num_hidden_layers=self.num_hidden_layers, max_length=self.config.max_length,
            model=self.config.model)

    # ----------------------------------------------------------------- tokenization
    def tokenize(self, records: Sequence[Any]) -> List[Tuple[np.ndarray, np.ndarray, bool]]:
        """(input_ids int32[L], token_type_ids int8[L], truncated) per record, in order."""
        self._require_loaded()
        pairs = [as_text_pair(r) for r in records]
        if not pairs:
            return []
        out: List[Tuple[np.ndarray, np.ndarray, bool]] = [None] * len(pairs)  # type: ignore
        singles = [i for i, (_, b) in enumerate(pairs) if b is None]
        doubles = [i for i, (_, b) in enumerate(pairs) if b is not None]
        for group in (singles, doubles):
            if not group:
                continue
            a = [pairs[i][0] for i in group]
            b = [pairs[i][1] for i in group] if pairs[group[0]][1] is not None else None
            for text in a + (b or []):
                if not isinstance(text, str) or not text.strip():
                    raise UsageError(f"empty or non-string text {text!r}: bad rows must be "
                                     "dead-lettered before scoring")
            enc = self.tokenizer(a, b, truncation="longest_first",
                                 max_length=self.config.max_length, add_special_tokens=True,
                                 return_token_type_ids=True, return_attention_mask=False)
            full = self._untruncated_lengths(a, b, enc)
            for k, i in enumerate(group):
                ids = np.asarray(enc["input_ids"][k], dtype=np.int32)
                tts = np.asarray(enc["token_type_ids"][k], dtype=np.int8)
                out[i] = (ids, tts, bool(full[k] > len(ids)))
        return out

    def _untruncated_lengths(self, a, b, enc) -> List[int]:
        encodings = getattr(enc, "encodings", None)
        if encodings:  # fast tokenizer: truncated pieces are kept as `overflowing`
            return [len(e.ids) + (1 if e.overflowing else 0) for e in encodings]
        full = self.tokenizer(a, b, truncation=False, add_special_tokens=True,
                              return_attention_mask=False, return_token_type_ids=False)
        return [len(x) for x in full["input_ids"]]

    # ----------------------------------------------------------------- scoring
    def score(self, records: Sequence[Any], *,
              tokens: Optional[Sequence[Tuple[np.ndarray, np.ndarray, bool]]] = None,
              keys: Optional[Sequence[str]] = None, store_as: Optional[str] = None,
              batches: Optional[Sequence[Sequence[int]]] = None) -> List[Dict[str, Any]]:
        """Teacher outputs per record (dicts with text_a/text_b, tuples or strings), in order.

        tokens: what `tokenize` returned for these records, when the caller already has it (the
        pipeline tokenizes once, to key and bucket); None tokenizes here. keys: their cache keys,
        likewise. store_as: the storage dtype of the cache the outputs go to; "float16" returns
        hidden states and attention maps already in float16 (see forward.run_batch). batches:
        the forward batches, as positions in `records`, when the caller planned them (the local
        scorer's one plan over every chunk); None plans them here (batching.plan_batches)."""
        self._require_loaded()
        records = list(records)
        if not records:
            return []
        if keys is None:
            keys = [self.record_key(r) for r in records]
        elif len(keys) != len(records):
            raise UsageError(f"score: {len(keys)} keys for {len(records)} records")
        if tokens is not None and len(tokens) != len(records):
            raise UsageError(f"score: {len(tokens)} tokenizations for {len(records)} records")
        toks = list(tokens) if tokens is not None else self.tokenize(records)
        cfg = self.config
        if batches is None:
            batches = plan_batches([len(t[0]) for t in toks], max_tokens=cfg.max_tokens_per_batch,
                                   max_batch_size=cfg.max_batch_size, window=cfg.sort_window)
        elif sorted(i for b in batches for i in b) != list(range(len(records))):
            raise UsageError("score: the batches must hold every record's position exactly once")
        outputs: List[Dict[str, Any]] = [None] * len(records)  # type: ignore[list-item]
        for batch in batches:
            results = self.forward_batch([toks[i][0] for i in batch], [toks[i][1] for i in batch],
                                         store_as=store_as)
            for i, res in zip(batch, results):
                res["key"] = keys[i]
                res["input_ids"] = toks[i][0]
                res["token_type_ids"] = toks[i][1]
                res["truncated"] = toks[i][2]
                outputs[i] = res
        self.examples_scored += len(records)
        self.truncated_count += sum(t[2] for t in toks)
        return outputs

    def score_mixed(self, pairs: Sequence[Tuple[Any, Any, float]]) -> List[Dict[str, Any]]:
        """Outputs on mixup inputs (record_i, record_j, lam); see builders/teacher/mixup.py."""
        from .mixup import score_mixed

        return score_mixed(self, pairs)

    @property
    def compute_dtype(self) -> str:
        """The precision forwards run at: float32, or bfloat16 / float16 under autocast."""
        self._require_loaded()
        return self.loaded.compute_dtype

    def autocast(self):
        """The autocast context of the teacher's forward (a no-op at float32)."""
        import torch

        compute = self.compute_dtype
        if compute == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, compute))

    def forward_batch(self, ids_list: Sequence[np.ndarray], tts_list: Sequence[np.ndarray],
                      *, inputs_embeds=None, attention_mask=None,
                      store_as: Optional[str] = None) -> List[Dict[str, Any]]:
        """One padded forward over a batch; per example logits/hidden/attentions trimmed to its
        real length (see forward.run_batch)."""
        from .forward import run_batch

        return run_batch(self, ids_list, tts_list, inputs_embeds=inputs_embeds,
                         attention_mask=attention_mask, store_as=store_as)
