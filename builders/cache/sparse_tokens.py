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

torch is imported by the functions that take logits (topk_tokens, sample_tokens), not at import:
the cache's spec, shards and reader use this module's spec and Arrow columns, and the CLI loads
them without torch.

Token ids are uint16 when the vocabulary has at most 65,536 tokens, else int32. In Arrow a
record is one row: a list over its positions (`TOPK_COLUMN`, `SAMPLE_COLUMN`); an empty record
is an empty list.
"""
from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, List, Sequence, Union

import numpy as np

from distiller.common.errors import UsageError

if TYPE_CHECKING:
    import torch

__all__ = ["TokenSpec", "parse_token_spec", "TopKTokens", "SampledTokens", "id_dtype",
           "topk_tokens", "sample_tokens", "TOPK_COLUMN", "SAMPLE_COLUMN", "column_type",
           "encode_topk", "decode_topk", "encode_samples", "decode_samples",
           "estimate_bytes_per_token", "stored_bytes_per_token"]

KINDS = ("topk", "sample")
MAX_K = 65535            # counts are uint16; beyond this a "sparse" form is no longer sparse
MAX_SEED = 2 ** 64       # torch.Generator.manual_seed takes [0, 2**64)
TOPK_COLUMN = "token_topk"
SAMPLE_COLUMN = "token_sample"
_SPEC_TEXT = re.compile(r"(topk|sample):([0-9]+)")


@dataclasses.dataclass(frozen=True)
class TokenSpec:
    """What a token-level cache keeps per position: kind "topk" (k = K most likely tokens) or
    "sample" (k = N draws). `str()` is the canonical text, e.g. "topk:32"."""

    kind: str
    k: int

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"token spec kind must be one of {KINDS}, got {self.kind!r}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) \
                or not 1 <= self.k <= MAX_K:
            raise UsageError(f"token spec {self.kind}:K needs an integer K in 1..{MAX_K}, "
                             f"got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))

    def __str__(self) -> str:
        return f"{self.kind}:{self.k}"

    def check_vocab(self, vocab_size: int) -> None:
        """UsageError when this spec cannot apply to a vocabulary of `vocab_size` tokens (top-k
        with K > V; sampling may draw more tokens than the vocabulary holds)."""
        _check_vocab_size(vocab_size)
        if self.kind == "topk" and self.k > vocab_size:
            raise UsageError(f"token spec {self} keeps more tokens than the teacher's vocabulary "
                             f"of {vocab_size}: use topk:K with K <= {vocab_size}")


def parse_token_spec(text: Union[str, TokenSpec]) -> TokenSpec:
    """`topk:K` or `sample:N` (K, N positive integers, at most 65535) -> TokenSpec."""
    if isinstance(text, TokenSpec):
        return text
    m = _SPEC_TEXT.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise UsageError(f"token spec must be topk:K or sample:N with a positive integer "
                         f"(e.g. topk:32, sample:12), got {text!r}")
    return TokenSpec(m.group(1), int(m.group(2)))


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


# --- Arrow columns -----------------------------------------------------------------------------

def _arrow_id_type(vocab_size: int):
    import pyarrow as pa

    return pa.uint16() if id_dtype(vocab_size) == np.uint16 else pa.int32()


def column_type(spec: TokenSpec, vocab_size: int):
    """The Arrow type of a record's column: topk -> list<struct<ids: fixed_size_list<id>[K],
    logprobs: fixed_size_list<float16>[K], log_tail: float32>> (one struct per position);
    sample -> list<list<struct<id, count: uint16, logprob: float16>>> (positions, then the
    distinct ids drawn there)."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    ids = _arrow_id_type(vocab_size)
    if spec.kind == "topk":
        return pa.list_(pa.struct([("ids", pa.list_(ids, spec.k)),
                                   ("logprobs", pa.list_(pa.float16(), spec.k)),
                                   ("log_tail", pa.float32())]))
    return pa.list_(pa.list_(pa.struct([("id", ids), ("count", pa.uint16()),
                                        ("logprob", pa.float16())])))


def _offsets(sizes: Sequence[int]):
    import pyarrow as pa

    return pa.array(np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))])
                    .astype(np.int32), type=pa.int32())


