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

# name -> the module that defines it (absolute, literal names: tests/test_layers.py checks them)
_HOME = {
    "BuildOptions": "distiller.pipelines.build", "build_distill_set": "distiller.pipelines.build",
    "BuildDistillSet": "distiller.pipelines.build", "corpus_names": "distiller.pipelines.build",
    "ReadCorpus": "distiller.pipelines.read", "KeyRecords": "distiller.pipelines.keying",
    "AugmentCorpus": "distiller.pipelines.augmentation",
    "CachedKeys": "distiller.pipelines.dedupe", "MissingKeys": "distiller.pipelines.dedupe",
    "ScoreWithTeacher": "distiller.pipelines.score",
    "TeacherModelHandler": "distiller.pipelines.score",
    "CommitAndIndex": "distiller.pipelines.finalize", "MixupPairs": "distiller.pipelines.mixup",
    "pipeline_args": "distiller.pipelines.runners",
    "runner_context": "distiller.pipelines.runners",
}


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
