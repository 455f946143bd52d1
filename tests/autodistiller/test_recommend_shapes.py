"""`distiller recommend` on every task shape the toolkit accepts: binary pairs, multi-class (a
user's own six-class file), regression; a question-answering task is a clear refusal."""
import os

import pytest
import yaml

from distiller.cli import main
from distiller.taskdata.paths import shared_data
from examples.six_class import six_class_tsv
from tests.autodistiller.test_recommend import SPACE_DICT, synthetic_ledger


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    synthetic_ledger(str(root / "ledger"))
    model = str(root / "model.json")
    assert main(["recommend-fit", "--ledger", str(root / "ledger"), "--out", model]) == 0
    space = root / "space.yaml"
    space.write_text(yaml.safe_dump(SPACE_DICT))
    return {"model": model, "space": str(space)}


def _glue(tmp_path, folder, train, dev):
    data = tmp_path / folder
    data.mkdir()
    for split, n in (("train", train), ("dev", dev)):
        with open(shared_data("glue", folder, f"{split}.tsv"), encoding="utf-8") as fh:
            (data / f"{split}.tsv").write_text("".join(next(fh) for _ in range(n + 1)))
    return str(data)


def _recommend(fitted, data, *task):
    return main(["recommend", "--task-data", data, *task, "--space", fitted["space"],
                 "--model", fitted["model"], "--k", "3", "--encoder", "hashing"])


def _ranked(capsys):
    out = capsys.readouterr().out
    return [line for line in out.splitlines() if "predicted ratio" in line]


def test_multi_class_own_data(tmp_path, fitted, capsys):
    six_class_tsv(tmp_path / "train.txt", per_class=12)
    six_class_tsv(tmp_path / "dev.txt", per_class=4, offset=12)
    assert _recommend(fitted, str(tmp_path), "--task", "mixed6", "--text-a", "1",
                      "--label", "0") == 0
    lines = _ranked(capsys)
    assert len(lines) == 3 and len(set(ln.split("  ", 1)[1] for ln in lines)) == 3


@pytest.mark.parametrize("folder,task", [("STS-B", "stsb"), ("RTE", "rte")])
def test_regression_and_pairs(tmp_path, fitted, capsys, folder, task):
    assert _recommend(fitted, _glue(tmp_path, folder, 40, 20), "--task", task) == 0
    assert len(_ranked(capsys)) == 3


def test_question_answering_is_refused_clearly(tmp_path, fitted, capsys):
    data = tmp_path / "squad"
    data.mkdir()
    src = shared_data("squad", "squad2-sample.json")
    for split in ("train", "dev"):
        os.symlink(src, data / f"{split}.json")
    assert _recommend(fitted, str(data), "--task", "squad2") == 2
    err = capsys.readouterr().err
    assert "question answering" in err and len(err.strip().splitlines()) == 1


def test_top_k_spans_objectives_and_augmentations():
    import pandas as pd

    from distiller.autodistiller.picks import spread_top_k

    ranked = pd.DataFrame({"inter_loss": ["mse", "mse", "mse", "mi", "none", "mi"],
                           "augmentation": ["none", "none", "eda", "none", "none", "none"],
                           "predicted_ratio": [0.95, 0.94, 0.93, 0.90, 0.80, 0.79]})
    assert spread_top_k(ranked, 3)["predicted_ratio"].tolist() == [0.95, 0.93, 0.90]
    # fewer distinct combinations than k: the best of the rest fill up, in ranked order
    assert spread_top_k(ranked, 5)["predicted_ratio"].tolist() == [0.95, 0.94, 0.93, 0.90, 0.80]
    assert len(spread_top_k(ranked, 10)) == 6


def test_recommend_prints_distinct_ideas(tmp_path, fitted, capsys):
    import json

    assert _recommend(fitted, _glue(tmp_path, "RTE", 40, 20), "--task", "rte") == 0
    picks = [json.loads(ln.split("  ", 1)[1]) for ln in _ranked(capsys)]
    combos = {(p.get("inter_loss"), p.get("augmentation")) for p in picks}
    assert len(combos) == len(picks) == 3


@pytest.fixture(scope="module")
def refit_model(tmp_path_factory, refitted7, teacher_dir):
    """The refitted model of the synthetic seven-task-style ledger (it uses the teacher's
    calibration and the teacher/no-KD gap), its probe cut to 2 steps of the tiny test BERT."""
    import json

    with open(refitted7["model"], encoding="utf-8") as fh:
        data = json.load(fh)
    data["info"]["probe"].update(student=teacher_dir, steps=2, batch_size=8, train_size=32)
    path = tmp_path_factory.mktemp("refit-model") / "model.json"
    path.write_text(json.dumps(data))
    return str(path)


def _shape(tmp_path, shape):
    """(data dir, task flags, Task, outputs of its teacher) of one task shape."""
    from distiller.taskdata.resolve import resolve_task
    from distiller.taskdata.task import Task
    from examples.six_class import SIX_CLASSES

    if shape == "multi-class":
        data = tmp_path / "mixed6"
        data.mkdir()
        six_class_tsv(data / "train.txt", per_class=8)
        six_class_tsv(data / "dev.txt", per_class=3, offset=8)
        flags = ["--task", "mixed6", "--text-a", "1", "--label", "0", "--labels",
                 ",".join(SIX_CLASSES)]
        task = Task(name="mixed6", text_a=1, label=0, header=False, labels=SIX_CLASSES)
        return str(data), flags, task, 6
    folder, name, outputs = {"binary pairs": ("RTE", "rte", 2),
                             "regression": ("STS-B", "stsb", 1)}[shape]
    return _glue(tmp_path, folder, 40, 16), ["--task", name], resolve_task(name), outputs


@pytest.mark.parametrize("shape", ["binary pairs", "multi-class", "regression"])
def test_a_refitted_model_reads_the_teacher_cache_and_runs_the_probe(
        tmp_path, capsys, tokenizer_dir, teacher_dir, refit_model, shape):
    import json

    from distiller.autodistiller.features import load_task_records
    from tests.distill_train.conftest import build_cache, make_bert

    data, flags, task, outputs = _shape(tmp_path, shape)
    teacher = teacher_dir if outputs == 2 else make_bert(str(tmp_path / "teacher"),
                                                         tokenizer_dir, num_labels=outputs)
    train, dev, _ = load_task_records(data, task)
    cache = build_cache(tmp_path / "cache", teacher, train, dev, task=task.name,
                        attentions=False)
    argv = ["recommend", "--task-data", data, *flags, "--model", refit_model, "--k", "3",
            "--encoder", "hashing"]
    assert main(argv) == 2  # the model uses the teacher's calibration: a cache is needed
    assert "pass --cache" in capsys.readouterr().err
    assert main(argv + ["--cache", cache]) == 0
    out = capsys.readouterr().out
    assert "recommender fitted on 28 runs of 4 tasks (a, b, c, d)" in out
    assert "leave-one-task-out over 4 tasks" in out and "note on the recommender: synthetic" in out
    features = next(ln for ln in out.splitlines() if ln.startswith("task features of"))
    assert "teacher_nokd_gap" in features
    assert ("teacher_ece -1," in features) == (shape == "regression")
    picks = [json.loads(ln.split("  ", 1)[1]) for ln in out.splitlines()
             if "predicted ratio" in ln]
    assert len({(p.get("inter_loss"), p.get("augmentation")) for p in picks}) == len(picks) == 3
