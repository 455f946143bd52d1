"""CacheSpec: what a teacher cache stores, recorded in its manifest (docs/cache.md, "Spec").

Two caches (or a cache and a request) are compatible when every field but `model` (a name or path,
kept for humans only) is equal.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from distiller.common.config import Allowed, Rule, Wording, refuse_unknown, setting, validate
from distiller.common.errors import UsageError

from .errors import CacheSpecMismatch
from .sparse_tokens import parse_token_spec

__all__ = ["CacheSpec", "SCHEMA_VERSION", "DTYPES", "COMPUTE_DTYPES", "BACKENDS", "POOLINGS",
           "TOKEN_PROBLEM_TYPES", "TOKENS_ALLOWED"]

SCHEMA_VERSION = 1           # bumped when the shard layout changes
DTYPES = ("float32", "float16", "int8")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")  # what the teacher's forward ran at
BACKENDS = ("eager", "compile", "onnx")  # what ran it: PyTorch eager, torch.compile, ONNX Runtime
POOLINGS = ("none", "cls", "mean")
TOKEN_PROBLEM_TYPES = ("masked_lm", "causal_lm")   # token-level teachers (`tokens` set)


def _as_items(value: Any) -> Tuple[Tuple[str, Any], ...]:
    if isinstance(value, Mapping):
        items = value.items()
    else:
        items = [tuple(kv) for kv in value]
    return tuple(sorted((str(k), v) for k, v in items))


def _indices(value: Any) -> Tuple[int, ...]:
    if isinstance(value, str):
        raise TypeError(value)
    return tuple(int(i) for i in value)


def _distinct(value: Tuple[int, ...]) -> Optional[str]:
    if len(set(value)) != len(value) or any(i < 0 for i in value):
        return "expected distinct hidden-state indices >= 0"
    return None


def _token_text(value: str) -> str:
    """The canonical text of a token spec ('topk:K' / 'sample:N'), '' for none."""
    if not value:
        return ""
    try:
        return str(parse_token_spec(value))
    except UsageError:
        raise ValueError(value) from None


# what a `tokens` field holds (the cache spec's, a build's): '' or a canonical token spec
TOKENS_ALLOWED = Allowed(kind="str", convert=_token_text,
                         what="'' or a token spec, topk:K or sample:N (K, N in 1..65535), "
                              "optionally :packed and/or :zstd")
WORDING = Wording(field="CacheSpec field {key!r}", whole="CacheSpec")


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
    manifest without it reads as eager). Each field declares what it may hold
    (distiller.common.config) and `RULES` (below) the rules between fields.
    problem_type "question_answering" (span tasks): the logits are per token, [L, num_labels]
    (num_labels 2: start, end) trimmed to the row's length like hidden states, one row per
    context window; otherwise they are [num_labels] per row. The shard layout is the same
    (schema version unchanged): only the logits' shape follows from the spec.
    tokens (problem_type "masked_lm" / "causal_lm", a token-level teacher): the sparse form kept
    per predicted position, canonical text "topk:K" / "sample:N" (sparse_tokens.TokenSpec);
    num_labels is then the teacher's vocabulary size (read it as `vocab_size`). Such a cache
    has no `logits` column but positions, targets and the sparse column (docs/cache.md,
    "Token-level caches"); a masked LM's masking settings are in `tokenization` (so in every
    key). Empty for every other cache and then left out of `to_dict`, like an eager backend:
    their manifests and shards keep their bytes.
    """

    fingerprint: str = setting(kind="str", check=lambda v: None if v else "expected the teacher's "
                               "fingerprint: build the spec with Teacher.spec()")
    tokenization: Tuple[Tuple[str, Any], ...] = setting(convert=_as_items,
                                                        what="a mapping of settings")
    layers: Tuple[int, ...] = setting(convert=_indices, check=_distinct,
                                      what="a list of hidden-state indices >= 0")
    pooling: str = setting("none", kind="str", choices=POOLINGS)
    attentions: Tuple[int, ...] = setting((), convert=_indices,
                                          what="a list of transformer layers >= 1")
    dtype: str = setting("float16", kind="str", choices=DTYPES)
    logits_dtype: str = setting("float32", kind="str", choices=DTYPES)
    logits_topk: int = setting(0, kind="int", low=0)
    compute: str = setting("float32", kind="str", choices=COMPUTE_DTYPES)
    backend: str = setting("eager", kind="str", choices=BACKENDS)
    tokens: str = setting("", TOKENS_ALLOWED)
    num_labels: int = 2
    problem_type: str = "single_label_classification"
    hidden_size: int = 0
    num_heads: int = 0
    num_hidden_layers: int = 0
    max_length: int = 128
    model: str = setting("", convert=str)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        validate(self, RULES, WORDING)   # each field as declared, then the rules below

    @property
    def token_level(self) -> bool:
        """Whether rows hold a token-level teacher's sparse distributions (`tokens` set)."""
        return bool(self.tokens)

    @property
    def vocab_size(self) -> int:
        """A token-level cache's vocabulary size, the width of the teacher's distribution at
        each position: what `num_labels` records for a language model (its classes are its
        tokens). UsageError for a sentence-level cache, whose num_labels are classes."""
        if not self.token_level:
            raise UsageError(f"a {self.problem_type} cache has classes, not a vocabulary: "
                             "vocab_size is a token-level (masked_lm / causal_lm) cache's")
        return self.num_labels

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
        refuse_unknown(data, [f.name for f in dataclasses.fields(cls)], what="CacheSpec fields",
                       note=" (written by a newer version?)")
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


