"""pipelines: Apache Beam pipelines from a raw corpus to a committed teacher cache, and the
`distiller` command.

Public API (imported lazily, so `distiller --help` does not pay for Beam or torch):
- build: `BuildOptions`, `build_distill_set`, `BuildDistillSet`, `corpus_names`;
- transforms: `ReadCorpus`, `KeyRecords`, `AugmentCorpus`, `CachedKeys`, `MissingKeys`,
  `ScoreWithTeacher`, `TeacherModelHandler`, `CommitAndIndex`, `MixupPairs`;
- runners: `pipeline_args`, `runner_context`.
"""
import importlib

__all__ = ["BuildOptions", "build_distill_set", "BuildDistillSet", "corpus_names", "ReadCorpus",
           "KeyRecords", "AugmentCorpus", "CachedKeys", "MissingKeys", "ScoreWithTeacher",
           "TeacherModelHandler", "CommitAndIndex", "MixupPairs", "pipeline_args",
           "runner_context"]

_HOME = {
    "BuildOptions": "build", "build_distill_set": "build", "BuildDistillSet": "build",
    "corpus_names": "build", "ReadCorpus": "read", "KeyRecords": "keying",
    "AugmentCorpus": "augmentation", "CachedKeys": "dedupe", "MissingKeys": "dedupe",
    "ScoreWithTeacher": "score", "TeacherModelHandler": "score", "CommitAndIndex": "finalize",
    "MixupPairs": "mixup", "pipeline_args": "runners", "runner_context": "runners",
}


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
