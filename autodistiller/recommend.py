"""AutoDistiller: predict the student/teacher score ratio of a configuration on a new dataset.

A gradient-boosting regressor (scikit-learn) learns ``ratio`` from the ledger's completed runs:
configuration (augmentation, mixup, mapping, objectives, temperature, weights, learning rate)
and task features (by default the teacher/no-KD gap, the teacher's calibration, label entropy,
text length and whether the label is a score: distiller.autodistiller.design says which and
why). A model file names the features it was fitted on, and `distiller recommend` computes
exactly those for a new task. `AutoDistiller.rank` scores every candidate configuration of a
search space for a dataset; `leave_one_task_out` checks, task by task, whether the top-k
predicted configurations beat k random ones on the real metric (as the study did with BoolQ);
distiller.autodistiller.loto scores regret on a ledger of fixed configurations, and
distiller.autodistiller.refit refits the shipped model with that evaluation.

The fitted model is kept and saved as plain data (`distiller.autodistiller.ratio_model`: JSON
numbers and strings, no pickle), so a model file received from someone else runs no code when
loaded. Refit on your own ledger::

    distiller recommend-fit --ledger runs/sweeps/ledger --out my_model.json --evaluate
    python -m distiller.autodistiller.refit --ledger benchmarks/ledger7 --out autodistiller/assets
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from distiller.common.errors import UsageError
from distiller.autodistiller.assets_path import asset
from distiller.autodistiller.design import (CONFIG_CATEGORICAL, CONFIG_NUMERIC, EMBEDDING,
                                            LEGACY_CATEGORICAL, TASK_FEATURES, available_features,
                                            check_features, design_frame, feature_sources)
from distiller.autodistiller.ledger import CONFIG_COLUMNS
from distiller.autodistiller.ledger_rows import config_columns
from distiller.autodistiller.model_file import (INFO_TYPES, OPTIONAL_INFO, read_model_file,
                                                write_model_file)
from distiller.autodistiller.picks import spread_top_k
from distiller.autodistiller.ratio_model import RatioModel
from distiller.autodistiller.space import SearchSpace

__all__ = ["AutoDistiller", "candidate_frame", "leave_one_task_out", "ASSET_MODEL",
           "ASSET_LEDGER", "load_default"]

log = logging.getLogger(__name__)

ASSET_MODEL = asset("autodistiller.json")
ASSET_LEDGER = asset("ledger.parquet")


@dataclasses.dataclass
class AutoDistiller:
    """The fitted ratio regressor with what it was trained on (tasks, rows, task features,
    embedding size) and, from a refit, its leave-one-task-out evaluation."""

    n_components: int = 4
    seed: int = 0
    n_estimators: int = 300
    max_depth: int = 3
    learning_rate: float = 0.05
    model: Optional[RatioModel] = None  # the fitted regressor, as plain data
    tasks: List[str] = dataclasses.field(default_factory=list)
    n_rows: int = 0
    embedding_dim: int = 0
    sklearn_version: str = ""
    note: str = ""                      # what the training ledger was (printed by `recommend`)
    # task features (distiller.autodistiller.design); None before a fit: the default features
    # every training row has. A list given here is used as it is (a row lacking one: an error).
    features: Optional[List[str]] = None
    probe: Optional[Dict[str, Any]] = None       # the no-KD probe's settings (info.probe)
    evaluation: Optional[Dict[str, Any]] = None  # leave-one-task-out summary (refit)

    def fit(self, ledger) -> "AutoDistiller":
        """Fit on the ledger's completed rows that have a finite ratio; keeps the fitted
        regressor's numbers (`model`), not the scikit-learn objects."""
        import sklearn

        rows = training_rows(ledger)
        pipeline = self.fit_pipeline(rows)
        categorical, numeric, embedding = self.columns(rows)
        self.model = RatioModel.from_pipeline(pipeline, categorical=categorical, numeric=numeric)
        self.tasks = sorted(rows["task"].unique().tolist())
        self.n_rows = len(rows)
        self.embedding_dim = len(rows["embedding"].iloc[0]) if embedding else 0
        self.sklearn_version = sklearn.__version__
        return self

    def columns(self, rows) -> Tuple[List[str], List[str], bool]:
        """(categorical, numeric, embedding?) input columns of a fit on `rows`; settles
        `features` (the defaults the rows have, when none were given)."""
        if self.features is None:
            self.features = available_features(rows)
        else:
            self.features = check_features(self.features)
            lacking = [f for f in self.features if f not in available_features(rows, [f])]
            if lacking:
                raise UsageError(f"the ledger's completed runs lack the task feature(s) "
                                 f"{lacking} (a sweep ledger records no teacher calibration "
                                 "or probe; the seven-task ledger does): leave them out")
        embedding = EMBEDDING in self.features and rows["task"].nunique() > 1
        if not embedding:  # one task's embedding is a constant: nothing to learn
            self.features = [f for f in self.features if f != EMBEDDING]
        numeric = list(CONFIG_NUMERIC) + [f for f in self.features if f != EMBEDDING]
        return list(CONFIG_CATEGORICAL), numeric, embedding

    def fit_pipeline(self, rows):
        """The scikit-learn pipeline (one-hot, numeric, embedding PCA, gradient boosting)
        fitted on `rows` (`training_rows` of a ledger)."""
        from sklearn.compose import ColumnTransformer
        from sklearn.decomposition import PCA
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        if len(rows) < 2:
            raise UsageError(f"need at least 2 completed ledger rows with a ratio to fit, got "
                             f"{len(rows)}; run a sweep first (`distiller sweep`)")
        categorical, numeric, embedding = self.columns(rows)
        x = design_frame(rows, categorical, numeric, embedding)
        emb_cols = [c for c in x.columns if c.startswith("emb_")]
        n_comp = max(1, min(self.n_components, len(emb_cols), rows["task"].nunique()))
        transformers = [
            ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("num", "passthrough", numeric),
        ]
        if embedding:
            transformers.append(("emb", PCA(n_components=n_comp, random_state=self.seed),
                                 emb_cols))
        pipeline = Pipeline([
            ("features", ColumnTransformer(transformers, sparse_threshold=0.0)),
            ("gbr", GradientBoostingRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth,
                learning_rate=self.learning_rate, subsample=0.8, random_state=self.seed)),
        ])
        return pipeline.fit(x, rows["ratio"].astype(float).to_numpy())

    def design(self, frame):
        """The fitted model's input frame of rows with the ledger's config/feature columns."""
        if self.model is None:
            raise UsageError("AutoDistiller is not fitted: call fit(ledger) or load(path)")
        embedding = self.model.pca_mean is not None
        if embedding:
            dims = {len(e) for e in frame["embedding"]} if "embedding" in frame else {0}
            if dims != {self.embedding_dim}:
                raise UsageError(f"dataset embedding has {sorted(dims)[0]} dimensions, the model "
                                 f"was fitted on {self.embedding_dim}: compute features with "
                                 "the same encoder (the default MiniLM encoder gives 384)")
        return design_frame(frame, [c for c, _ in self.model.categorical], self.model.numeric,
                            embedding)

    def predict(self, frame):
        """Predicted student/teacher ratios for rows with the ledger's config/feature columns."""
        x = self.design(frame)  # refuses an unfitted model
        return self.model.predict(x)

    def needs(self) -> set:
        """What a new task must provide for this model's features (design.RECORDS, TEACHER,
        PROBE)."""
        return feature_sources(self.features or [])

    def rank(self, space: SearchSpace, features: Mapping[str, Any], *, teacher: str = "",
             k: Optional[int] = None, spread: bool = True):
        """Every candidate configuration of `space` for a dataset, best predicted ratio first;
        with `k`, the top k, spread over distinct objectives and augmentations unless
        `spread` is False (distiller.autodistiller.picks)."""
        frame = candidate_frame(space, features, teacher=teacher)
        frame["predicted_ratio"] = self.predict(frame)
        frame = frame.sort_values("predicted_ratio", ascending=False, kind="mergesort")
        frame = frame.reset_index(drop=True)
        if k is None:
            return frame
        return spread_top_k(frame, k) if spread else frame.head(k)

    def save(self, path: str) -> None:
        """The model file (JSON: settings, what it was fitted on, the regressor's numbers)."""
        if self.model is None:
            raise UsageError("AutoDistiller is not fitted: call fit(ledger) before save")
        info = {k: getattr(self, k) for k in (*INFO_TYPES, *OPTIONAL_INFO)}
        write_model_file(path, info, self.model)

    @staticmethod
    def load(path: str) -> "AutoDistiller":
        """A model file `save` wrote. It is parsed as JSON and checked field by field: a file
        received from someone else runs no code (a pickle is refused, unopened)."""
        if not os.path.exists(path):
            raise FileNotFoundError(f"no fitted recommender at {path!r}; fit one with "
                                    "`distiller recommend-fit --ledger LEDGER --out PATH`")
        info, model = read_model_file(path)
        columns = [col for col, _ in model.categorical]
        known = set(CONFIG_NUMERIC) | set(TASK_FEATURES)
        pca_dim = 0 if model.pca_mean is None else len(model.pca_mean)
        if not set(columns) <= set(LEGACY_CATEGORICAL) or not set(model.numeric) <= known \
                or pca_dim not in (0, info["embedding_dim"]):
            raise UsageError(f"{path!r} was fitted on other input columns than this Distiller "
                             f"computes ({columns + list(model.numeric)}, embedding {pca_dim}); "
                             "fit it again with `distiller recommend-fit --ledger LEDGER --out "
                             "PATH`")
        if info["features"] is None:  # a model from before the task features: its columns
            info["features"] = [c for c in model.numeric if c in TASK_FEATURES] \
                + ([EMBEDDING] if pca_dim else [])
        check_features(info["features"])
        return AutoDistiller(model=model, **info)