def encode_topk(records: Sequence[TopKTokens], spec: TokenSpec, vocab_size: int):
    """A `column_type(spec)` Arrow array with one row per record."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ, k = column_type(spec, vocab_size), spec.k
    want = id_dtype(vocab_size)
    for r in records:
        if r.ids.shape != (r.positions, k) or r.ids.dtype != want \
                or r.logprobs.shape != r.ids.shape:
            raise UsageError(f"a top-k record of ids {r.ids.dtype}{list(r.ids.shape)} does not "
                             f"fit {spec} over a vocabulary of {vocab_size} ({want} ids)")
    ids = np.concatenate([r.ids.reshape(-1) for r in records] + [np.zeros(0, want)])
    lps = np.concatenate([r.logprobs.reshape(-1) for r in records] + [np.zeros(0, np.float16)])
    tails = np.concatenate([r.log_tail for r in records] + [np.zeros(0, np.float32)])
    fields = typ.value_type
    per_position = pa.StructArray.from_arrays(
        [pa.FixedSizeListArray.from_arrays(pa.array(ids), k),
         pa.FixedSizeListArray.from_arrays(pa.array(lps.astype(np.float16)), k),
         pa.array(tails.astype(np.float32))], fields=list(fields))
    return pa.ListArray.from_arrays(_offsets([r.positions for r in records]), per_position,
                                    type=typ)


def encode_samples(records: Sequence[SampledTokens], spec: TokenSpec, vocab_size: int):
    """A `column_type(spec)` Arrow array with one row per record."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ, want = column_type(spec, vocab_size), id_dtype(vocab_size)
    for r in records:
        if r.ids.dtype != want or int(r.sizes.sum()) != len(r.ids) \
                or not len(r.ids) == len(r.counts) == len(r.logprobs):
            raise UsageError(f"a sampled record of {r.ids.dtype} ids does not fit {spec} over "
                             f"a vocabulary of {vocab_size} ({want} ids)")
    flat = {name: np.concatenate([getattr(r, name) for r in records] + [np.zeros(0, dt)])
            for name, dt in (("ids", want), ("counts", np.uint16), ("logprobs", np.float16))}
    entries = pa.StructArray.from_arrays(
        [pa.array(flat["ids"]), pa.array(flat["counts"].astype(np.uint16)),
         pa.array(flat["logprobs"].astype(np.float16))], fields=list(typ.value_type.value_type))
    sizes = np.concatenate([r.sizes for r in records] + [np.zeros(0, np.int64)])
    positions = pa.ListArray.from_arrays(_offsets(sizes), entries, type=typ.value_type)
    return pa.ListArray.from_arrays(_offsets([r.positions for r in records]), positions, type=typ)


def _list_parts(column):
    """(values, offsets from 0) of a list array (chunked or sliced) without nulls."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise UsageError("a token-level column holds a null row: the shard is damaged; rebuild it")
    offsets = column.offsets.to_numpy().astype(np.int64)
    return column.flatten(), offsets - offsets[0]


def _np(array, dtype) -> np.ndarray:
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def decode_topk(column, spec: TokenSpec, vocab_size: int) -> List[TopKTokens]:
    """The records of an `encode_topk` column (after a Parquet round trip too)."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ = column_type(spec, vocab_size)
    if not (pa.types.is_list(column.type) and column.type.value_type.equals(typ.value_type)):
        raise UsageError(f"the token column holds {column.type}, not the {spec} form over a "
                         f"vocabulary of {vocab_size}: the cache was built with another spec")
    per_position, offsets = _list_parts(column)
    ids_col, lps_col, tail_col = per_position.flatten()
    k, want = spec.k, id_dtype(vocab_size)
    ids = _np(ids_col.flatten(), want).reshape(-1, k)
    lps = _np(lps_col.flatten(), np.float16).reshape(-1, k)
    tails = _np(tail_col, np.float32)
    return [TopKTokens(ids=ids[a:b], logprobs=lps[a:b], log_tail=tails[a:b])
            for a, b in zip(offsets[:-1], offsets[1:])]


def decode_samples(column, spec: TokenSpec, vocab_size: int) -> List[SampledTokens]:
    """The records of an `encode_samples` column (after a Parquet round trip too)."""
    import pyarrow as pa

    spec = parse_token_spec(spec)
    typ = column_type(spec, vocab_size)
    if not (pa.types.is_list(column.type) and column.type.value_type.equals(typ.value_type)):
        raise UsageError(f"the token column holds {column.type}, not the {spec} form over a "
                         f"vocabulary of {vocab_size}: the cache was built with another spec")
    positions, rec_off = _list_parts(column)
    entries, pos_off = _list_parts(positions)
    ids_col, counts_col, lps_col = entries.flatten()
    ids, counts = _np(ids_col, id_dtype(vocab_size)), _np(counts_col, np.uint16)
    lps, sizes = _np(lps_col, np.float16), np.diff(pos_off)
    return [SampledTokens(sizes=sizes[a:b], ids=ids[pos_off[a]:pos_off[b]],
                          counts=counts[pos_off[a]:pos_off[b]], logprobs=lps[pos_off[a]:pos_off[b]])
            for a, b in zip(rec_off[:-1], rec_off[1:])]


def estimate_bytes_per_token(spec: TokenSpec, vocab_size: int) -> float:
    """Bytes the Arrow column holds per position (before Parquet's encoding and compression;
    the 4-byte offset per record is left out). topk: exact, K x (id + 2) + 4; sample: an
    upper bound, 4 (the position's offset) + N x (id + 2 + 2), reached when all N draws differ
    (a peaked teacher repeats draws, so fewer are stored)."""
    spec = parse_token_spec(spec)
    id_bytes = id_dtype(vocab_size).itemsize
    if spec.kind == "topk":
        return float(spec.k * (id_bytes + 2) + 4)
    return float(4 + spec.k * (id_bytes + 2 + 2))


def stored_bytes_per_token(column) -> float:
    """Measured Arrow bytes per position of an encoded column (0.0 for no positions): what
    `cache stats` reports beside the estimate."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    positions = sum(len(c.flatten()) for c in chunks)
    return float(sum(c.nbytes for c in chunks)) / positions if positions else 0.0