def default_layers(num_hidden_layers: int, layers: "str | Sequence[int]") -> Tuple[int, ...]:
    """Resolve "all" (0..N) or an explicit list of hidden-state indices."""
    if isinstance(layers, str):
        if layers != "all":
            raise UsageError(f"layers must be 'all' or a tuple of indices, got {layers!r}")
        return tuple(range(num_hidden_layers + 1))
    return tuple(int(i) for i in layers)


def _vocab_problem(spec: CacheSpec) -> Optional[str]:
    """Why a token-level spec's form cannot apply to its vocabulary (num_labels), or None."""
    try:
        parse_token_spec(spec.tokens).check_vocab(spec.num_labels)
    except UsageError as exc:
        return str(exc)
    return None


def _attention_problem(spec: CacheSpec) -> bool:
    top = spec.num_hidden_layers
    return any(i < 1 or (top and i > top) for i in spec.attentions)


# The cross-field rules, checked in this order after every field's own declaration.
RULES = (
    Rule("attention maps are per token", key="attentions",
         holds=lambda s: s.pooling == "none" or not s.attentions,
         says="attention maps are per token: they cannot be kept with pooling {self.pooling!r}; "
              "use pooling='none' or attentions=()"),
    Rule("layers the teacher has", key="layers",
         holds=lambda s: not s.num_hidden_layers or all(i <= s.num_hidden_layers
                                                        for i in s.layers),
         says="the teacher has {self.num_hidden_layers} layers (valid: "
              "0..{self.num_hidden_layers})"),
    Rule("attentions of transformer layers", key="attentions",
         holds=lambda s: not _attention_problem(s),
         says=lambda s: f"expected transformer layers 1..{s.num_hidden_layers or 'N'}"),
    Rule("question answering keeps every position", key="logits_topk",
         holds=lambda s: not s.token_logits or (not s.logits_topk and s.pooling == "none"),
         says="a question-answering cache keeps every position's start/end logits and "
              "per-token states: logits_topk 0, pooling 'none'"),
    Rule("a language model's cache keeps a token form", key="tokens",
         holds=lambda s: s.tokens or s.problem_type not in TOKEN_PROBLEM_TYPES,
         says="a {self.problem_type} cache needs its token spec (tokens 'topk:K' or "
              "'sample:N')"),
    Rule("a token form is a language model's", key="tokens",
         holds=lambda s: not s.tokens or s.problem_type in TOKEN_PROBLEM_TYPES,
         says=lambda s: f"a token spec is for the problem types {list(TOKEN_PROBLEM_TYPES)}, "
                        f"not {s.problem_type!r}"),
    Rule("a token-level cache keeps no sentence top-k", key="logits_topk",
         holds=lambda s: not s.tokens or not s.logits_topk,
         says="a token-level cache keeps its sparse form (tokens); logits_topk must be 0"),
    Rule("the token form fits the vocabulary", key="tokens",
         holds=lambda s: not s.tokens or _vocab_problem(s) is None,
         says=lambda s: _vocab_problem(s)),
)


def optional_spec(data: Optional[Mapping[str, Any]]) -> Optional[CacheSpec]:
    return None if data is None else CacheSpec.from_dict(data)