def training_rows(ledger):
    """Completed ledger rows with a finite ratio (pruned and failed runs say little about it)."""
    import numpy as np

    ok = (ledger["status"] == "complete") & np.isfinite(ledger["ratio"].astype(float))
    return ledger[ok].reset_index(drop=True)


def candidate_frame(space: SearchSpace, features: Mapping[str, Any], *, teacher: str = ""):
    """One row per candidate configuration of `space`, with the ledger's config and feature
    columns (`features`: DatasetFeatures.to_row() and the task features a model needs,
    distiller.autodistiller.task_inputs) plus ``params`` (the factor values)."""
    import pandas as pd

    rows = []
    for values in space.candidates():
        config = space.to_train_config(values, task="new", cache="", run_dir="",
                                       corpus_resolver=lambda aug, task, split: aug)
        rows.append({**config_columns(values, config), **dict(features),
                     "student": space.student_label(values), "teacher": teacher,
                     "params": dict(values)})
    if not rows:
        raise UsageError(f"search space {space.name!r} has no candidate configurations")
    frame = pd.DataFrame(rows)
    assert set(CONFIG_COLUMNS) <= set(frame.columns)
    return frame


def one_row_per_config(rows):
    """The rows with every repeated configuration (same student, teacher and config columns, as
    when two sweeps of one space draw the same configuration) merged into one, its dev metric
    and ratio averaged: a repeat must not count twice among the top-k or the random picks."""
    keys = ["task", "student", "teacher", *CONFIG_COLUMNS]
    filled = rows.assign(**{c: rows[c].astype(str) for c in keys})  # NaN-safe group keys
    groups = filled.groupby(keys, sort=False, dropna=False).indices
    merged = []
    for index in groups.values():
        row = rows.iloc[index[0]].copy()
        row["dev_metric"] = float(rows["dev_metric"].iloc[index].astype(float).mean())
        row["ratio"] = float(rows["ratio"].iloc[index].astype(float).mean())
        merged.append(row)
    return type(rows)(merged).reset_index(drop=True)


