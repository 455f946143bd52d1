"""Token-level training data: rows of a token-level cache (one per record) as padded batches.

A row holds the fields the cache reader returns for a masked or causal LM teacher
(docs/method.md, "Token-level distillation"): `input_ids` [L], `positions` [P], `targets` [P]
(token_inputs.py says what they are for each problem type), optionally `token_type_ids` [L], and
the teacher's sparse distribution at the P positions in the form builders.cache.sparse_tokens
decodes. `token_item` is the one place that reads such a row; it accepts the distribution as

- a TopKTokens under "token_topk" or a SampledTokens under "token_sample" (the column names of
  sparse_tokens: what decode_topk / decode_samples return), or
- flat fields: top-k `ids` [P, K], `logprobs` [P, K], `log_tail` [P]; sampled `sizes` [P] with
  the flat `ids`, `counts`, `logprobs`, or `ids`, `counts`, `logprobs` as one array per position;

and a row without a distribution is an input only (evaluation on text, the gold loss alone).
`collate_tokens` pads items to one batch:

    input_ids, attention_mask, token_type_ids   long [B, L]     (pad_id, 0, 0 on padding)
    positions                                   long [B, P]     (0 on padding)
    position_mask                               bool [B, P]
    targets                                     long [B, P]     (-100 on padding)
    top-k:   teacher_ids long [B, P, K], teacher_logprobs float [B, P, K], teacher_log_tail [B, P]
    sampled: teacher_ids long [B, P, M], teacher_counts float [B, P, M], teacher_logprobs [B, P, M]

(token_losses.pad_topk / pad_samples pad the distribution). A student's logits are gathered at
`positions` (forward.scored_logits: the LM head runs on those positions only).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from distiller.builders.cache.sparse_tokens import (SAMPLE_COLUMN, TOPK_COLUMN, SampledTokens,
                                                    TopKTokens, TokenSpec, parse_token_spec)
from distiller.common.errors import UsageError

from .data import InMemoryProvider
from .token_losses import pad_samples, pad_topk

__all__ = ["TokenItem", "token_item", "TokenRows", "collate_tokens", "token_fetcher",
           "InMemoryTokens"]

Sparse = Union[TopKTokens, SampledTokens]


@dataclasses.dataclass(frozen=True, eq=False)
class TokenItem:
    """One record: input_ids [L], positions [P], targets [P] (int64), token_type_ids [L] or
    None, and the teacher's distribution at the P positions (None: an input only)."""

    input_ids: np.ndarray
    positions: np.ndarray
    targets: np.ndarray
    token_type_ids: Optional[np.ndarray] = None
    sparse: Optional[Sparse] = None
    key: str = ""


def _array(value, dtype=np.int64) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _sparse(row: Mapping[str, Any], key: str) -> Optional[Sparse]:
    """The teacher's distribution of a row in any of the forms the module docstring lists."""
    for column, form in ((TOPK_COLUMN, TopKTokens), (SAMPLE_COLUMN, SampledTokens)):
        if row.get(column) is not None:
            if not isinstance(row[column], form):
                raise UsageError(f"row {key}: {column} holds a {type(row[column]).__name__}, not "
                                 f"the {form.__name__} sparse_tokens decodes")
            return row[column]
    if "log_tail" in row:
        return TopKTokens(ids=_array(row["ids"]), logprobs=_array(row["logprobs"], np.float32),
                          log_tail=_array(row["log_tail"], np.float32))
    if "counts" not in row:
        return None
    if "sizes" in row:
        return SampledTokens(sizes=_array(row["sizes"]), ids=_array(row["ids"]),
                             counts=_array(row["counts"], np.float32),
                             logprobs=_array(row["logprobs"], np.float32))
    per = [(_array(i).reshape(-1), _array(c, np.float32).reshape(-1),
            _array(lp, np.float32).reshape(-1))
           for i, c, lp in zip(row["ids"], row["counts"], row["logprobs"])]
    flat = [np.concatenate([p[j] for p in per] + [np.zeros(0, dt)])
            for j, dt in enumerate((np.int64, np.float32, np.float32))]
    return SampledTokens(sizes=np.array([len(p[0]) for p in per], np.int64), ids=flat[0],
                         counts=flat[1], logprobs=flat[2])


def token_item(row: Mapping[str, Any]) -> TokenItem:
    """A token-level row as the cache reader returns it (or as token_online / token_inputs make
    it) -> TokenItem, checked: positions inside the input, one target and one distribution per
    position. The join between the cache's reader and the student's trainer."""
    key = str(row.get("key", row.get("id", "?")))
    for field in ("input_ids", "positions", "targets"):
        if row.get(field) is None:
            raise UsageError(f"token-level row {key} has no {field!r}: not a row of a masked or "
                             "causal LM teacher")
    ids, pos, tgt = (_array(row[f]).reshape(-1) for f in ("input_ids", "positions", "targets"))
    types = None if row.get("token_type_ids") is None else \
        _array(row["token_type_ids"]).reshape(-1)
    if pos.shape != tgt.shape or (pos.size and (pos.min() < 0 or pos.max() >= len(ids))) \
            or (types is not None and types.shape != ids.shape):
        raise UsageError(f"token-level row {key}: {len(pos)} positions (within 0..{len(ids) - 1}"
                         f"?) and {len(tgt)} targets for {len(ids)} tokens do not fit together")
    sparse = _sparse(row, key)
    if sparse is not None and sparse.positions != len(pos):
        raise UsageError(f"token-level row {key}: the teacher's distribution covers "
                         f"{sparse.positions} positions, the row has {len(pos)}")
    return TokenItem(input_ids=ids, positions=pos, targets=tgt, token_type_ids=types,
                     sparse=sparse, key=key)


