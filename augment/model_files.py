"""What identifies a local model directory an augmenter loads: the bytes of its files, not its path.

A policy's fingerprint (and so its corpus names and its copies' seeds) names the models of its
steps. A hub name identifies its model; a local directory does not: a masked LM rebuilt in place
(`distiller mlm-adapt` again, other data) has the same path and other weights. The digest covers
the files that make the model (weights, config, tokenizer), by name and content; training
bookkeeping beside them (metrics, run records, checkpoints) is left out. Each directory is hashed
once per process while its files keep their sizes and modification times.
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import Dict, Optional, Tuple

__all__ = ["local_model_digest"]

_MODEL_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json",
                "merges.txt"}
_MODEL_SUFFIXES = (".safetensors", ".bin", ".model", ".spm")

_digests: Dict[Tuple, str] = {}
_lock = threading.Lock()


def _model_files(path: str):
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if (name in _MODEL_FILES or name.endswith(_MODEL_SUFFIXES)) and os.path.isfile(full):
            yield name, full


def local_model_digest(name: str) -> Optional[str]:
    """blake2b (hex) of the model files of the local directory `name`, or None when `name` is
    not a directory (a hub name: it identifies its model)."""
    if not os.path.isdir(name):
        return None
    files = list(_model_files(name))
    stats = [os.stat(p) for _, p in files]
    stamp = tuple((f, st.st_size, st.st_mtime_ns) for (f, _), st in zip(files, stats))
    key = (os.path.realpath(name), stamp)
    with _lock:
        if key in _digests:
            return _digests[key]
    h = hashlib.blake2b(digest_size=16)
    for f, p in files:
        h.update(f.encode() + b"\0")
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    digest = h.hexdigest()
    with _lock:
        _digests[key] = digest
    return digest
