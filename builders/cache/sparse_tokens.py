"""Sparse per-token teacher distributions: the `topk:K` and `sample:N` forms (docs/method.md,
"Token-level distillation").

A token-level teacher (a masked or causal LM) gives one distribution over the vocabulary per
position; a dense [positions, V] cache would be far too large, so one of two sparse forms is kept:

- `topk:K` — per position the K most likely token ids, their log-probabilities at temperature 1
  (float16, most likely first; equal log-probabilities in id order) and the log of the remaining
  mass `log_tail` (float32). `log_tail` is computed as a log-sum-exp over the tokens left out (not
  as log(1 - sum), which cancels when the tail is tiny); it is -inf exactly when the left-out
  tokens have no mass (K = V, or a teacher that gives them -inf logits), and never NaN.
- `sample:N` — N tokens drawn per position, with replacement, from the teacher's distribution at
  temperature 1, stored as the distinct ids drawn (in id order), how often each was drawn
  (`count`, uint16; the counts of a position sum to N) and the teacher's log-probability of each
  (float16: the KL value and a temperature other than 1 need it, docs/method.md). counts / N is
  the empirical teacher distribution, an unbiased estimate of it.

Draws are seeded per record: uniforms from a CPU `torch.Generator` seeded with the record's
seed, mapped through the teacher's cumulative distribution in float64 (inverse-CDF sampling), so
the draws of a record depend on its seed and its logits only, not on the device the teacher ran
on (up to the last bit of the cumulative sum: a draw moves only when a uniform lands within about
1e-15 of a boundary). Memory: one float64 [P, V] array per call; call it per record.

How a cache stores either form is part of the spec text: `topk:K` / `sample:N` keep the values
above in plain Arrow columns; the suffix `:packed` bit-packs the ids and quantises the
log-probabilities to 8 bits per entry (token_packing.py); `:zstd` compresses the cache's shards
with zstd. E.g. `topk:32:packed:zstd` (options in that order). The storage decides only the
bytes a position takes and the rounding of the stored values, not what is kept (token_columns.py).

torch is imported by the functions that take logits (topk_tokens, sample_tokens), not at import:
the cache's spec, shards and reader use this module's spec, and the CLI loads them without torch.

Token ids are uint16 when the vocabulary has at most 65,536 tokens, else int32.
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Union

import numpy as np

from distiller.common.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = ["TokenSpec", "parse_token_spec", "TopKTokens", "SampledTokens", "id_dtype",
           "topk_tokens", "sample_tokens", "TOPK_COLUMN", "SAMPLE_COLUMN", "STORAGE_OPTIONS"]

KINDS = ("topk", "sample")
MAX_K = 65535            # counts are uint16; beyond this a "sparse" form is no longer sparse
MAX_SEED = 2 ** 64       # torch.Generator.manual_seed takes [0, 2**64)
TOPK_COLUMN = "token_topk"
SAMPLE_COLUMN = "token_sample"
STORAGE_OPTIONS = ("packed", "zstd")    # spec suffixes, in this order (see the module's doc)
_SPEC_TEXT = re.compile(r"(topk|sample):([0-9]+)((?::[a-z0-9]+)*)")


@dataclasses.dataclass(frozen=True)
class TokenSpec:
    """What a token-level cache keeps per position: kind "topk" (k = K most likely tokens) or
    "sample" (k = N draws), and how: `packed` (bit-packed ids, 8-bit log-probabilities) and
    `zstd` (compressed shards). `str()` is the canonical text, e.g. "topk:32:packed"."""

    kind: str
    k: int
    packed: bool = False
    zstd: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"token spec kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) \
                or not 1 <= self.k <= MAX_K:
            raise UsageError(f"token spec {self.kind}:K needs an integer K in 1..{MAX_K}, "
                             f"got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))
        for name in STORAGE_OPTIONS:
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"token spec option {name} must be True or False, got "
                                 f"{getattr(self, name)!r}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.k}" + "".join(f":{o}" for o in STORAGE_OPTIONS
                                                  if getattr(self, o))

    def check_vocab(self, vocab_size: int) -> None:
        """UsageError when this spec cannot apply to a vocabulary of `vocab_size` tokens (top-k
        with K > V; sampling may draw more tokens than the vocabulary holds)."""
        _check_vocab_size(vocab_size)
        if self.kind == "topk" and self.k > vocab_size:
            raise UsageError(f"token spec {self} keeps more tokens than the teacher's vocabulary "
                             f"of {vocab_size}: use topk:K with K <= {vocab_size}")


def parse_token_spec(text: Union[str, TokenSpec]) -> TokenSpec:
    """`topk:K` or `sample:N` (K, N positive integers, at most 65535), optionally followed by
    `:packed` and/or `:zstd` in that order -> TokenSpec."""
    if isinstance(text, TokenSpec):
        return text
    m = _SPEC_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    options = m.group(3).split(":")[1:] if m else []
    if m is None or options != [o for o in STORAGE_OPTIONS if o in options]:
        raise UsageError(f"token spec must be topk:K or sample:N with a positive integer, "
                         f"optionally followed by :packed and/or :zstd in that order (e.g. "
                         f"topk:32, sample:12:packed), got {text!r}")
    return TokenSpec(m.group(1), int(m.group(2)), **{o: True for o in options})


def _check_vocab_size(vocab_size: int) -> None:
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) \
            or not 1 <= vocab_size < 2 ** 31:
        raise UsageError(f"vocabulary size must be an integer in 1..2**31-1, got {vocab_size!r}")


def id_dtype(vocab_size: int) -> np.dtype:
    """uint16 for vocabularies of at most 65,536 tokens (ids 0..65535), else int32."""
    _check_vocab_size(vocab_size)
    return np.dtype(np.uint16) if vocab_size <= 65536 else np.dtype(np.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class TopKTokens:
    """One record's top-k form: ids [P, K] (uint16 or int32), logprobs float16 [P, K] (most
    likely first), log_tail float32 [P] (-inf where the K tokens hold all the mass)."""

    ids: np.ndarray
    logprobs: np.ndarray
    log_tail: np.ndarray

    @property
    def positions(self) -> int:
        return int(self.log_tail.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class SampledTokens:
    """One record's sampled form, flat over its positions: sizes [P] (distinct ids drawn at each
    position, >= 1), and per distinct id, position after position: ids [U] (uint16 or int32,
    increasing within a position), counts uint16 [U] (summing to N per position), logprobs
    float16 [U] (the teacher's log-probability of the id at temperature 1)."""

    sizes: np.ndarray
    ids: np.ndarray
    counts: np.ndarray
    logprobs: np.ndarray

    @property
    def positions(self) -> int:
        return int(self.sizes.shape[0])

    def offsets(self) -> np.ndarray:
        """[P + 1] start of each position's entries in the flat arrays (and the end)."""
        return np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)])


