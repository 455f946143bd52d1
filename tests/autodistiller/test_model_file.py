"""The recommender as plain data: the numpy regressor equals the scikit-learn pipeline it came
from, and a model file is read as checked JSON only (a crafted pickle runs nothing)."""
import json
import pickle

import numpy as np
import pytest

from distiller.autodistiller.model_file import read_model_file
from distiller.autodistiller.ratio_model import RatioModel
from distiller.autodistiller.design import design_frame
from distiller.autodistiller.recommend import AutoDistiller, candidate_frame, training_rows
from distiller.taskdata.paths import shared_data
from tests.crafted import MARKER, Payload, assert_live
from tests.autodistiller.test_recommend import SPACE, features, synthetic_ledger


def crafted_pickle(path, protocol):
    """A pickle that creates crafted.MARKER when unpickled (checked here)."""
    with open(path, "wb") as fh:
        pickle.dump(Payload(), fh, protocol=protocol)

    def unpickle(p):
        with open(p, "rb") as fh:
            return pickle.load(fh).close()
    assert_live(unpickle, str(path), str(path) + ".probe")


@pytest.mark.parametrize("tasks", [("a", "b", "c"), ("a",)])  # with and without embedding PCA
def test_numpy_regressor_equals_the_fitted_pipeline(tmp_path, tasks):
    rows = training_rows(synthetic_ledger(str(tmp_path / "ledger"), tasks=tasks))
    fitter = AutoDistiller(n_estimators=60, features=["mean_length", "difficulty_prior",
                                                      "embedding"])
    pipeline = fitter.fit_pipeline(rows)
    categorical, numeric, embedding = fitter.columns(rows)
    model = RatioModel.from_pipeline(pipeline, categorical=categorical, numeric=numeric)
    assert (model.pca_mean is None) == (len(tasks) == 1) and len(model.trees) == 60
    frames = [rows, candidate_frame(SPACE, features(5).to_row(), teacher="unseen-teacher")]

    def _design(frame):
        return design_frame(frame, categorical, numeric, embedding)

    for frame in frames:  # the second has categories the fit never saw (one-hot all zeros)
        x = _design(frame)
        expected = pipeline.predict(x)
        assert np.array_equal(model.predict(x), expected)
        again = RatioModel.from_dict(json.loads(json.dumps(model.to_dict())), "test")
        assert np.array_equal(again.predict(x), expected)
    assert len(set(model.predict(_design(frames[1])))) > 5  # the trees do split the candidates


def test_a_saved_model_is_plain_json(tmp_path):
    df = synthetic_ledger(str(tmp_path / "ledger"))
    path = str(tmp_path / "m.json")
    AutoDistiller(n_estimators=5, note="n").fit(df).save(path)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["format"] == "distiller-recommender" and data["version"] == 1
    assert data["info"]["note"] == "n" and len(data["model"]["trees"]) == 5
    info, model = read_model_file(path)
    assert info["n_rows"] == len(training_rows(df)) and len(model.trees) == 5


def _task_dir(tmp_path):
    data = tmp_path / "rte"
    data.mkdir()
    for split, n in (("train", 20), ("dev", 10)):
        with open(shared_data("glue", "RTE", f"{split}.tsv"), encoding="utf-8") as fh:
            (data / f"{split}.tsv").write_text("".join(next(fh) for _ in range(n + 1)))
    return str(data)


@pytest.mark.parametrize("protocol", [0, 4])  # a text pickle and a binary one (as joblib's)
def test_a_crafted_pickle_as_model_runs_nothing(tmp_path, capsys, monkeypatch, protocol):
    from distiller.cli import main

    evil = tmp_path / "model.joblib"
    crafted_pickle(evil, protocol)
    task_dir = _task_dir(tmp_path)  # the shared data resolves from the working directory
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / MARKER
    rc = main(["recommend", "--task-data", task_dir, "--task", "rte",
               "--model", str(evil), "--encoder", "hashing"])
    err = capsys.readouterr().err
    assert rc == 2 and not marker.exists()
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("distiller recommend: error: ") and "recommend-fit" in err
    assert ("is a pickle" in err) == (protocol == 4)


def _model_file(tmp_path):
    path = str(tmp_path / "m.json")
    AutoDistiller(n_estimators=3, features=["mean_length", "embedding"]).fit(
        synthetic_ledger(str(tmp_path / "ledger"))).save(path)
    with open(path, encoding="utf-8") as fh:
        return path, json.load(fh)


def _rewrite(path, data):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)


@pytest.mark.parametrize("damage, message", [
    (lambda d: d.update(format="other"), "not a recommender model file"),
    (lambda d: d.update(version=99), "version 99, this Distiller reads version 1"),
    (lambda d: d["info"].update(tasks="abc"), "info.tasks must be a list of strings"),
    (lambda d: d["model"]["trees"][0]["left"].__setitem__(0, 0), "node 0 is malformed"),
    (lambda d: d["model"]["trees"][1]["feature"].__setitem__(0, 10 ** 6), "node 0 is malformed"),
    (lambda d: d["model"]["trees"][0].pop("value"), r"trees\[0\].value must be a list"),
    (lambda d: d["model"]["embedding_pca"]["mean"].__setitem__(0, "x"), "numbers only"),
    (lambda d: d["model"]["numeric"].__setitem__(0, "colour"), "other input columns"),
    (lambda d: d["info"].update(features=["colour"]), "unknown recommender feature"),
    (lambda d: d["info"].update(probe={"student": "minilm"}), "info.probe must hold"),
    (lambda d: d["info"].update(evaluation={"tasks": 3}), "info.evaluation must hold"),
])
def test_a_damaged_model_file_is_one_clear_error(tmp_path, damage, message):
    path, data = _model_file(tmp_path)
    damage(data)
    _rewrite(path, data)
    with pytest.raises(ValueError, match=message):
        AutoDistiller.load(path)


def test_non_numbers_in_a_model_file_are_refused(tmp_path):
    path, data = _model_file(tmp_path)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data).replace('"init":', '"init":NaN,"x":', 1))
    with pytest.raises(ValueError, match="NaN is not a number a model file may hold"):
        AutoDistiller.load(path)
    with open(path, "wb") as fh:
        fh.write(b"\xff\xfe{}")
    with pytest.raises(ValueError, match="byte 0 is not UTF-8 text"):
        AutoDistiller.load(path)
