"""AutoDistiller: predict the student/teacher score ratio of a configuration on a new dataset.

A gradient-boosting regressor (scikit-learn) learns ``ratio`` from the ledger's completed runs:
configuration (augmentation, mixup, mapping, objectives, temperature, weights, learning rate),
student, teacher and dataset features (size, labels, length, difficulty prior, and the sample
embedding reduced by PCA). `AutoDistiller.rank` scores every candidate configuration of a search
space for a dataset; `leave_one_task_out` checks, task by task, whether the top-k predicted
configurations beat k random ones on the real metric (as the study did with BoolQ).

The fitted model is kept and saved as plain data (`distiller.autodistiller.ratio_model`: JSON
numbers and strings, no pickle), so a model file received from someone else runs no code when
loaded. Refit on your own ledger::

    distiller recommend-fit --ledger runs/sweeps/ledger --out my_model.json --evaluate
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, List, Mapping, Optional

from distiller.common.errors import UsageError
from distiller.autodistiller.assets_path import asset
from distiller.autodistiller.ledger import CONFIG_COLUMNS, FEATURE_COLUMNS
from distiller.autodistiller.ledger_rows import config_columns
from distiller.autodistiller.model_file import INFO_TYPES, read_model_file, write_model_file
from distiller.autodistiller.picks import spread_top_k
from distiller.autodistiller.ratio_model import RatioModel
from distiller.autodistiller.space import SearchSpace

__all__ = ["AutoDistiller", "candidate_frame", "leave_one_task_out", "ASSET_MODEL",
           "ASSET_LEDGER", "load_default"]

log = logging.getLogger(__name__)

ASSET_MODEL = asset("autodistiller.json")
ASSET_LEDGER = asset("ledger.parquet")

CATEGORICAL = ["augmentation", "mapping", "inter_loss", "pred_loss", "student", "teacher"]
NUMERIC = ["mixup", "mi_alpha", "temperature", "w_kd", "w_inter", "w_gold", "log_lr",
           "log_n_examples", "n_labels", "is_regression", "mean_length", "difficulty_prior"]


def _design(df):
    """The model's input frame: categorical columns as str, numeric ones as float, emb_i."""
    import numpy as np
    import pandas as pd

    out = pd.DataFrame(index=df.index)
    for col in CATEGORICAL:
        out[col] = df[col].astype(str)
    out["mixup"] = df["mixup"].astype(float)
    out["mi_alpha"] = df["mi_alpha"].astype(float).fillna(-1.0)  # -1: objective is not MI-α
    for col in ("temperature", "w_kd", "w_inter", "w_gold", "n_labels", "mean_length",
                "difficulty_prior"):
        out[col] = df[col].astype(float)
    out["is_regression"] = df["is_regression"].astype(float)
    out["log_lr"] = np.log10(df["lr"].astype(float))
    out["log_n_examples"] = np.log10(df["n_examples"].astype(float).clip(lower=1))
    emb = np.stack([np.asarray(e, dtype=np.float32) for e in df["embedding"]])
    emb_frame = pd.DataFrame(emb, index=df.index,
                             columns=[f"emb_{i}" for i in range(emb.shape[1])])
    return pd.concat([out, emb_frame], axis=1)


@dataclasses.dataclass
class AutoDistiller:
    """The fitted ratio regressor with what it was trained on (tasks, rows, embedding size)."""

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

    def fit(self, ledger) -> "AutoDistiller":
        """Fit on the ledger's completed rows that have a finite ratio; keeps the fitted
        regressor's numbers (`model`), not the scikit-learn objects."""
        import sklearn

        rows = training_rows(ledger)
        pipeline = self.fit_pipeline(rows)
        self.model = RatioModel.from_pipeline(pipeline, categorical=CATEGORICAL,
                                              numeric=NUMERIC)
        self.tasks = sorted(rows["task"].unique().tolist())
        self.n_rows = len(rows)
        self.embedding_dim = sum(c.startswith("emb_") for c in _design(rows).columns)
        self.sklearn_version = sklearn.__version__
        return self

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
        x = _design(rows)
        emb_cols = [c for c in x.columns if c.startswith("emb_")]
        n_tasks = rows["task"].nunique()
        n_comp = max(1, min(self.n_components, len(emb_cols), n_tasks))
        transformers = [
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("num", "passthrough", NUMERIC),
        ]
        if emb_cols and n_tasks > 1:  # one task's embedding is a constant: nothing to learn
            transformers.append(("emb", PCA(n_components=n_comp, random_state=self.seed),
                                 emb_cols))
        pipeline = Pipeline([
            ("features", ColumnTransformer(transformers, sparse_threshold=0.0)),
            ("gbr", GradientBoostingRegressor(
                n_estimators=self.n_estimators, max_depth=self.max_depth,
                learning_rate=self.learning_rate, subsample=0.8, random_state=self.seed)),
        ])
        return pipeline.fit(x, rows["ratio"].astype(float).to_numpy())

    def predict(self, frame):
        """Predicted student/teacher ratios for rows with the ledger's config/feature columns."""
        if self.model is None:
            raise UsageError("AutoDistiller is not fitted: call fit(ledger) or load(path)")
        x = _design(frame)
        dim = sum(c.startswith("emb_") for c in x.columns)
        if dim != self.embedding_dim:
            raise UsageError(f"dataset embedding has {dim} dimensions, the model was fitted on "
                             f"{self.embedding_dim}: compute features with the same encoder "
                             "(the default MiniLM encoder gives 384)")
        return self.model.predict(x)

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
        info = {k: getattr(self, k) for k in INFO_TYPES}
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
        pca_dim = 0 if model.pca_mean is None else len(model.pca_mean)
        if columns != CATEGORICAL or list(model.numeric) != NUMERIC \
                or pca_dim not in (0, info["embedding_dim"]):
            raise UsageError(f"{path!r} was fitted on other input columns than this Distiller "
                             f"computes ({columns + list(model.numeric)}, embedding {pca_dim}); "
                             "fit it again with `distiller recommend-fit --ledger LEDGER --out "
                             "PATH`")
        return AutoDistiller(model=model, **info)


def training_rows(ledger):
    """Completed ledger rows with a finite ratio (pruned and failed runs say little about it)."""
    import numpy as np

    ok = (ledger["status"] == "complete") & np.isfinite(ledger["ratio"].astype(float))
    return ledger[ok].reset_index(drop=True)


def candidate_frame(space: SearchSpace, features: Mapping[str, Any], *, teacher: str = ""):
    """One row per candidate configuration of `space`, with the ledger's config and feature
    columns (`features` is DatasetFeatures.to_row()) plus ``params`` (the factor values)."""
    import pandas as pd

    missing = [c for c in FEATURE_COLUMNS if c not in features]
    if missing:
        raise UsageError(f"dataset features lack {missing}; compute them with "
                         "distiller.autodistiller.features.compute_features")
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