def leave_one_task_out(ledger, *, k: int = 5, draws: int = 2000, seed: int = 0,
                       **model_args: Any):
    """For each task: fit on the other tasks, pick the top-k of that task's completed runs by
    predicted ratio, and compare their real dev metric (mean, max) with k random runs (expected
    mean and max over `draws` random draws), repeated configurations counted once
    (`one_row_per_config`). Returns one row per task (pandas DataFrame)."""
    import numpy as np
    import pandas as pd

    rows = training_rows(ledger)
    tasks = sorted(rows["task"].unique().tolist())
    if len(tasks) < 2:
        raise UsageError(f"leave-one-task-out needs runs of at least 2 tasks, the ledger has "
                         f"{tasks}")
    rng = np.random.default_rng(seed)
    out = []
    for task in tasks:
        held = one_row_per_config(rows[rows["task"] == task])
        model = AutoDistiller(seed=seed, **model_args).fit(rows[rows["task"] != task])
        pred = model.predict(held)
        metric = held["dev_metric"].astype(float).to_numpy()
        kk = min(k, len(held))
        top = np.argsort(-pred, kind="stable")[:kk]
        random_sets = np.stack([rng.choice(len(held), size=kk, replace=False)
                                for _ in range(draws)])
        out.append({"task": task, "runs": len(held), "k": kk,
                    "recommended_mean": float(metric[top].mean()),
                    "recommended_max": float(metric[top].max()),
                    "random_mean": float(metric[random_sets].mean(axis=1).mean()),
                    "random_max": float(metric[random_sets].max(axis=1).mean()),
                    "best_possible": float(metric.max())})
    return pd.DataFrame(out)


def load_default():
    """The shipped recommender (autodistiller/assets), with a clear error if none is shipped."""
    if not os.path.exists(ASSET_MODEL):
        raise FileNotFoundError(
            f"no shipped recommender at {ASSET_MODEL}: this build ships none (see "
            "autodistiller/assets/README.md); fit one on a ledger with `distiller recommend-fit "
            "--ledger LEDGER --out PATH` and pass --model PATH")
    return AutoDistiller.load(ASSET_MODEL)