class TokenRows(torch.utils.data.Dataset):
    """A map-style Dataset of TokenItems over token-level rows; batch it with a DataLoader whose
    collate_fn is `functools.partial(collate_tokens, spec=..., pad_id=...)`."""

    def __init__(self, rows: Sequence[Mapping[str, Any]]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> TokenItem:
        return token_item(self.rows[index])


def _pad(arrays: Sequence[np.ndarray], length: int, value: int) -> torch.Tensor:
    out = np.full((len(arrays), length), value, dtype=np.int64)
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return torch.from_numpy(out)


def collate_tokens(items: Sequence[TokenItem], *, spec: Optional[Union[str, TokenSpec]] = None,
                   pad_id: int = 0) -> Dict[str, torch.Tensor]:
    """Pad items to one batch (the module docstring lists its fields). `spec`: the cache's
    TokenSpec ("topk:K" or "sample:N"); None: inputs only (any distribution the items hold is
    left out)."""
    form = k = None
    if spec is not None:
        spec = parse_token_spec(spec)
        form, k = spec.kind, spec.k
    if not items:
        raise UsageError("a token-level batch needs at least one row")
    length = max(len(it.input_ids) for it in items)
    width = max(max(len(it.positions) for it in items), 1)
    batch = {
        "input_ids": _pad([it.input_ids for it in items], length, pad_id),
        "attention_mask": _pad([np.ones(len(it.input_ids), np.int64) for it in items], length, 0),
        "token_type_ids": _pad([it.token_type_ids if it.token_type_ids is not None
                                else np.zeros(len(it.input_ids), np.int64) for it in items],
                               length, 0),
        "positions": _pad([it.positions for it in items], width, 0),
        "position_mask": _pad([np.ones(len(it.positions), np.int64) for it in items], width,
                              0).bool(),
        "targets": _pad([it.targets for it in items], width, -100),
    }
    if form is None:
        return batch
    missing = [it.key for it in items if it.sparse is None]
    wrong = [it.key for it in items if it.sparse is not None and not isinstance(
        it.sparse, TopKTokens if form == "topk" else SampledTokens)]
    if missing or wrong:
        raise UsageError(f"token-level row {(missing or wrong)[0]} "
                         f"{'has no' if missing else 'holds another form of'} teacher "
                         f"distribution: the cache is not a {form} cache")
    if form == "topk":
        if any(it.sparse.ids.shape[1:] != (k,) for it in items):
            raise UsageError(f"a top-k row holds another K than the cache's {k}")
        t = pad_topk([it.sparse for it in items], k, length=width)
        batch.update(teacher_ids=t.ids, teacher_logprobs=t.logprobs, teacher_log_tail=t.log_tail)
    else:
        t = pad_samples([it.sparse for it in items], length=width)
        batch.update(teacher_ids=t.ids, teacher_counts=t.counts, teacher_logprobs=t.logprobs)
    return batch


def _check_ids(items: Sequence[TokenItem], embeds: int, vocab_size: Optional[int]) -> None:
    """Token ids the student cannot embed or predict: one clear line, not an IndexError."""
    for it in items:
        top = int(it.input_ids.max()) if len(it.input_ids) else -1
        if top >= embeds:
            raise UsageError(f"row {it.key} holds token id {top} but the student embeds only "
                             f"{embeds} ids: use a student with the teacher's tokenizer")
        ids = it.sparse.ids if it.sparse is not None else np.zeros(0, np.int64)
        most = max([int(ids.max()) if ids.size else -1]
                   + [int(it.targets.max()) if len(it.targets) else -1])
        if vocab_size is not None and most >= vocab_size:
            raise UsageError(f"row {it.key} holds token id {most} but the student predicts only "
                             f"{vocab_size} tokens: use a student with the teacher's vocabulary")


def token_fetcher(provider, *, spec: Optional[Union[str, TokenSpec]], pad_id: int = 0,
                  embeds: Optional[int] = None, vocab_size: Optional[int] = None
                  ) -> Callable[[Sequence[Mapping]], Dict[str, torch.Tensor]]:
    """corpus rows (each with a `key`) -> padded batch, the rows' teacher rows read from
    `provider.get_many(keys)`; with `embeds` / `vocab_size` (the student's embedding rows and
    output width) an id the student cannot take is an error naming the row."""
    def fetch(rows: Sequence[Mapping]) -> Dict[str, torch.Tensor]:
        keys = [r["key"] for r in rows]
        items: List[TokenItem] = []
        for key, out in zip(keys, provider.get_many(keys)):
            items.append(token_item(dict(out, key=key)))
        if embeds is not None:
            _check_ids(items, embeds, vocab_size)
        return collate_tokens(items, spec=spec, pad_id=pad_id)
    return fetch


class InMemoryTokens(InMemoryProvider):
    """Token-level teacher rows held in a dict key -> row (tests, small experiments), with what
    a token-level cache says about its teacher: problem_type ("masked_lm" | "causal_lm"),
    tokens (the TokenSpec, e.g. "topk:8"), vocab_size (the width of the teacher's
    distribution) and optionally vocab (the token of each id, as builders.cache.vocab keeps it)."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]], *, problem_type: str,
                 tokens: Union[str, TokenSpec], vocab_size: int,
                 vocab: Optional[Sequence[Optional[str]]] = None, vocab_source: str = "in memory"):
        super().__init__(outputs)
        self.problem_type, self.tokens = problem_type, parse_token_spec(tokens)
        self.vocab_size, self.vocab, self.vocab_source = int(vocab_size), vocab, vocab_source
