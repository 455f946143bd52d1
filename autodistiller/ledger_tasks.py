"""Preparing one task of the ledger, once: seeded samples, the fine-tuned teacher, its cache
(originals, two EDA copies of each, the dev sample) and the task's features, kept in
``{root}/{task}/task.json``. A killed preparation resumes: the samples are rewritten identically,
the teacher run continues from its checkpoint, the build skips what the cache holds, and
task.json is written last.

Task features beyond `compute_features` (size, labels, length, embedding, difficulty prior):
the teacher's dev metric and its calibration (expected calibration error of its dev predictions,
classification only), the gap between the teacher and a no-KD student trained for
``plan.probe_steps`` steps on the same sample, the mean text length in words, and the label
entropy (normalised to [0, 1]; regression: over ten equal-width bins of the score).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from distiller.autodistiller.features import compute_features, load_task_records
from distiller.autodistiller.ledger_plan import Plan, TaskSource, source_paths
from distiller.autodistiller.task_stats import (expected_calibration_error, label_entropy,
                                                mean_words)
from distiller.builders.cache.reader import CacheReader
from distiller.builders.cache.store import TeacherCache
from distiller.builders.teacher.pretrained import minilm_path
from distiller.common.files import atomic_write
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
from distiller.pipelines.build import BuildOptions, build_distill_set
from distiller.taskdata.resolve import resolve_task
from distiller.taskdata.sampling import sample_tsv

__all__ = ["prepare_task", "plan_student", "label_entropy", "expected_calibration_error",
           "mean_words"]


def plan_student(plan: Plan) -> str:
    """The student the plan trains: its path (`minilm`: the all-MiniLM-L6-v2 weights)."""
    if plan.student == "minilm":
        return minilm_path()
    return plan.student


def _teacher_calibration(cache: str, dev_corpus: str, regression: bool) -> Optional[float]:
    """The teacher's ECE on the dev corpus, from the logits the cache holds (None: regression)."""
    if regression:
        return None
    rows = TeacherCache.open(cache).read_corpus(dev_corpus)
    rows = [r for r in rows if r.get("label") is not None]
    outputs = CacheReader(cache).get_many([r["key"] for r in rows])
    return expected_calibration_error([o["logits"] for o in outputs],
                                      [int(r["label"]) for r in rows])


def prepare_task(source: TaskSource, plan: Plan, root: str, data_root: str, *,
                 encoder=None, workers: int = 2) -> Dict[str, Any]:
    """The task's prepared state (task.json), made once: paths, corpora and features."""
    done = os.path.join(root, source.name, "task.json")
    if os.path.exists(done):
        with open(done, encoding="utf-8") as fh:
            return json.load(fh)
    task = resolve_task(source.task)
    base = os.path.join(root, source.name)
    data = os.path.join(base, "data")
    src_train, src_dev = source_paths(source, data_root)
    files = {"train": (src_train, plan.train_size), "dev": (src_dev, plan.dev_size),
             "teacher": (src_train, plan.teacher_size)}
    paths = {}
    for split, (src, n) in files.items():
        paths[split] = os.path.join(data, f"{split}.tsv")
        sample_tsv(src, paths[split], n, 0, header=task.header)
    teacher_run = os.path.join(base, "teacher")
    student = plan_student(plan)
    common = dict(task=source.task, max_length=source.max_length, progress=False,
                  batch_size=plan.batch_size)
    teacher = train(TrainConfig(mode="finetune", run_dir=teacher_run, student=student,
                                train_file=paths["teacher"], dev_file=paths["dev"],
                                epochs=plan.teacher_epochs, lr=5e-5, seed=0, **common))
    teacher_dir = os.path.join(teacher_run, "best_model")
    cache = os.path.join(base, "cache")
    build = dict(task=source.task, teacher=teacher_dir, cache=cache, workers=workers,
                 max_length=source.max_length, progress=False)
    built = build_distill_set(BuildOptions(paths["train"], split="train", augment=plan_policy(plan),
                                           **build))
    dev = build_distill_set(BuildOptions(paths["dev"], split="dev", **build))
    names = list(built["corpora"])
    probe = train(TrainConfig(mode="finetune", run_dir=os.path.join(base, "probe-nokd"),
                              student=student, student_init="truncate",
                              student_num_layers=plan.student_layers, train_file=paths["train"],
                              dev_file=paths["dev"], max_steps=plan.probe_steps, lr=1e-4, seed=0,
                              **common))
    train_rows, dev_rows, regression = load_task_records(data, source.task)
    features = compute_features(train_rows, dev_rows, regression=regression, encoder=encoder)
    state = {
        "task": source.name, "task_spec": source.task, "max_length": source.max_length,
        "train_file": paths["train"], "dev_file": paths["dev"], "cache": cache,
        "teacher": teacher_dir, "plain_corpus": names[0], "aug_corpus": names[-1],
        "dev_corpus": next(iter(dev["corpora"])), "metric_name": teacher.metric_name,
        "features": features.to_row(),
        "task_features": {
            "teacher_metric": teacher.best_metric,
            "teacher_ece": _teacher_calibration(cache, next(iter(dev["corpora"])), regression),
            "nokd_probe_metric": probe.best_metric,
            "teacher_nokd_gap": teacher.best_metric - probe.best_metric,
            "mean_words": mean_words(train_rows),
            "label_entropy": label_entropy([r.get("label") for r in train_rows], regression),
            "n_train": len(train_rows), "n_dev": len(dev_rows), "is_regression": regression},
    }
    atomic_write(done, json.dumps(state, indent=1, sort_keys=True, default=str))
    return state


def plan_policy(plan: Plan) -> str:
    """The augmentation policy the plan's configurations use (one corpus besides the originals)."""
    policies: List[str] = sorted({c["augmentation"] for c in plan.configs} - {"none"})
    if len(policies) > 1:
        raise ValueError(f"the ledger builds one augmented corpus; the plan names {policies}")
    return policies[0] if policies else None
