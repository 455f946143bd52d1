"""The recommender's input columns: the configuration factors and the task features, computed
the same way from ledger rows (fit) and from a new task's candidate rows (`distiller recommend`).

Configuration factors (every model): augmentation, mapping, intermediate objective and
prediction objective as categories; mixup, MI-alpha (-1 when the objective is not MI-alpha),
temperature, the three loss weights and log10 of the learning rate as numbers.

Task features (a model names the ones it was fitted on; `DEFAULT_FEATURES` unless told):

  teacher_nokd_gap  (teacher's dev metric - a no-KD student's after a short probe run) / the
                    teacher's metric: how much the teacher knows that plain fine-tuning of the
                    student does not pick up quickly, the headroom distillation can take
  teacher_ece       the teacher's expected calibration error on dev (regression: -1, where
                    calibration is undefined): how informative its soft labels are, what the
                    temperature acts on
  label_entropy     label entropy over the number of classes (regression: ten score bins)
  mean_length       mean words per example (both texts of a pair)
  is_regression     one real-valued output: the prediction objective is then a squared error
                    and temperature and calibration mean nothing

and, kept for models fitted on sweep ledgers (and available to a refit by name), size
(log_n_examples), n_labels, difficulty_prior (a bag-of-words model's dev score), the raw
teacher_metric and the sample embedding (``embedding``: its PCA). They are not in the default
set: the seven-task ledger samples every task to the same size (n_examples is constant), its
tasks are binary but STS-B (n_labels repeats is_regression), the raw teacher metric is in each
task's own metric (accuracy, F1, Matthews, Pearson) and so not comparable across tasks, and the
embedding's few principal components over six or seven tasks identify a task rather than
describe it. Features a model uses and a task lacks are an error naming the feature and what
provides it, never a zero.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Sequence, Set

from distiller.common.errors import UsageError

__all__ = ["CONFIG_CATEGORICAL", "CONFIG_NUMERIC", "LEGACY_CATEGORICAL", "TASK_FEATURES",
           "DEFAULT_FEATURES", "TaskFeature", "design_frame", "feature_sources",
           "available_features", "check_features"]

CONFIG_CATEGORICAL = ("augmentation", "mapping", "inter_loss", "pred_loss")
CONFIG_NUMERIC = ("mixup", "mi_alpha", "temperature", "w_kd", "w_inter", "w_gold", "log_lr")
# the categories of models fitted before the task features (the student and teacher names)
LEGACY_CATEGORICAL = CONFIG_CATEGORICAL + ("student", "teacher")

# where a task feature comes from at recommend time
RECORDS, TEACHER, PROBE = "records", "teacher", "probe"


@dataclasses.dataclass(frozen=True)
class TaskFeature:
    """A task feature: the ledger/candidate columns it is computed from, how, and what provides
    those columns for a new task (RECORDS: the task's files; TEACHER: the teacher cache's dev
    corpus; PROBE: a short no-KD student run)."""

    columns: tuple
    compute: Callable
    sources: frozenset
    doc: str


def _float(name: str) -> Callable:
    return lambda df: df[name].astype(float)


def _gap(df):
    teacher = df["teacher_metric"].astype(float)
    scale = teacher.abs().where(teacher != 0)  # a teacher at 0 (MCC): the share is undefined
    return (teacher - df["nokd_probe_metric"].astype(float)) / scale


def _ece(df):
    # calibration of a single real-valued output is undefined: -1 stands for it (as mi_alpha's
    # -1 stands for "not MI-alpha"); is_regression says which rows those are
    regression = df["is_regression"].astype(bool)
    return df["teacher_ece"].astype(float).mask(regression, -1.0)


def _log10(column):
    import numpy as np

    return np.log10(column.astype(float).clip(lower=1e-300))


def _log_size(df):
    return _log10(df["n_examples"].astype(float).clip(lower=1))


TASK_FEATURES: Dict[str, TaskFeature] = {
    "teacher_nokd_gap": TaskFeature(("teacher_metric", "nokd_probe_metric"), _gap,
                                    frozenset({TEACHER, PROBE}),
                                    "teacher's dev metric minus a no-KD probe's, over the "
                                    "teacher's"),
    "teacher_ece": TaskFeature(("teacher_ece", "is_regression"), _ece, frozenset({TEACHER}),
                               "teacher's expected calibration error on dev"),
    "label_entropy": TaskFeature(("label_entropy",), _float("label_entropy"),
                                 frozenset({RECORDS}), "normalised label entropy"),
    "mean_length": TaskFeature(("mean_length",), _float("mean_length"), frozenset({RECORDS}),
                               "mean words per example"),
    "is_regression": TaskFeature(("is_regression",), _float("is_regression"),
                                 frozenset({RECORDS}), "a real-valued label"),
    "log_n_examples": TaskFeature(("n_examples",), _log_size, frozenset({RECORDS}),
                                  "log10 of the training examples"),
    "n_labels": TaskFeature(("n_labels",), _float("n_labels"), frozenset({RECORDS}),
                            "classes (0: regression)"),
    "difficulty_prior": TaskFeature(("difficulty_prior",), _float("difficulty_prior"),
                                    frozenset({RECORDS}), "a bag-of-words model's dev score"),
    "teacher_metric": TaskFeature(("teacher_metric",), _float("teacher_metric"),
                                  frozenset({TEACHER}), "the teacher's dev metric (raw)"),
}
EMBEDDING = "embedding"  # not a column: the sample embedding, reduced by PCA in the model
DEFAULT_FEATURES = ("teacher_nokd_gap", "teacher_ece", "label_entropy", "mean_length",
                    "is_regression")

_CONFIG_NUMBERS: Dict[str, Callable] = {
    "mixup": _float("mixup"),
    "mi_alpha": lambda df: df["mi_alpha"].astype(float).fillna(-1.0),  # -1: not MI-alpha
    "temperature": _float("temperature"), "w_kd": _float("w_kd"), "w_inter": _float("w_inter"),
    "w_gold": _float("w_gold"),
    "log_lr": lambda df: _log10(df["lr"]),
}
_PROVIDERS = {RECORDS: "computed from the task's files",
              TEACHER: "read from the teacher cache's dev corpus (pass --cache)",
              PROBE: "measured by a short no-KD student run"}


def check_features(names: Sequence[str]) -> List[str]:
    """`names` as a list, every one a known task feature (or ``embedding``)."""
    unknown = [n for n in names if n not in TASK_FEATURES and n != EMBEDDING]
    if unknown:
        raise UsageError(f"unknown recommender feature(s) {unknown}; known: "
                         f"{sorted(TASK_FEATURES) + [EMBEDDING]}")
    return list(names)


def feature_sources(names: Sequence[str]) -> Set[str]:
    """What a new task needs to provide for these features (RECORDS, TEACHER, PROBE)."""
    out: Set[str] = set()
    for name in names:
        out |= TASK_FEATURES[name].sources if name in TASK_FEATURES else {RECORDS}
    return out


def _present(df, name: str) -> bool:
    """Whether every row of `df` has the columns feature `name` is computed from."""
    if name == EMBEDDING:
        return "embedding" in df and df["embedding"].map(lambda e: e is not None
                                                         and len(e) > 0).all()
    feature = TASK_FEATURES[name]
    if not all(c in df for c in feature.columns):
        return False
    return bool(feature.compute(df).notna().all())


def available_features(df, names: Sequence[str] = DEFAULT_FEATURES) -> List[str]:
    """The features of `names` that every row of `df` has (a sweep ledger's rows carry no
    teacher calibration or probe, for instance)."""
    return [n for n in names if _present(df, n)]


def design_frame(df, categorical: Sequence[str], numeric: Sequence[str], embedding: bool):
    """The model's input frame: categorical columns as str, numeric ones as float (task
    features computed from their columns), then emb_0..emb_{d-1} when `embedding`. A column a
    task feature needs that is absent or empty is a UsageError naming it."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    for col in categorical:
        if col not in df:
            raise UsageError(f"the recommender needs the configuration column {col!r}")
        out[col] = df[col].astype(str)
    for col in numeric:
        if col in _CONFIG_NUMBERS:
            out[col] = _CONFIG_NUMBERS[col](df)
            continue
        feature = TASK_FEATURES.get(col)
        if feature is None:
            raise UsageError(f"the recommender was fitted on a column {col!r} this Distiller "
                             "does not compute; fit it again (`make recommender`)")
        lacking = [c for c in feature.columns if c not in df]
        values = None if lacking else feature.compute(df)
        if values is None or values.isna().any():
            lacking = lacking or [c for c in feature.columns if df[c].isna().any()]
            where = ", ".join(_PROVIDERS[s] for s in sorted(feature.sources))
            raise UsageError(f"the recommender uses the task feature {col!r} ({feature.doc}), "
                             f"which this task lacks ({', '.join(lacking)}): it is {where}")
        out[col] = values.astype(float)
    if embedding:
        emb = np.stack([np.asarray(e, dtype=np.float32) for e in df["embedding"]])
        emb_frame = pd.DataFrame(emb, index=df.index,
                                 columns=[f"emb_{i}" for i in range(emb.shape[1])])
        out = pd.concat([out, emb_frame], axis=1)
    return out
