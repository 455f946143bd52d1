"""AutoDistiller on a synthetic ledger with a planted best configuration."""
import json

import numpy as np
import pytest

from distiller.autodistiller.features import DatasetFeatures
from distiller.autodistiller.ledger import Ledger
from distiller.autodistiller.recommend import AutoDistiller, leave_one_task_out, one_row_per_config
from distiller.autodistiller.space import SearchSpace
from distiller.distill_train.train import TrainResult
from distiller.taskdata.paths import shared_data

SPACE_DICT = {
    "name": "planted",
    "params": {"augmentation": ["none", "corpus:aug"], "mapping": ["skip", "last", "emd"],
               "inter_loss": ["mse", "cosine", "mi"], "mi_alpha": [0.1, 0.9],
               "temperature": [1.0, 4.0], "lr": [2e-5, 1e-4], "student": ["tiny"]},
}
SPACE = SearchSpace.from_dict(SPACE_DICT)
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
                           embedding=tuple(np.eye(16)[i % 16] * 0.5))


def synthetic_ledger(path, tasks=("a", "b", "c"), seed=0):
    from distiller.autodistiller.sweep import config_columns

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
    # a sweep ledger has no teacher calibration or probe: the defaults it has are used
    assert AutoDistiller(n_estimators=5).fit(df).features == ["mean_length", "is_regression"]
    with pytest.raises(ValueError, match=r"lack the task feature\(s\) \['teacher_ece'\]"):
        AutoDistiller(n_estimators=5, features=["teacher_ece"]).fit(df)
    model = AutoDistiller(seed=0, features=["log_n_examples", "difficulty_prior",
                                            "embedding"]).fit(df)
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

    path = str(tmp_path / "m.json")
    model.save(path)
    again = AutoDistiller.load(path)
    assert np.array_equal(again.predict(full), full["predicted_ratio"])
    assert (again.tasks, again.n_rows, again.embedding_dim) == (model.tasks, model.n_rows, 16)
    assert again.features == model.features == ["log_n_examples", "difficulty_prior",
                                                "embedding"]


