"""Leave-one-task-out regret on a synthetic ledger whose best configurations are planted."""
import math

import pandas as pd
import pytest

from distiller.autodistiller.loto import _expected_best_of, bootstrap_mean, loto_regret

TEACHER = {"a": 0.9, "b": 0.8, "c": 60.0, "d": 0.5, "e": 0.7}  # metrics on different scales


def ledger():
    """c5 is best on a-d, c0 on e; a second seed of c1 everywhere; one failed run."""
    rows = []
    for task, teacher in TEACHER.items():
        for i in range(6):
            quality = 0.6 + 0.05 * i if task != "e" else 0.9 - 0.05 * i
            seeds = (0, 1) if i == 1 else (0,)
            for seed in seeds:
                rows.append({"task": task, "config_name": f"c{i}", "seed": seed,
                             "status": "complete", "teacher_metric": teacher,
                             "dev_metric": teacher * (quality + 0.01 * seed)})
    rows.append({"task": "a", "config_name": "c0", "seed": 1, "status": "failed",
                 "teacher_metric": 0.9, "dev_metric": None})
    return pd.DataFrame(rows)


def oracle(train, held):
    return held.sort_values("dev_metric", ascending=False)["config"].drop_duplicates().tolist()


def worst(train, held):
    return oracle(train, held)[::-1]


def test_regrets_of_planted_pickers():
    per_task, summary = loto_regret(ledger(), oracle, draws=500)
    assert (per_task["recommended_top1"] == 0).all() and (per_task["recommended_top3"] == 0).all()
    assert list(per_task["task"]) == sorted(TEACHER) and (per_task["configs"] == 6).all()
    a = per_task.set_index("task").loc["a"]
    # task a: regrets (0.25, 0.195, 0.15, 0.1, 0.05, 0) of the teacher (c1: mean of 2 seeds)
    regrets = [0.25, 0.195, 0.15, 0.10, 0.05, 0.0]
    assert a["random_top1"] == pytest.approx(sum(regrets) / 6)
    # won elsewhere: c5 on a-d (right), c5 on e (its worst): regret 0.25 there
    assert a["elsewhere_top1"] == pytest.approx(0.0) and a["elsewhere_pick"] == "c5"
    e = per_task.set_index("task").loc["e"]
    assert e["elsewhere_pick"] == "c5" and e["elsewhere_top1"] == pytest.approx(0.25)
    assert summary["tasks"] == 5
    assert summary["recommended_minus_random_top1"]["high"] < 0
    bad, _ = loto_regret(ledger(), worst, draws=500)
    assert bad["recommended_top1"].tolist() == pytest.approx([0.25] * 5)
    assert (bad["recommended_top3"] < bad["recommended_top1"]).all()


def test_expected_best_of_k_and_bootstrap():
    assert _expected_best_of([0.0, 1.0, 2.0], 1) == pytest.approx(1.0)
    assert _expected_best_of([0.0, 1.0, 2.0], 2) == pytest.approx(1 / 3)
    values = [float(v) for v in range(30)]
    assert _expected_best_of(values, 3) == pytest.approx(
        sum(min(values[i], values[j], values[k]) for i in range(30) for j in range(i + 1, 30)
            for k in range(j + 1, 30)) / math.comb(30, 3))
    ci = bootstrap_mean([1.0, 2.0, 3.0, 4.0], draws=2000)
    assert ci["mean"] == 2.5 and 1.0 <= ci["low"] < 2.5 < ci["high"] <= 4.0


def test_one_task_is_refused():
    with pytest.raises(ValueError, match="at least 2 tasks"):
        loto_regret(ledger()[lambda d: d["task"] == "a"], oracle)


def test_the_autodistiller_ranker_beats_random_where_the_best_is_planted(tmp_path):
    from tests.autodistiller.test_recommend import synthetic_ledger

    rows = synthetic_ledger(str(tmp_path / "ledger"), tasks=("a", "b", "c", "d"))
    per_task, summary = loto_regret(rows, draws=500)
    assert len(per_task) == 4 and (per_task["configs"] > 10).all()
    assert summary["recommended_top1"]["mean"] < summary["random_top1"]["mean"]
    assert (per_task["recommended_top3"] <= per_task["recommended_top1"]).all()
