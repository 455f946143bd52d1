"""Fingerprints of what a teacher really loaded: weights, config and tokenizer (contract 2).

Never a path or a modification time. Anything that cannot be hashed raises FingerprintError.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict

from ..cache.errors import FingerprintError

__all__ = ["FINGERPRINT_VERSION", "weights_digest", "config_digest", "tokenizer_digest",
           "teacher_fingerprint"]

FINGERPRINT_VERSION = "teacher-fingerprint/v1"

# Config fields that name where a model came from or which library wrote it, not what it computes.
_CONFIG_IGNORED = {"_name_or_path", "transformers_version", "_commit_hash", "name_or_path",
                   "_attn_implementation", "_attn_implementation_autoset", "attn_implementation",
                   "output_hidden_states", "output_attentions", "return_dict", "torch_dtype",
                   "dtype", "use_cache"}
# Tokenizer init kwargs that are file locations or bookkeeping.
_TOKENIZER_IGNORED = {"name_or_path", "vocab_file", "tokenizer_file", "merges_file",
                      "special_tokens_map_file", "_commit_hash", "cache_dir", "local_files_only",
                      "token", "revision", "trust_remote_code"}


def weights_digest(model: Any) -> str:
    """blake2b over every state_dict tensor (name, dtype, shape, raw bytes), in name order."""
    import torch

    try:
        state = model.state_dict()
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot fingerprint"
        raise FingerprintError(f"cannot read the teacher's state_dict to fingerprint it: {exc}")
    if not state:
        raise FingerprintError("the teacher has no weights to fingerprint (empty state_dict)")
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            raise FingerprintError(f"state_dict entry {name!r} is a {type(t).__name__}, "
                                   "not a tensor: cannot fingerprint it")
        if t.is_meta:
            raise FingerprintError(f"weight {name!r} is on the meta device (not loaded): "
                                   "cannot fingerprint a model whose weights are not materialised")
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _canonical(obj: Any, what: str) -> str:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise FingerprintError(f"the teacher's {what} is not JSON-serialisable ({exc}): cannot "
                               "fingerprint it") from exc


def config_digest(config: Any) -> str:
    try:
        data = config.to_dict()
    except Exception as exc:  # noqa: BLE001
        raise FingerprintError(f"cannot serialise the teacher config: {exc}") from exc
    data = {k: v for k, v in data.items() if k not in _CONFIG_IGNORED}
    return hashlib.blake2b(_canonical(data, "config").encode(), digest_size=16).hexdigest()


def tokenizer_digest(tokenizer: Any) -> str:
    """Fast tokenizers: their full serialisation (vocab, normaliser, pre-tokeniser, post-processor);
    slow ones: the vocabulary. Both plus special tokens and settings that change the ids."""
    parts: Dict[str, Any] = {"class": type(tokenizer).__name__}
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        try:
            serialised = json.loads(backend.to_str())
        except Exception as exc:  # noqa: BLE001
            raise FingerprintError(f"cannot serialise the fast tokenizer: {exc}") from exc
        # Truncation/padding state set by earlier calls is runtime state, not identity.
        serialised.pop("truncation", None)
        serialised.pop("padding", None)
        parts["backend"] = serialised
    else:
        try:
            parts["vocab"] = sorted(tokenizer.get_vocab().items())
        except Exception as exc:  # noqa: BLE001
            raise FingerprintError(
                f"tokenizer {type(tokenizer).__name__} exposes neither a fast backend nor a "
                f"vocabulary ({exc}): cannot fingerprint it") from exc
    init = getattr(tokenizer, "init_kwargs", {}) or {}
    parts["init"] = {k: str(v) for k, v in sorted(init.items()) if k not in _TOKENIZER_IGNORED}
    parts["special"] = {k: str(v) for k, v in sorted(
        getattr(tokenizer, "special_tokens_map", {}).items())}
    parts["padding_side"] = getattr(tokenizer, "padding_side", None)
    parts["truncation_side"] = getattr(tokenizer, "truncation_side", None)
    return hashlib.blake2b(_canonical(parts, "tokenizer").encode(), digest_size=16).hexdigest()


def teacher_fingerprint(model: Any, tokenizer: Any) -> str:
    """32-hex fingerprint of (weights, config, tokenizer); tokenization settings enter the key."""
    h = hashlib.blake2b(digest_size=16)
    for part in (FINGERPRINT_VERSION, weights_digest(model), config_digest(model.config),
                 tokenizer_digest(tokenizer)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
