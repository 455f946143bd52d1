"""Cache keys (docs/cache.md, "Keys"): the identity of one teacher input.

key = hash(teacher fingerprint, tokenization settings, text_a, text_b). Keys never depend on a
path, a time or process state, so every process and machine computes the same key.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional

from distiller.common.seeding import stable_hash

from .errors import FingerprintError

__all__ = ["KEY_VERSION", "cache_key", "mixup_key", "settings_digest"]

# Bumped whenever the key derivation changes (old caches then miss instead of reusing wrongly).
KEY_VERSION = "teacher-cache-key/v1"


def settings_digest(tokenization_settings: Mapping[str, Any]) -> str:
    """Canonical JSON of the tokenization settings; a clear error if they are not plain data."""
    try:
        return json.dumps(dict(tokenization_settings), sort_keys=True, separators=(",", ":"),
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FingerprintError(
            f"tokenization settings {tokenization_settings!r} are not plain JSON data ({exc}); "
            "pass only str/int/float/bool/None values") from exc


def cache_key(fingerprint: str, tokenization_settings: Mapping[str, Any], text_a: str,
              text_b: Optional[str] = None) -> str:
    """32-hex-digit key of one input to one teacher.

    fingerprint: `Teacher.fingerprint` (weights + config + tokenizer actually loaded).
    tokenization_settings: e.g. {"max_length": 128, "truncation": "longest_first"}.
    """
    if not fingerprint or not isinstance(fingerprint, str):
        raise FingerprintError(f"cache_key needs a teacher fingerprint string, got {fingerprint!r}")
    if not isinstance(text_a, str):
        raise TypeError(f"text_a must be a str, got {type(text_a).__name__}: {text_a!r}")
    if text_b is not None and not isinstance(text_b, str):
        raise TypeError(f"text_b must be a str or None, got {type(text_b).__name__}: {text_b!r}")
    return stable_hash(KEY_VERSION, fingerprint, settings_digest(tokenization_settings),
                       text_a, text_b)


def mixup_key(key_i: str, key_j: str, lam: float) -> str:
    """Key of a mixup example (docs/cache.md, "Mixup rows"):
    hash("mixup", key_i, key_j, round(lam, 6))."""
    return stable_hash("mixup", key_i, key_j, round(float(lam), 6))
