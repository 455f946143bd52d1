"""A masked or causal LM teacher run online, giving the rows a token-level cache would hold.

`OnlineSparseTeacher` runs the teacher on inputs it is given (token_inputs.py: input_ids,
positions, targets) and keeps its distribution at the positions in the cache's sparse form
(builders.cache.sparse_tokens.topk_tokens / sample_tokens, float16 and all): the baseline of the
cache parity test and of the cache-vs-online throughput benchmark. It has the attributes a
token-level source has (token_data.InMemoryTokens): problem_type, tokens, vocab_size.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from distiller.builders.cache.sparse_tokens import (SAMPLE_COLUMN, TOPK_COLUMN, TokenSpec,
                                                    parse_token_spec, sample_tokens, topk_tokens)
from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

from .forward import scored_logits
from .lm_student import output_vocab_size
from .token_data import collate_tokens, token_item
from .token_inputs import LM_PROBLEMS

__all__ = ["OnlineSparseTeacher", "record_seed"]


def record_seed(key: str) -> int:
    """The default sampling seed of a record: derived from its key alone."""
    return derive_seed("token-sample", key)


class OnlineSparseTeacher:
    """Teacher rows computed on request: get_many(keys) -> one row per key with the input's
    fields and the sparse distribution at its positions (under sparse_tokens' column name).

    inputs: key -> input (token_inputs); spec: "topk:K" or "sample:N"; seed_of(key): a
    record's sampling seed (default `record_seed`); micro_batch: records per forward pass
    (outputs of a padded batch may differ from one record's in the last bits); vocab: the
    token of each id (builders.cache.vocab.tokenizer_tokens of the teacher's tokenizer), for
    the student's vocabulary check."""

    def __init__(self, model, inputs: Mapping[str, Mapping[str, Any]], *, problem_type: str,
                 spec: Union[str, TokenSpec], seed_of: Optional[Callable[[str], int]] = None,
                 micro_batch: int = 16, pad_id: int = 0, device: str = "cpu",
                 vocab: Optional[Sequence[Optional[str]]] = None, vocab_source: str = "online"):
        if problem_type not in LM_PROBLEMS:
            raise UsageError(f"problem type must be one of {LM_PROBLEMS}, got {problem_type!r}")
        if micro_batch < 1:
            raise UsageError(f"micro_batch must be >= 1, got {micro_batch}")
        self.model = model.eval().to(device)
        self.inputs, self.problem_type, self.tokens = inputs, problem_type, parse_token_spec(spec)
        self.vocab_size = output_vocab_size(model)
        self.tokens.check_vocab(self.vocab_size)
        self.seed_of = seed_of or record_seed
        self.micro_batch, self.pad_id, self.device = micro_batch, pad_id, device
        self.vocab, self.vocab_source = vocab, vocab_source

    @torch.no_grad()
    def _logits(self, keys: Sequence[str]) -> List[torch.Tensor]:
        """The teacher's logits at each record's positions, [P, V] per key."""
        items = [token_item(dict(self.inputs[k], key=k)) for k in keys]
        batch = collate_tokens(items, pad_id=self.pad_id)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        # the vocabulary projection at the scored positions only (padded with position 0)
        logits = scored_logits(self.model, batch).float()
        return [logits[i, :len(it.positions)] for i, it in enumerate(items)]

    def lengths(self, keys: Sequence[str]) -> List[int]:
        return [len(self.inputs[k]["input_ids"]) for k in keys]

    def get_many(self, keys: Sequence[str]) -> List[Dict[str, Any]]:
        missing = [k for k in keys if k not in self.inputs]
        if missing:
            raise KeyError(f"{len(missing)} keys have no input, e.g. {missing[0]!r}")
        rows = []
        for start in range(0, len(keys), self.micro_batch):
            chunk = list(keys[start:start + self.micro_batch])
            for key, z in zip(chunk, self._logits(chunk)):
                row = {f: np.asarray(v) for f, v in self.inputs[key].items()}
                if self.tokens.kind == "topk":
                    row[TOPK_COLUMN] = topk_tokens(z, self.tokens.k)
                else:
                    row[SAMPLE_COLUMN] = sample_tokens(z, self.tokens.k, self.seed_of(key))
                rows.append(row)
        return rows