def _teacher_logprobs(logits: "torch.Tensor") -> "torch.Tensor":
    """log-softmax (float32) of [P, V] teacher logits; UsageError for another shape or for NaN,
    +inf or all -inf rows (no distribution to keep)."""
    import torch

    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < 1:
        raise UsageError(f"token-level teacher logits must be a [positions, vocab] tensor, got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    _check_vocab_size(logits.shape[1])
    z = logits.detach().float()
    if z.numel() and bool((torch.isnan(z) | (z == float("inf"))).any()
                          or (z == float("-inf")).all(-1).any()):
        raise UsageError("the teacher's token logits hold NaN, +inf or a row of -inf: run the "
                         "teacher at float32 (compute) to rule out an overflow")
    return torch.log_softmax(z, dim=-1)


def topk_tokens(logits: "torch.Tensor", k: int) -> TopKTokens:
    """The top-k form of one record's teacher logits [P, V] (P may be 0)."""
    import torch

    with torch.no_grad():
        return _topk_tokens(logits, k)


def _topk_tokens(logits, k: int) -> TopKTokens:
    import torch

    logp = _teacher_logprobs(logits)
    P, V = logp.shape
    TokenSpec("topk", k).check_vocab(V)
    top, idx = torch.topk(logp, k, dim=-1)
    # a fixed order on ties (the kernel's order is not): by id, then stably by value descending
    idx, order = idx.sort(dim=-1)
    top = top.gather(-1, order)
    top, order = top.sort(dim=-1, descending=True, stable=True)
    idx = idx.gather(-1, order)
    if k == V:
        tail = torch.full((P,), float("-inf"), device=logp.device)
    else:   # log-sum-exp over the tokens left out; -inf (not NaN) when they have no mass
        tail = torch.logsumexp(logp.scatter(-1, idx, float("-inf")), dim=-1)
    return TopKTokens(ids=idx.cpu().numpy().astype(id_dtype(V)),
                      logprobs=top.cpu().numpy().astype(np.float16),
                      log_tail=tail.cpu().numpy().astype(np.float32))


def sample_tokens(logits: "torch.Tensor", n: int, seed: int) -> SampledTokens:
    """N draws per position (with replacement) from one record's teacher distribution
    softmax(logits [P, V]), seeded by the record's `seed` (an integer in [0, 2**64))."""
    import torch

    with torch.no_grad():
        return _sample_tokens(logits, n, seed)


def _sample_tokens(logits, n: int, seed: int) -> SampledTokens:
    import torch

    logp = _teacher_logprobs(logits)
    P, V = logp.shape
    TokenSpec("sample", n).check_vocab(V)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < MAX_SEED:
        raise UsageError(f"a record's sampling seed must be an integer in [0, 2**64), "
                         f"got {seed!r}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    u = torch.rand((P, n), generator=gen, dtype=torch.float64).to(logp.device)
    cdf = logp.double().exp().cumsum(dim=-1)
    # token v is drawn when cdf[v-1] <= u * total < cdf[v]: zero-probability tokens never are
    draws = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=V - 1)
    draws = draws.sort(dim=-1).values
    drawn_logp = logp.gather(-1, draws).cpu().numpy()
    d = draws.cpu().numpy()
    first = np.ones(d.shape, dtype=bool)          # the first of each run of equal ids in a row
    first[:, 1:] = d[:, 1:] != d[:, :-1]
    starts = np.flatnonzero(first.ravel())         # every row starts a run: runs stay in rows
    counts = np.diff(np.append(starts, d.size))
    return SampledTokens(sizes=first.sum(axis=1).astype(np.int64),
                         ids=d.ravel()[starts].astype(id_dtype(V)),
                         counts=counts.astype(np.uint16),
                         logprobs=drawn_logp.ravel()[starts].astype(np.float16))
