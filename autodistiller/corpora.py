"""The corpora a sweep trains on: which variants a search space can ask for, and building the
ones a teacher cache lacks through the pipeline (only new texts are scored)."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Tuple

from distiller.common.errors import UsageError
from distiller.autodistiller.space import MIXUP_SUFFIX, SearchSpace, corpus_name
from distiller.builders.cache.store import TeacherCache
from distiller.pipelines.build import BuildOptions, build_distill_set
from distiller.taskdata.resolve import resolve_task

__all__ = ["needed_corpora", "build_missing_corpora"]

log = logging.getLogger(__name__)


def needed_corpora(space: SearchSpace, task: str,
                   split: str = "train") -> List[Tuple[str, bool, str]]:
    """(augmentation, mixup, corpus name) for every training corpus the space's trials can ask
    for (SearchSpace.to_train_config names them the same way)."""
    factors = {p.name: p for p in space.params}
    augs = list(factors["augmentation"].choices or ()) if "augmentation" in factors else [None]
    mixes = list(factors["mixup"].choices or ()) if "mixup" in factors else [False]
    out = []
    for aug in augs:
        base = (space.fixed.get("train_corpus", f"{task}-{split}") if aug is None
                else corpus_name(aug, task, split))
        for mix in mixes:
            out.append((aug or "none", bool(mix), base + (MIXUP_SUFFIX if mix else "")))
    return out


def build_missing_corpora(space: SearchSpace, *, task: Any, cache: str, train_file: str,
                          teacher: str, workers: int = 1) -> List[Dict[str, Any]]:
    """Build, through the pipeline, every corpus variant the space needs that `cache` lacks:
    one `build_distill_set` per augmentation choice (with mixup pairs when a missing variant
    needs them), with the cache's own spec; returns the build summaries (empty if none was
    missing). Only new texts are scored: the originals' outputs are cache hits."""
    task = resolve_task(task)  # a Task or a built-in name
    opened = TeacherCache.open(cache)
    have, spec = set(opened.corpora()), opened.spec
    missing = [(a, m, c) for a, m, c in needed_corpora(space, task.name) if c not in have]
    summaries = []
    for aug in sorted({a for a, _, _ in missing}):
        if aug.startswith("corpus:"):
            names = [c for a, _, c in missing if a == aug]
            raise UsageError(f"the space trains on {names} by name, but cache {cache!r} has no "
                             f"such corpus (it has {sorted(have)}) and no policy names how to "
                             "build it")
        mixup = any(m for a, m, _ in missing if a == aug)
        log.info("building %s for the sweep from %s", [c for a, _, c in missing if a == aug],
                 train_file)
        opts = BuildOptions(input=train_file, task=task, teacher=teacher, cache=cache,
                            augment=None if aug == "none" else aug, mixup=1 if mixup else 0,
                            max_length=spec.max_length, layers=tuple(spec.layers),
                            pooling=spec.pooling, attentions=bool(spec.attentions),
                            dtype=spec.dtype, workers=workers, progress=False)
        summaries.append(build_distill_set(opts))
    still = [c for _, _, c in missing if c not in set(TeacherCache.open(cache).corpora())]
    if still:
        raise RuntimeError(f"the builds finished but cache {cache!r} still lacks {still}")
    return summaries
