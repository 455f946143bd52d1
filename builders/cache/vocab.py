"""The teacher's vocabulary, kept in the cache, and comparing a student's with it.

A cache stores token ids made by the teacher's tokenizer, and a student is fed those ids as they
are: a student whose tokenizer maps other tokens to those ids trains without a word and learns
noise; one with fewer tokens meets ids it cannot embed. So a build writes the teacher's
vocabulary (token of each id) to ``cache/vocab.json`` once, listed in the manifest with its size
and sha256, and the trainer compares the student's tokenizer with it before the first step.

A cache written before the vocabulary was kept has no such file; its vocabulary is then read
from the tokenizer at the spec's ``model`` path when that still loads (said in the result).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from .files import entry_path, open_regular
from .errors import CacheError
from .manifest import atomic_write_bytes, locked, read_manifest, write_manifest

if TYPE_CHECKING:
    from .store import TeacherCache

__all__ = ["VOCAB_FILE", "tokenizer_tokens", "record_vocabulary", "cache_vocabulary",
           "vocab_differences"]

log = logging.getLogger(__name__)

VOCAB_FILE = "vocab.json"


def tokenizer_tokens(tokenizer) -> List[Optional[str]]:
    """The token of each id, added tokens included (None for an id no token has)."""
    vocab = tokenizer.get_vocab()
    size = max([len(tokenizer)] + [i + 1 for i in vocab.values()])
    tokens: List[Optional[str]] = [None] * size
    for token, i in sorted(vocab.items(), key=lambda kv: (kv[1], kv[0])):
        if tokens[i] is None:
            tokens[i] = token
    return tokens


def record_vocabulary(cache: "TeacherCache", tokenizer) -> bool:
    """Write the teacher's vocabulary into `cache` unless it is there; True if written.

    Called with the teacher whose spec the cache was just opened with (same fingerprint, hence
    the same tokenizer), so a cache that has the file keeps it."""
    if cache.manifest.get("vocab"):
        return False
    tokens = tokenizer_tokens(tokenizer)
    data = json.dumps({"size": len(tokens), "tokens": tokens}, ensure_ascii=False).encode()
    with locked(cache.path):
        manifest = read_manifest(cache.path)
        if manifest.get("vocab"):
            return False
        atomic_write_bytes(os.path.join(cache.path, VOCAB_FILE), data)
        manifest["vocab"] = {"file": VOCAB_FILE, "size": len(tokens),
                             "sha256": hashlib.sha256(data).hexdigest()}
        write_manifest(cache.path, manifest)
    cache.refresh()
    return True


def cache_vocabulary(cache_path: str) -> Tuple[Optional[List[Optional[str]]], str]:
    """(token of each id, where it comes from) of the cache at `cache_path`; (None, why) when
    it cannot be known (an old cache whose teacher's tokenizer is gone)."""
    manifest = read_manifest(cache_path)
    entry = manifest.get("vocab")
    if entry:
        path = entry_path(cache_path, "", entry["file"], what="vocabulary file")
        try:
            with open_regular(path, what="vocabulary file") as fh:
                data = fh.read()
        except OSError as exc:
            raise CacheError(f"the cache's vocabulary {path} cannot be read ({exc.strerror}): "
                             "run `distiller cache verify`") from None
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CacheError(f"the cache's vocabulary {path} was altered (checksum mismatch): "
                             "run `distiller cache verify`")
        return json.loads(data.decode("utf-8"))["tokens"], path
    model = manifest["spec"].get("model") or ""
    if model and os.path.isdir(model):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as exc:
            return None, f"no vocabulary in the cache and none loads from {model} ({exc})"
        return tokenizer_tokens(tokenizer), (f"the tokenizer of the cache's teacher {model} (the "
                                             "cache predates recorded vocabularies)")
    return None, (f"no vocabulary in the cache (built before they were recorded) and its "
                  f"teacher {model or '(unnamed)'} is not on this machine")


def vocab_differences(expected: Sequence[Optional[str]], actual: Sequence[Optional[str]],
                      limit: int = 3) -> Tuple[int, List[str]]:
    """(number of ids whose tokens differ, the first `limit` of them described) over the ids of
    either vocabulary."""
    n, first = 0, []
    for i in range(max(len(expected), len(actual))):
        a = expected[i] if i < len(expected) else None
        b = actual[i] if i < len(actual) else None
        if a != b:
            n += 1
            if len(first) < limit:
                first.append(f"id {i} is {a!r} in the cache, {b!r} in the student's")
    return n, first
