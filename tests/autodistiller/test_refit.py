"""The one-command refit of the recommender on a ledger in the seven-task runner's form (a
small synthetic one whose planted signal is the teacher's calibration, synthetic_ledger7.py):
what it writes, its regrets checked by hand, and its refusal of too small a ledger."""
import json
import os

import pytest

from distiller.autodistiller.design import DEFAULT_FEATURES
from distiller.autodistiller.ledger import Ledger
from distiller.autodistiller.recommend import AutoDistiller
from distiller.autodistiller.refit import main
from distiller.autodistiller.refit_report import evaluation_lines, verdict
from tests.autodistiller.synthetic_ledger7 import CONFIG_NAMES, write_ledger


def _report(refitted7):
    with open(os.path.join(refitted7["out"], "report", "loto.json"), encoding="utf-8") as fh:
        return json.load(fh)


def test_refit_writes_ledger_model_and_report(refitted7):
    out = refitted7["out"]
    ledger = Ledger(os.path.join(out, "ledger.parquet")).read()
    # 4 tasks x (6 configurations + a second seed), 3 runs of task e, one failed attempt
    assert len(ledger) == 4 * 7 + 3 + 1 and (ledger["status"] == "failed").sum() == 1
    assert set(ledger["config_name"]) == set(CONFIG_NAMES)
    b = ledger[ledger["task"] == "b"]  # its rows carry no task features: from b/task.json
    assert (b["teacher_ece"] == 0.04).all() and (b["nokd_probe_metric"] == 60.0 * 0.94).all()
    model = AutoDistiller.load(refitted7["model"])
    assert model.features == list(DEFAULT_FEATURES) and model.tasks == ["a", "b", "c", "d"]
    assert model.n_rows == 28 and model.note == "synthetic"
    assert model.probe == {"student": "minilm", "student_layers": 2, "steps": 100,
                           "batch_size": 32, "lr": 1e-4, "train_size": 2000, "dev_size": 1000,
                           "seed": 0}
    assert model.evaluation["tasks"] == 4 and model.evaluation["runs"] == 28
    with open(os.path.join(out, "report", "loto.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert "| a | 6 | 0.00 | 0.00 | 5.75 | 2.37 | 10.00 | 4.00 | mse-skip-t2 | pred-t2-eda |" \
        in text
    assert "Left out, not complete yet: e (3 of 6 configurations)" in text
    assert "## Regret as tasks join the ledger" in text and "**Verdict:**" in text


def test_regrets_by_hand(refitted7):
    data = _report(refitted7)
    per_task = {r["task"]: r for r in data["per_task"]}
    # task a (well calibrated): regret = 0.96 - ratio; pred-t2's two seeds average 0.905
    regrets = [0.96 - 0.905, 0.0, 0.96 - 0.88, 0.96 - 0.86, 0.96 - 0.92, 0.96 - 0.89]
    a = per_task["a"]
    assert a["random_top1"] == pytest.approx(sum(regrets) / 6)
    # best of 3 random: sorted regrets weighted by C(6-i-1, 2) / C(6, 3)
    ordered = sorted(regrets)
    assert a["random_top3"] == pytest.approx(
        sum(v * w for v, w in zip(ordered, (10, 6, 3, 1, 0, 0))) / 20)
    # won elsewhere on a: mean ratio over b, c, d puts the EDA corpus first (0.9267), then
    # cosine (0.92), then pred-t2 (0.9033): regrets 0.10, 0.04, 0.055
    assert a["elsewhere_pick"] == "pred-t2-eda" and a["elsewhere_top1"] == pytest.approx(0.10)
    assert a["elsewhere_top3"] == pytest.approx(0.04)
    assert per_task["c"]["elsewhere_pick"] == "mse-skip-t2"
    # the planted signal: calibration says which configuration wins, and the model learns it
    assert [per_task[t]["recommended_pick"] for t in "abcd"] == [
        "mse-skip-t2", "mse-skip-t2", "pred-t2-eda", "pred-t2-eda"]
    assert all(per_task[t]["recommended_top1"] == 0.0 for t in "abcd")
    ev = data["evaluation"]
    assert ev["recommended_minus_random_top1"]["high"] < 0
    assert ev["recommended_minus_elsewhere_top1"]["mean"] == pytest.approx(-0.10)
    assert [c["tasks"] for c in data["curve"]] == [2, 3, 4]
    assert data["curve"][-1]["recommended_top1"] == 0.0
    assert data["curve"][-1]["random_top1"] == pytest.approx(ev["random_top1"]["mean"])
    assert verdict(ev) is None


def test_fewer_than_three_complete_tasks_is_refused(tmp_path, capsys):
    ledger = write_ledger(str(tmp_path / "ledger"), tasks=("a", "b"), partial={"c": 5})
    out = tmp_path / "assets"
    assert main(["--ledger", ledger, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 complete task(s) ['a', 'b']" in err
    assert "c 5/6" in err and "at least 3" in err
    assert not out.exists()  # nothing written
    assert main(["--ledger", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "no ledger.jsonl" in capsys.readouterr().err


def test_the_evaluation_block_and_its_warnings(refitted7):
    ev = _report(refitted7)["evaluation"]
    lines = evaluation_lines(ev, n_rows=28, tasks=["a", "b", "c", "d"])
    assert lines[0] == "recommender fitted on 28 runs of 4 tasks (a, b, c, d)"
    assert "recommender 0.00 [0.00, 0.00]   random 5.75 [5.75, 5.75]" in lines[2]
    assert not any(line.startswith("warning") for line in lines)
    worse = dict(ev, recommended_top1={"mean": 0.07, "low": 0.05, "high": 0.09})
    assert "does NOT beat a random pick" in evaluation_lines(worse, n_rows=1, tasks=["a"])[-1]
    unsure = dict(ev, recommended_minus_random_top1={"mean": -0.01, "low": -0.03, "high": 0.01})
    assert "includes zero" in verdict(unsure)
    assert "no leave-one-task-out evaluation" in evaluation_lines(None, n_rows=1,
                                                                  tasks=["a"])[-1]
