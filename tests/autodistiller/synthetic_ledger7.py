"""A small ledger directory in the form the seven-task runner writes (ledger.jsonl, plan.json,
TASK/task.json) with a planted signal: the teacher's calibration says which configuration
wins. Well-calibrated teachers (tasks a, b): "mse-skip-t2" is best; poorly calibrated ones
(c, d): the EDA corpus ("pred-t2-eda") is. Regret is then hand-checkable: on a task of the first
kind it is 0.96 - the configuration's ratio (module constants below)."""
from __future__ import annotations

import json
import os

from distiller.autodistiller.ledger_plan import CONFIGS, Plan
from distiller.autodistiller.ledger_rows import ledger_row

CONFIG_NAMES = [c["name"] for c in CONFIGS[:6]]
# student/teacher ratio per configuration: (well-calibrated teacher, poorly calibrated one)
RATIO = {"pred-t2": (0.90, 0.90), "mse-skip-t2": (0.96, 0.86), "mi0.9-skip-t2": (0.88, 0.88),
         "pred-t2-eda": (0.86, 0.96), "cos-skip-t2": (0.92, 0.92),
         "pkd-skip-t2": (0.89, 0.89)}
SEED1_BONUS = 0.01  # pred-t2 also runs with seed 1, 0.01 better: its mean ratio is +0.005
# task: (teacher metric, teacher ECE, gap); metrics on different scales, like accuracy and MCC
TASKS = {"a": (80.0, 0.02, 0.05), "b": (60.0, 0.04, 0.06), "c": (90.0, 0.15, 0.15),
         "d": (50.0, 0.20, 0.20)}


def task_features(task: str):
    teacher, ece, gap = TASKS.get(task, (70.0, 0.1, 0.1))
    return {"teacher_metric": teacher, "teacher_ece": ece,
            "nokd_probe_metric": teacher * (1 - gap), "teacher_nokd_gap": teacher * gap,
            "label_entropy": 0.99, "mean_words": 12.0, "n_train": 2000, "n_dev": 500,
            "is_regression": False}


def _row(task: str, name: str, seed: int, trial: int, status: str = "complete"):
    cfg = next(c for c in CONFIGS if c["name"] == name)
    feats = task_features(task)
    poor = feats["teacher_ece"] > 0.1
    ratio = RATIO[name][poor] + (SEED1_BONUS if seed else 0.0)
    config = {k: cfg[k] for k in ("inter_loss", "mapping", "temperature", "lr", "w_inter",
                                  "pred_loss", "mi_alpha") if k in cfg}
    config["train_corpus"] = f"{task}-train" + ("" if cfg["augmentation"] == "none" else "+eda")
    base = {"n_examples": 2000, "n_labels": 2, "is_regression": False, "mean_length": 12.0,
            "difficulty_prior": 0.7, "embedding": [0.1, 0.2, 0.3]}
    metric = feats["teacher_metric"] * ratio if status == "complete" else None
    row = ledger_row(run_id=f"{task}/{name}/s{seed}", study="ledger7", trial=trial, task=task,
                     student="tiny-l2", teacher=f"runs/ledger/{task}/teacher",
                     teacher_fingerprint="", teacher_metric=feats["teacher_metric"],
                     values={"augmentation": cfg["augmentation"], "mapping": cfg["mapping"]},
                     config=config, features=base, metric_name="accuracy", metric=metric,
                     best_epoch=1, epochs=2, wall=1.0, status=status)
    row.update(cell=row["run_id"], config_name=name, seed=seed, steps=10, batch_size=32,
               machine={"cpu": "test", "cores": 1}, git_commit="", error="")
    if task != "b":  # task b's rows carry no features: the refit reads its task.json
        row["task_features"] = feats
    return row


def write_ledger(root, tasks=tuple(TASKS), partial=None) -> str:
    """The ledger directory at `root`: every configuration on `tasks` (pred-t2 with two seeds),
    a failed attempt, and `partial` = {task: number of configurations} finished on more tasks."""
    os.makedirs(root, exist_ok=True)
    partial = dict(partial or {})
    plan = Plan(tasks=tuple(tasks) + tuple(partial), configs=CONFIGS[:6],
                second_seed=("pred-t2",), steps=10)
    with open(os.path.join(root, "plan.json"), "w", encoding="utf-8") as fh:
        json.dump(plan.to_dict(), fh)
    rows = [_row(tasks[0], CONFIG_NAMES[0], 0, 0, status="failed")]
    for task in list(tasks) + list(partial):
        names = CONFIG_NAMES[:partial.get(task, len(CONFIG_NAMES))]
        rows += [_row(task, name, 0, i) for i, name in enumerate(names)]
        if task in tasks:
            rows.append(_row(task, "pred-t2", 1, 99))
        os.makedirs(os.path.join(root, task), exist_ok=True)
        with open(os.path.join(root, task, "task.json"), "w", encoding="utf-8") as fh:
            json.dump({"task": task, "task_features": task_features(task)}, fh)
    with open(os.path.join(root, "ledger.jsonl"), "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    return str(root)