def test_leave_one_task_out_beats_random(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"))
    report = leave_one_task_out(df, k=5, draws=200, seed=0, n_estimators=100)
    assert list(report["task"]) == ["a", "b", "c"]
    assert (report["recommended_mean"] > report["random_mean"]).all()
    assert (report["recommended_max"] >= report["random_max"] - 1e-9).all()
    assert (report["recommended_max"] <= report["best_possible"] + 1e-12).all()


def test_a_repeated_configuration_counts_once(tmp_path):
    import pandas as pd

    df = synthetic_ledger(str(tmp_path / "ledger"))
    done = df[df["status"] == "complete"].reset_index(drop=True)
    # a second sweep drew the best run of task "a" again (another run id, same configuration)
    best = done[done["task"] == "a"]["dev_metric"].astype(float).idxmax()
    repeat = done.loc[best].copy()
    repeat["run_id"], repeat["dev_metric"] = "a/again", float(repeat["dev_metric"]) - 0.01
    with_repeat = pd.concat([done, repeat.to_frame().T], ignore_index=True)
    merged = one_row_per_config(with_repeat[with_repeat["task"] == "a"])
    assert len(merged) == (done["task"] == "a").sum()
    row = merged[merged["run_id"] == done.loc[best, "run_id"]].iloc[0]
    assert row["dev_metric"] == pytest.approx(float(done.loc[best, "dev_metric"]) - 0.005)
    # configurations that differ only where one of them has no value stay apart (NaN mi_alpha)
    assert merged["mi_alpha"].isna().sum() == (done[done["task"] == "a"]["mi_alpha"]
                                               .isna().sum())
    a = leave_one_task_out(with_repeat, k=5, draws=200, seed=0, n_estimators=100)
    assert a.loc[a["task"] == "a", "runs"].item() == (done["task"] == "a").sum()


def test_errors_are_clear(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"), tasks=("a",))
    with pytest.raises(ValueError, match="at least 2 tasks"):
        leave_one_task_out(df)
    with pytest.raises(ValueError, match="need at least 2 completed ledger rows"):
        AutoDistiller().fit(df.iloc[:0])
    two = synthetic_ledger(str(tmp_path / "ledger2"), tasks=("a", "b"))
    model = AutoDistiller(n_estimators=10, features=["mean_length", "embedding"]).fit(two)
    bad = dict(features(0).to_row(), embedding=[0.0] * 7)
    with pytest.raises(ValueError, match="embedding has 7 dimensions, the model was fitted on 16"):
        model.rank(SPACE, bad)
    # a feature the model uses and the task lacks is named, never taken as zero
    lacking = {k: v for k, v in features(0).to_row().items() if k != "mean_length"}
    with pytest.raises(ValueError, match="uses the task feature 'mean_length'"):
        model.rank(SPACE, lacking)
    with pytest.raises(FileNotFoundError, match="recommend-fit"):
        AutoDistiller.load(str(tmp_path / "none.json"))
    # a model pickled by an earlier Distiller (text pickle protocol): not JSON, not opened
    old = tmp_path / "old.joblib"
    old.write_bytes(b"cdistill_train.recommend\nAutoDistiller\n)\x81.")
    with pytest.raises(ValueError, match="not a recommender model file.*recommend-fit"):
        AutoDistiller.load(str(old))


def fake_train(config, *, on_epoch=None):
    """Stands in for distiller.distill_train.train.train: real TrainConfig check, planted metric."""
    from distiller.distill_train.config import TrainConfig

    cfg = TrainConfig.from_dict(config)
    values = {"augmentation": "corpus:aug" if cfg.train_corpus == "aug" else "none",
              "mapping": cfg.mapping, "inter_loss": cfg.inter_loss, "mi_alpha": cfg.mi_alpha,
              "temperature": cfg.temperature, "lr": cfg.lr}
    metric = 0.9 * true_ratio(values, 0.0)
    return TrainResult(metric, "accuracy", 0, [{"epoch": 0, "dev": {"accuracy": metric}}],
                       cfg.run_dir, 0.1, teacher_metric=0.9)


def test_recommend_cli_fit_rank_and_run(tmp_path, capsys):
    import yaml

    from distiller.cli import main

    synthetic_ledger(str(tmp_path / "ledger"))
    model = str(tmp_path / "model.json")
    assert main(["recommend-fit", "--ledger", str(tmp_path / "ledger"), "--out", model,
                 "--evaluate", "--k", "5", "--note", "synthetic ledger"]) == 0
    out = capsys.readouterr().out
    assert "fitted on" in out and "recommended_mean" in out and "random_mean" in out

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE_DICT))
    data = tmp_path / "rte"
    data.mkdir()
    for split, n in (("train", 40), ("dev", 20)):
        with open(shared_data("glue", "RTE", f"{split}.tsv"), encoding="utf-8") as fh:
            (data / f"{split}.tsv").write_text("".join(next(fh) for _ in range(n + 1)))
    argv = ["recommend", "--task-data", str(data), "--task", "rte", "--space", str(space),
            "--model", model, "--teacher", "minilm", "--k", "3", "--encoder", "hashing"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "note on the recommender: synthetic ledger" in printed
    lines = [line for line in printed.splitlines() if "predicted ratio" in line]
    assert len(lines) == 3
    assert json.loads(lines[0].split("  ", 1)[1]) == PLANTED

    (tmp_path / "not-a-cache").mkdir()
    run = ["--run", "--out", str(tmp_path / "runs"), "--trainer", f"{__name__}:fake_train"]
    assert main(argv + run + ["--cache", str(tmp_path / "not-a-cache")]) == 2
    assert "not a teacher cache" in capsys.readouterr().err

    builders_cache = pytest.importorskip("distiller.builders.cache.store")
    from distiller.builders.cache.spec import CacheSpec

    builders_cache.TeacherCache.create(str(tmp_path / "cache"), CacheSpec(
        fingerprint="fp-rte", tokenization=(("max_length", 128),), layers=(0,), model="minilm"))
    assert main(argv + run + ["--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    ran = Ledger(str(tmp_path / "runs" / "ledger")).read()
    assert len(ran) == 3 and (ran["status"] == "complete").all()
    assert (ran["teacher_fingerprint"] == "fp-rte").all() and (ran["task"] == "rte").all()
    first = ran.sort_values("trial").iloc[0]
    assert first["corpus"] == "aug" and first["inter_loss"] == "mi" and first["mapping"] == "last"
    assert first["ratio"] == pytest.approx(true_ratio(PLANTED, 0.0))
    assert "ledger rows appended" in out


def _shipped():
    from distiller.autodistiller.recommend import ASSET_LEDGER, ASSET_MODEL

    return Ledger(ASSET_LEDGER).read(), AutoDistiller.load(ASSET_MODEL)


def test_a_refitted_shipped_model_agrees_with_its_ledger_and_report():
    """After `make recommender`: the shipped model, ledger and report are one refit's."""
    import os

    from distiller.autodistiller.assets_path import asset
    from distiller.autodistiller.cli import DEFAULT_SPACE
    from distiller.autodistiller.space import load_space

    ledger, model = _shipped()
    if model.evaluation is None:
        pytest.skip("the shipped model predates the refit (its pins are tested below)")
    with open(asset(os.path.join("report", "loto.json")), encoding="utf-8") as fh:
        report = json.load(fh)
    assert report["evaluation"] == model.evaluation and report["tasks"] == model.tasks
    done = ledger[(ledger["status"] == "complete") & ledger["task"].isin(model.tasks)]
    assert model.n_rows == len(done)
    assert np.isfinite(model.predict(done)).all()
    ranked = model.rank(load_space(DEFAULT_SPACE), done.iloc[0].to_dict(), k=5)
    assert len(ranked) == 5 and ranked["predicted_ratio"].is_monotonic_decreasing


def test_shipped_assets_rank_the_shipped_space():
    """The shipped model and ledger (autodistiller/assets) load and agree with each other, and
    the model predicts what the scikit-learn pipeline it was converted from predicted (the
    numbers pinned were computed from that pipeline, autodistiller.joblib, before conversion)."""
    from distiller.autodistiller.space import load_space
    from distiller.autodistiller.cli import DEFAULT_SPACE

    ledger, model = _shipped()
    if model.evaluation is not None:
        pytest.skip("the shipped model was refitted (`make recommender`): tested above")
    done = ledger[ledger["status"] == "complete"].reset_index(drop=True)
    assert model.n_rows == len(done) and model.tasks == sorted(done["task"].unique())
    assert model.predict(done)[[0, 7, 24]] == pytest.approx(
        [0.9403255571069679, 1.006731023718201, 0.23665700495579692], abs=1e-12)
    space = load_space(DEFAULT_SPACE)
    features = done.iloc[0][["n_examples", "n_labels", "is_regression", "mean_length",
                             "difficulty_prior", "embedding"]].to_dict()
    ranked = model.rank(space, features, teacher=done.iloc[0]["teacher"])
    assert len(ranked) == 567 and ranked["predicted_ratio"].is_monotonic_decreasing
    assert list(ranked["predicted_ratio"].iloc[[0, 1, 2, -1]]) == pytest.approx(
        [0.9664737712302488, 0.966145484039795, 0.9659272973334243, 0.9169461567838602],
        abs=1e-12)
    top = {"inter_loss": "mse", "lr": 0.0002, "mapping": "skip", "student": "minilm-l6",
           "temperature": 4.0, "w_inter": 0.1}
    assert list(ranked["params"].iloc[:3]) == [
        dict(top, augmentation=a) for a in ("eda_synonym:0.1+eda_swap:0.1,copies=2",
                                            "contextual(model=runs/mlm/minilm-glue):0.3,copies=2",
                                            "none")]
    assert ranked["params"].iloc[-1] == {
        "augmentation": "none", "inter_loss": "mi", "lr": 5e-05, "mapping": "skip",
        "mi_alpha": 0.9, "student": "minilm-l6", "temperature": 1.0, "w_inter": 1.0}
