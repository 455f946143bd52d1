"""Token-level teachers: any Hugging Face ``AutoModelForMaskedLM`` (TeacherConfig.head
"masked_lm") or ``AutoModelForCausalLM`` ("causal_lm"), by hub name or local directory, keeping
per predicted position a sparse form of its distribution over the vocabulary (docs/cache.md,
"Token-level caches"; docs/method.md, "Token-level distillation").

A record is a text (or a pair) as for a sentence-level teacher; one cache row per record:
- masked LM: the input is masked from the record's key (distiller.builders.teacher.masking; the
  masking settings join the tokenization settings, so every key); the row keeps the masked ids
  (what the teacher saw, what a student trains on), the masked positions, the original tokens
  there (targets) and the teacher's distribution at each;
- causal LM: positions 0..L-2, each predicting the next token (targets = ids[1:]).
The sparse form is the config's `tokens` spec: `topk:K` or `sample:N` (drawn with a seed derived
from the record's key, masking.sample_seed). Hidden states (and attention maps) of the input are
kept beside it as for any teacher (`layers`, `attentions`).

`tokenize` gives the unmasked tokens (the pipeline carries them between steps); `score` masks
them from the keys, so that a record is masked the same way whichever step or process scores it.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

from ..cache.sparse_tokens import parse_token_spec
from ..cache.spec import CacheSpec
from .batching import plan_batches
from .masking import Masker, causal_positions, masking_settings, sample_seed
from .model import Teacher
from .token_forward import run_token_batch

__all__ = ["TokenTeacher", "AUTO_CLASSES"]

log = logging.getLogger(__name__)

AUTO_CLASSES = {"masked_lm": "AutoModelForMaskedLM", "causal_lm": "AutoModelForCausalLM"}


class TokenTeacher(Teacher):
    """A masked or causal LM teacher (TeacherConfig.head "masked_lm" / "causal_lm")."""

    def __init__(self, config) -> None:
        if config.head not in AUTO_CLASSES:
            raise UsageError(f"a token-level teacher has head masked_lm or causal_lm, got "
                             f"{config.head!r}")
        if config.backend == "onnx":
            raise UsageError("the onnx backend exports sentence-level heads only: score a "
                             "language model with --backend eager or compile")
        super().__init__(config)
        self.token_spec = parse_token_spec(config.tokens)
        self.auto_class = AUTO_CLASSES[config.head]
        self._masker: Optional[Masker] = None

    def load(self) -> "TokenTeacher":
        if self.loaded is not None:
            return self
        try:
            super().load()
        except ValueError as exc:   # transformers: no such head for this model type
            if "Unrecognized configuration class" not in str(exc):
                raise
            other = "causal_lm" if self.config.head == "masked_lm" else "masked_lm"
            raise UsageError(f"teacher {self.config.model!r} has no {self.auto_class} head "
                             f"(is it a {other} model? --kind {other})") from None
        self.token_spec.check_vocab(self.vocab_size)
        if len(self.tokenizer) > self.vocab_size:
            raise UsageError(f"teacher {self.config.model!r}: its tokenizer has "
                             f"{len(self.tokenizer)} tokens but the model predicts "
                             f"{self.vocab_size}: the two do not belong together")
        if self.config.head == "masked_lm":
            if self.tokenizer.mask_token_id is None:
                raise UsageError(f"teacher {self.config.model!r}: a masked LM needs a tokenizer "
                                 "with a mask token")
            self._masker = Masker(mask_id=self.tokenizer.mask_token_id,
                                  special_ids=self.tokenizer.all_special_ids,
                                  vocab_size=self.vocab_size, mask_prob=self.config.mask_prob)
        return self

    # ----------------------------------------------------------------- what it predicts
    @property
    def vocab_size(self) -> int:
        """Tokens the model predicts over (its output embedding's rows, else config.vocab_size)."""
        self._require_loaded()
        out = self.model.get_output_embeddings()
        weight = getattr(out, "weight", None)
        return int(weight.shape[0]) if weight is not None else int(self.model.config.vocab_size)

    @property
    def num_labels(self) -> int:
        return self.vocab_size

    @property
    def problem_type(self) -> str:
        return self.config.head

    @property
    def tokenization_settings(self) -> Dict[str, Any]:
        """The sentence-level settings, plus a masked LM's masking settings (every key)."""
        out = dict(super().tokenization_settings)
        if self.config.head == "masked_lm":
            out.update(masking_settings(self.config.mask_prob, self.config.mask_seed))
        return out

    def spec(self, dtype: str = "float16", *, logits_dtype: str = "float32",
             logits_topk: int = 0) -> CacheSpec:
        """The CacheSpec of a token-level cache of this teacher (tokens = its sparse form)."""
        if logits_topk:
            raise UsageError("--logits-topk trims a sentence-level teacher's logits; a language "
                             "model's sparse form is --tokens topk:K or sample:N")
        self._require_loaded()
        return CacheSpec(
            fingerprint=self.fingerprint, tokenization=self.tokenization_settings,
            layers=self.layers, pooling=self.config.pooling, attentions=self.attention_layers,
            dtype=dtype, logits_dtype=logits_dtype, compute=self.compute_dtype,
            backend=self.backend.name, tokens=str(self.token_spec), num_labels=self.vocab_size,
            problem_type=self.problem_type, hidden_size=self.hidden_size,
            num_heads=self.num_attention_heads, num_hidden_layers=self.num_hidden_layers,
            max_length=self.config.max_length, model=self.config.model)

    # ----------------------------------------------------------------- inputs
    def prepare(self, ids: np.ndarray, key: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(input ids the teacher sees, positions, targets) of one record's tokens."""
        self._require_loaded()
        if self._masker is not None:
            return self._masker.mask(ids, key)
        positions, targets = causal_positions(ids)
        return np.asarray(ids, dtype=np.int32), positions, targets

    # ----------------------------------------------------------------- scoring
    def score(self, records: Sequence[Any], *,
              tokens: Optional[Sequence[Tuple[np.ndarray, np.ndarray, bool]]] = None,
              keys: Optional[Sequence[str]] = None, store_as: Optional[str] = None,
              batches: Optional[Sequence[Sequence[int]]] = None) -> List[Dict[str, Any]]:
        """Outputs per record, in order (Teacher.score's arguments): key, input_ids (masked for
        a masked LM), token_type_ids, truncated, positions, targets, tokens (the sparse form),
        hidden, attentions when kept."""
        self._require_loaded()
        records = list(records)
        if not records:
            return []
        keys = list(keys) if keys is not None else [self.record_key(r) for r in records]
        toks = list(tokens) if tokens is not None else self.tokenize(records)
        if len(keys) != len(records) or len(toks) != len(records):
            raise UsageError(f"score: {len(keys)} keys and {len(toks)} tokenizations for "
                             f"{len(records)} records")
        cfg = self.config
        if batches is None:
            batches = plan_batches([len(t[0]) for t in toks], max_tokens=cfg.max_tokens_per_batch,
                                   max_batch_size=cfg.max_batch_size, window=cfg.sort_window)
        elif sorted(i for b in batches for i in b) != list(range(len(records))):
            raise UsageError("score: the batches must hold every record's position exactly once")
        inputs = [self.prepare(t[0], k) for t, k in zip(toks, keys)]
        outputs: List[Dict[str, Any]] = [None] * len(records)  # type: ignore[list-item]
        for batch in batches:
            results = run_token_batch(
                self.loaded, [inputs[i][0] for i in batch], [toks[i][1] for i in batch],
                [inputs[i][1] for i in batch], [sample_seed(keys[i]) for i in batch],
                self.token_spec, store_as=store_as)
            self.calls += 1
            for i, res in zip(batch, results):
                res.update(key=keys[i], input_ids=inputs[i][0], token_type_ids=toks[i][1],
                           truncated=toks[i][2], positions=inputs[i][1], targets=inputs[i][2])
                outputs[i] = res
        self.examples_scored += len(records)
        self.truncated_count += sum(t[2] for t in toks)
        return outputs

    def score_mixed(self, pairs) -> List[Dict[str, Any]]:
        raise UsageError("mixup is for classification and regression tasks, not for language "
                         "models")

    def forward_batch(self, *args, **kwargs):
        raise UsageError("a token-level teacher scores through `score` (its positions come from "
                         "each record's key)")
