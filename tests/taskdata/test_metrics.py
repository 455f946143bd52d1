"""Every metric a task reports, checked against scikit-learn and scipy on fixed inputs."""
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from distiller.taskdata import builtin_task
from distiller.taskdata.metrics import compute_metrics

GOLD = np.array([0, 1, 1, 0, 1, 1, 0, 2, 2, 1])
PRED = np.array([0, 1, 0, 0, 1, 2, 1, 2, 1, 1])


def logits_for(pred, classes=3):
    out = np.full((len(pred), classes), -1.0)
    out[np.arange(len(pred)), pred] = 2.0
    return out


def test_classification_metrics_equal_the_references():
    got = compute_metrics(("accuracy", "macro_f1", "matthews"), logits_for(PRED), GOLD)
    assert got["accuracy"] == pytest.approx(100 * accuracy_score(GOLD, PRED)) == 60.0
    assert got["macro_f1"] == pytest.approx(100 * f1_score(GOLD, PRED, average="macro"))
    assert got["matthews"] == pytest.approx(100 * matthews_corrcoef(GOLD, PRED))
    gold2, pred2 = GOLD % 2, PRED % 2
    got = compute_metrics(builtin_task("mrpc").metrics, logits_for(pred2, 2), gold2)
    assert list(got) == ["f1", "accuracy"]
    assert got["f1"] == pytest.approx(100 * f1_score(gold2, pred2))
    # hand-computed: tp=3, fp=2, fn=2 -> F1 = 2*3 / (2*3 + 2 + 2)
    assert got["f1"] == pytest.approx(60.0)


def test_regression_metrics_equal_the_references():
    gold = np.array([0.0, 1.5, 2.0, 3.2, 4.8, 5.0])
    pred = np.array([0.3, 1.0, 2.5, 3.0, 4.0, 4.9])[:, None]
    got = compute_metrics(builtin_task("stsb").metrics, pred, gold)
    assert got["pearson"] == pytest.approx(100 * pearsonr(pred[:, 0], gold)[0])
    assert got["spearman"] == pytest.approx(100 * spearmanr(pred[:, 0], gold)[0]) == 100.0
    # a constant prediction has no correlation: 0, never NaN
    assert compute_metrics("pearson", np.ones(6), gold) == {"pearson": 0.0}


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['auc'\]"):
        compute_metrics(("accuracy", "auc"), logits_for(PRED), GOLD)
