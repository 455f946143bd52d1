"""Where a token-level run reads its teacher: a token-level cache (`CacheTokens`) or a source
given in code (token_data.InMemoryTokens, token_online.OnlineSparseTeacher).

A source has `problem_type` ("masked_lm" | "causal_lm"), `tokens` (the TokenSpec),
`vocab_size` (the width of the teacher's distribution), `vocab` / `vocab_source` (the token of
each id and where it comes from, or None) and `get_many(keys)` -> rows (token_data.token_item
reads them). `token_problem` tells the trainer whether a run is token-level at all.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.sparse_tokens import parse_token_spec
from distiller.builders.cache.store import TeacherCache
from distiller.builders.cache.vocab import cache_vocabulary
from distiller.common.errors import UsageError

from .token_inputs import LM_PROBLEMS

__all__ = ["CacheTokens", "token_problem", "cache_problem_type"]


def cache_problem_type(path: str) -> str:
    """The problem type the cache at `path` was built for (its spec's)."""
    return TeacherCache.open(path).spec.problem_type


def token_problem(config, provider=None) -> Optional[str]:
    """"masked_lm" / "causal_lm" when the run's teacher is token-level, else None: the
    problem type of an injected source, else of the config's cache (distill mode)."""
    if provider is not None:
        problem = getattr(provider, "problem_type", None)
    elif config.mode == "distill" and config.cache:
        problem = cache_problem_type(config.cache)
    else:
        return None
    return problem if problem in LM_PROBLEMS else None


class CacheTokens:
    """The token-level source of a cache directory: its spec's problem type, token spec and
    vocabulary size (what the teacher's scoring recorded: CacheSpec.tokens and vocab_size), its
    recorded vocabulary, and its rows through the cache reader."""

    prefetch_safe = True     # reading and decoding: the trainer may fetch on a thread

    def __init__(self, path: str):
        cache = TeacherCache.open(path)
        spec = cache.spec
        self.path, self.problem_type = path, spec.problem_type
        if self.problem_type not in LM_PROBLEMS:
            raise UsageError(f"cache {path!r} was built for {self.problem_type}, not a masked or "
                             "causal LM teacher")
        # the spec's rules hold `tokens` set for exactly these problem types, and an LM cache's
        # num_labels is the teacher's vocabulary (CacheSpec.vocab_size)
        self.tokens = parse_token_spec(spec.tokens)
        self.vocab_size = spec.vocab_size
        self.vocab, self.vocab_source = cache_vocabulary(path)
        self.reader = CacheReader(path, layers=[], attentions=False)
        self._cache = cache

    def read_corpus(self, name: str) -> List[Dict[str, Any]]:
        return self._cache.read_corpus(name)

    def get_many(self, keys: Sequence[str]) -> List[Dict[str, Any]]:
        return self.reader.get_many(keys)

    def lengths(self, keys: Sequence[str]) -> List[int]:
        return self.reader.lengths(keys)
