"""CacheSpec: what a teacher cache stores, recorded in its manifest (docs/cache.md, "Spec").

Two caches (or a cache and a request) are compatible when every field but `model` (a name or path,
kept for humans only) is equal.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from distiller.common.errors import UsageError

from .errors import CacheSpecMismatch
from .sparse_tokens import parse_token_spec

__all__ = ["CacheSpec", "SCHEMA_VERSION", "DTYPES", "COMPUTE_DTYPES", "BACKENDS", "POOLINGS",
           "TOKEN_PROBLEM_TYPES"]

SCHEMA_VERSION = 1           # bumped when the shard layout changes
DTYPES = ("float32", "float16", "int8")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")  # what the teacher's forward ran at
BACKENDS = ("eager", "compile", "onnx")  # what ran it: PyTorch eager, torch.compile, ONNX Runtime
POOLINGS = ("none", "cls", "mean")
TOKEN_PROBLEM_TYPES = ("masked_lm", "causal_lm")   # token-level teachers (`tokens` set)


@dataclasses.dataclass(frozen=True)
class CacheSpec:
    """Frozen description of a cache's contents.

    fingerprint: teacher fingerprint (weights, config, tokenizer); layers: hidden-state indices kept
    (0 = embeddings, i = output of transformer layer i); pooling: "none" keeps [L, H] per layer
    trimmed to the real length, "cls"/"mean" keep [H]; attentions: transformer layers (1-based,
    like hidden-state indices) whose attention maps [heads, L, L] are kept, empty for none;
    dtype: storage of hidden states and attentions; logits_dtype: storage of logits (float32 by
    default: they are tiny and the prediction loss is the most sensitive); logits_topk: 0 keeps all
    logits, k > 0 keeps the top-k log-probabilities plus the remaining probability mass;
    compute: the precision the teacher's forward ran at (float32, or bfloat16 / float16 under
    autocast): outputs of another precision differ, so a cache holds one (a manifest written
    before this field existed holds float32); backend: what ran the forward ("eager" PyTorch,
    "compile" = torch.compile, "onnx" = ONNX Runtime): their outputs differ in the last bits
    (~1e-5), so a cache holds one too. "eager" is left out of `to_dict`, so the manifests and
    shards of an eager cache are byte-for-byte what they were before the field existed (and a
    manifest without it reads as eager).
    problem_type "question_answering" (span tasks): the logits are per token, [L, num_labels]
    (num_labels 2: start, end) trimmed to the row's length like hidden states, one row per
    context window; otherwise they are [num_labels] per row. The shard layout is the same
    (schema version unchanged): only the logits' shape follows from the spec.
    tokens (problem_type "masked_lm" / "causal_lm", a token-level teacher): the sparse form kept
    per predicted position, canonical text "topk:K" / "sample:N" (sparse_tokens.TokenSpec);
    num_labels is then the teacher's vocabulary size. Such a cache has no `logits` column but
    positions, targets and the sparse column (docs/cache.md, "Token-level caches"); a masked
    LM's masking settings are in `tokenization` (so in every key). Empty for every other cache
    and then left out of `to_dict`, like an eager backend: their manifests and shards keep
    their bytes.
    """

    fingerprint: str
    tokenization: Tuple[Tuple[str, Any], ...]
    layers: Tuple[int, ...]
    pooling: str = "none"
    attentions: Tuple[int, ...] = ()
    dtype: str = "float16"
    logits_dtype: str = "float32"
    logits_topk: int = 0
    compute: str = "float32"
    backend: str = "eager"
    tokens: str = ""
    num_labels: int = 2
    problem_type: str = "single_label_classification"
    hidden_size: int = 0
    num_heads: int = 0
    num_hidden_layers: int = 0
    max_length: int = 128
    model: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.fingerprint:
            raise UsageError("CacheSpec.fingerprint is empty: build the spec with Teacher.spec()")
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "tokenization", _as_items(self.tokenization))
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        object.__setattr__(self, "attentions", tuple(int(i) for i in self.attentions))
        if self.dtype not in DTYPES:
            raise UsageError(f"CacheSpec.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.logits_dtype not in DTYPES:
            raise UsageError(f"CacheSpec.logits_dtype must be one of {DTYPES}, "
                             f"got {self.logits_dtype!r}")
        if self.compute not in COMPUTE_DTYPES:
            raise UsageError(f"CacheSpec.compute must be one of {COMPUTE_DTYPES}, "
                             f"got {self.compute!r}")
        if self.backend not in BACKENDS:
            raise UsageError(f"CacheSpec.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.pooling not in POOLINGS:
            raise UsageError(f"CacheSpec.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.pooling != "none" and self.attentions:
            raise UsageError("attention maps are per token: they cannot be kept with pooling "
                             f"{self.pooling!r}; use pooling='none' or attentions=()")
        if len(set(self.layers)) != len(self.layers) or any(i < 0 for i in self.layers):
            raise UsageError(f"CacheSpec.layers must be distinct indices >= 0, got {self.layers}")
        if self.num_hidden_layers and any(i > self.num_hidden_layers for i in self.layers):
            raise UsageError(f"CacheSpec.layers {self.layers} exceed the teacher's "
                             f"{self.num_hidden_layers} layers "
                             f"(valid: 0..{self.num_hidden_layers})")
        if any(i < 1 or (self.num_hidden_layers and i > self.num_hidden_layers)
               for i in self.attentions):
            raise UsageError(f"CacheSpec.attentions must be transformer layers 1.."
                             f"{self.num_hidden_layers or 'N'}, got {self.attentions}")
        if self.logits_topk < 0:
            raise UsageError(f"CacheSpec.logits_topk must be >= 0, got {self.logits_topk}")
        if self.token_logits and (self.logits_topk or self.pooling != "none"):
            raise UsageError("a question-answering cache keeps every position's start/end "
                             "logits and per-token states: logits_topk 0, pooling 'none'")
        self._check_tokens()

    def _check_tokens(self) -> None:
        """`tokens` set exactly for the token-level problem types, canonical, fit to the
        vocabulary (num_labels); no sentence-level top-k beside it."""
        if not self.tokens:
            if self.problem_type in TOKEN_PROBLEM_TYPES:
                raise UsageError(f"a {self.problem_type} cache needs its token spec "
                                 "(tokens='topk:K' or 'sample:N')")
            return
        spec = parse_token_spec(self.tokens)
        object.__setattr__(self, "tokens", str(spec))
        if self.problem_type not in TOKEN_PROBLEM_TYPES:
            raise UsageError(f"a token spec ({self.tokens}) is for the problem types "
                             f"{TOKEN_PROBLEM_TYPES}, not {self.problem_type!r}")
        if self.logits_topk:
            raise UsageError("a token-level cache keeps its sparse form (tokens); "
                             "logits_topk must be 0")
        spec.check_vocab(self.num_labels)

    @property
    def token_level(self) -> bool:
        """Whether rows hold a token-level teacher's sparse distributions (`tokens` set)."""
        return bool(self.tokens)

    @property
    def token_logits(self) -> bool:
        """Whether logits are per token [L, num_labels] (question answering)."""
        return self.problem_type == "question_answering"

    def logits_shape(self, length: int) -> Tuple[int, ...]:
        """The logits' shape of a row of `length` tokens."""
        return (length, self.num_labels) if self.token_logits else (self.num_labels,)

    @property
    def tokenization_settings(self) -> Dict[str, Any]:
        return dict(self.tokenization)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["tokenization"] = dict(self.tokenization)
        d["layers"] = list(self.layers)
        d["attentions"] = list(self.attentions)
        if d["backend"] == "eager":   # the default: omitted, so eager caches keep their old bytes
            del d["backend"]
        if not d["tokens"]:           # sentence-level: omitted likewise
            del d["tokens"]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CacheSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"unknown CacheSpec fields {unknown}: written by a newer version?")
        return cls(**dict(data))

    def differences(self, other: "CacheSpec") -> Dict[str, Tuple[Any, Any]]:
        """Fields (other than `model`) whose values differ: name -> (self, other)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "model":
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out[f.name] = (a, b)
        return out

    def check_compatible(self, other: "CacheSpec", *, what: str = "cache") -> None:
        """Raise CacheSpecMismatch naming each differing field."""
        diff = self.differences(other)
        if diff:
            parts = "; ".join(f"{k}: {what} has {a!r}, requested {b!r}"
                              for k, (a, b) in diff.items())
            raise CacheSpecMismatch(
                f"the {what} was built with a different spec ({parts}); use a new cache directory "
                "for this teacher/spec, or request what the cache stores")

    def with_(self, **changes: Any) -> "CacheSpec":
        return dataclasses.replace(self, **changes)


def _as_items(value: Any) -> Tuple[Tuple[str, Any], ...]:
    if isinstance(value, Mapping):
        items = value.items()
    else:
        items = [tuple(kv) for kv in value]
    return tuple(sorted((str(k), v) for k, v in items))


def default_layers(num_hidden_layers: int, layers: "str | Sequence[int]") -> Tuple[int, ...]:
    """Resolve "all" (0..N) or an explicit list of hidden-state indices."""
    if isinstance(layers, str):
        if layers != "all":
            raise UsageError(f"layers must be 'all' or a tuple of indices, got {layers!r}")
        return tuple(range(num_hidden_layers + 1))
    return tuple(int(i) for i in layers)


def optional_spec(data: Optional[Mapping[str, Any]]) -> Optional[CacheSpec]:
    return None if data is None else CacheSpec.from_dict(data)
