"""AutoDistiller on a synthetic ledger with a planted best configuration."""
import json

import numpy as np
import pandas as pd
import pytest

from distill_train.features import DatasetFeatures
from distill_train.ledger import Ledger
from distill_train.recommend import AutoDistiller, leave_one_task_out
from distill_train.space import SearchSpace

SPACE = SearchSpace.from_dict({
    "name": "planted",
    "params": {"augmentation": ["none", "corpus:aug"], "mapping": ["skip", "last", "emd"],
               "inter_loss": ["mse", "cosine", "mi"], "mi_alpha": [0.1, 0.9],
               "temperature": [1.0, 4.0], "lr": [2e-5, 1e-4], "student": ["tiny"]},
})
PLANTED = {"augmentation": "corpus:aug", "mapping": "last", "inter_loss": "mi", "mi_alpha": 0.9,
           "temperature": 4.0, "lr": 1e-4, "student": "tiny"}


def true_ratio(values, task_shift):
    """Additive effects; the planted configuration is the unique maximum."""
    r = 0.70 + task_shift
    r += 0.05 * (values["augmentation"] == "corpus:aug")
    r += {"skip": 0.02, "last": 0.04, "emd": 0.0}[values["mapping"]]
    r += {"mse": 0.0, "cosine": 0.01, "mi": 0.03}[values["inter_loss"]]
    r += 0.03 * (values.get("mi_alpha") == 0.9)
    r += 0.02 * (values["temperature"] == 4.0) + 0.02 * (values["lr"] == 1e-4)
    return r


def features(i):
    return DatasetFeatures(n_examples=1000 * (i + 1), n_labels=2, is_regression=False,
                           mean_length=10.0 + i, difficulty_prior=0.6 + 0.05 * i,
                           embedding=tuple(np.eye(4)[i % 4] * 0.5))


def synthetic_ledger(path, tasks=("a", "b", "c"), seed=0):
    from distill_train.sweep import config_columns

    rng = np.random.default_rng(seed)
    ledger = Ledger(path)
    rows = []
    cands = list(SPACE.candidates())
    for t, task in enumerate(tasks):
        for n, values in enumerate(cands):
            if rng.random() < 0.35 and values != PLANTED:
                continue  # sweeps do not cover the whole space
            config = SPACE.to_train_config(values, task=task, cache="", run_dir="",
                                           corpus_resolver=lambda a, *_: a)
            ratio = true_ratio(values, 0.02 * t) + rng.normal(0, 0.004)
            rows.append({
                "run_id": f"{task}/{n}", "study": task, "trial": n, "task": task,
                "student": "tiny", "teacher": "minilm", "teacher_fingerprint": f"fp-{task}",
                "teacher_metric": 0.9, **config_columns(values, config),
                **features(t).to_row(), "metric_name": "accuracy",
                "dev_metric": 0.9 * ratio, "ratio": ratio, "best_epoch": 1, "epochs_run": 2,
                "wall_time_s": 1.0, "status": "complete",
                "config_json": json.dumps(config), "created_at": 0.0})
    # pruned and failed rows must be ignored by the fit
    rows.append({**rows[0], "run_id": "x/1", "status": "pruned", "ratio": 5.0})
    rows.append({**rows[0], "run_id": "x/2", "status": "failed", "ratio": None,
                 "dev_metric": None})
    ledger.append(rows)
    return ledger.read()


def test_planted_best_configuration_ranked_first(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"))
    model = AutoDistiller(seed=0).fit(df)
    assert model.tasks == ["a", "b", "c"] and model.n_rows == len(df) - 2
    new_task = features(3).to_row()
    ranked = model.rank(SPACE, new_task, teacher="minilm", k=5)
    assert len(ranked) == 5
    assert ranked.loc[0, "params"] == PLANTED
    assert list(ranked["predicted_ratio"]) == sorted(ranked["predicted_ratio"], reverse=True)
    full = model.rank(SPACE, new_task, teacher="minilm")
    assert len(full) == len(list(SPACE.candidates())) == 2 * 3 * 4 * 2 * 2
    # the worst predicted configuration carries none of the planted effects
    worst = full.iloc[-1]["params"]
    assert worst["augmentation"] == "none" and worst["inter_loss"] != "mi"

    path = str(tmp_path / "m.joblib")
    model.save(path)
    again = AutoDistiller.load(path)
    assert np.allclose(again.predict(full), full["predicted_ratio"])


def test_leave_one_task_out_beats_random(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"))
    report = leave_one_task_out(df, k=5, draws=200, seed=0, n_estimators=100)
    assert list(report["task"]) == ["a", "b", "c"]
    assert (report["recommended_mean"] > report["random_mean"]).all()
    assert (report["recommended_max"] >= report["random_max"] - 1e-9).all()
    assert (report["recommended_max"] <= report["best_possible"] + 1e-12).all()


def test_errors_are_clear(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"), tasks=("a",))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        leave_one_task_out(df)
    with pytest.raises(ValueError, match="need at least 2 completed ledger rows"):
        AutoDistiller().fit(df.iloc[:0])
    model = AutoDistiller(n_estimators=10).fit(df)
    bad = dict(features(0).to_row(), embedding=[0.0] * 7)
    with pytest.raises(ValueError, match="embedding has 7 dimensions, the model was fitted on 4"):
        model.rank(SPACE, bad)
    with pytest.raises(FileNotFoundError, match="recommend-fit"):
        AutoDistiller.load(str(tmp_path / "none.joblib"))
