"""A new task's features for `distiller recommend`, computed the way the seven-task ledger
computed them for its tasks (distiller.autodistiller.ledger_tasks), and only those the model
uses (`AutoDistiller.needs`):

- from the task's files (always): size, labels, mean words, bag-of-words prior, the sample
  embedding (distiller.autodistiller.features) and the label entropy;
- from the teacher cache (`--cache`, its dev corpus): the teacher's dev metric and calibration,
  read from the cached logits (distiller.autodistiller.task_stats);
- from the no-KD probe: the ledger's probe run repeated on this task (the settings the model
  file records: the student, its layers, steps, batch, learning rate, sample size, seed), a
  student fine-tuned on gold labels alone whose dev metric, against the teacher's, gives the
  teacher/no-KD gap. About a minute on a 2-core CPU with the ledger's 2-layer MiniLM student.

A feature the model needs and the task cannot provide is a UsageError saying what to pass.
"""
from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.autodistiller.design import PROBE, TEACHER
from distiller.autodistiller.features import find_split
from distiller.autodistiller.task_stats import label_entropy, teacher_stats
from distiller.builders.teacher.pretrained import minilm_path
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
from distiller.taskdata.sampling import sample_tsv

__all__ = ["task_feature_row", "probe_metric", "probe_settings"]

log = logging.getLogger(__name__)

_LINE_FORMATS = (".tsv", ".csv", ".txt", ".jsonl")  # files a seeded line sample can cut


def probe_settings(plan) -> Dict[str, Any]:
    """The probe of a ledger plan (distiller.autodistiller.ledger_plan.Plan) as a model file
    records it: the settings ledger_tasks.prepare_task trains its no-KD student with."""
    return {"student": plan.student, "student_layers": plan.student_layers,
            "steps": plan.probe_steps, "batch_size": plan.batch_size, "lr": 1e-4,
            "train_size": plan.train_size, "dev_size": plan.dev_size, "seed": 0}


def _sample(src: str, n: int, seed: int, out_dir: str, task) -> Tuple[str, Optional[int]]:
    """(file, limit): a seeded sample of `n` rows of a line-oriented file written to
    `out_dir` (as the ledger samples its tasks), else the file itself with a limit of `n`
    rows (JSON and Parquet files: their first rows)."""
    ext = os.path.splitext(src)[1].lower()
    if ext not in _LINE_FORMATS:
        return src, n
    dst = os.path.join(out_dir, os.path.basename(src))
    sample_tsv(src, dst, n, seed, header=task.header and ext != ".jsonl")
    return dst, None


def probe_metric(task, data_dir: str, probe: Mapping[str, Any], work_dir: str) -> float:
    """Dev metric of the ledger's no-KD probe repeated on this task: the probe's student cut to
    its layers, fine-tuned on gold labels of a sample of TASK_DATA/train.* for its steps, scored
    on the whole dev file (the rows the teacher's dev corpus is built from; the ledger's teacher
    and probe shared its dev sample), max length 128 for pairs and 64 for single texts, as the
    ledger's tasks had."""
    student = minilm_path() if probe["student"] == "minilm" else probe["student"]
    data = os.path.join(work_dir, "data")
    os.makedirs(data, exist_ok=True)
    train_file, limit = _sample(find_split(data_dir, "train"), probe["train_size"],
                                probe["seed"], data, task)
    config = TrainConfig(
        mode="finetune", task=task.to_dict(), run_dir=os.path.join(work_dir, "probe-nokd"),
        student=student, student_init="truncate", student_num_layers=probe["student_layers"],
        reinit_head=True,  # an encoder to fine-tune: a head for another task is replaced
        train_file=train_file, dev_file=find_split(data_dir, task.dev_splits[0]),
        limit_train=limit,
        max_steps=probe["steps"], lr=float(probe["lr"]), seed=probe["seed"],
        batch_size=probe["batch_size"], max_length=128 if task.is_pair else 64,
        progress=False, resume=False)
    return float(train(config).best_metric)


def task_feature_row(task, data_dir: str, base: Mapping[str, Any], train_labels: Sequence[Any],
                     needs: set, *, cache: Optional[str] = None,
                     dev_corpus: Optional[str] = None, probe: Optional[Mapping[str, Any]] = None,
                     work_dir: Optional[str] = None) -> Dict[str, Any]:
    """The candidate rows' feature columns for a model needing `needs` (design.RECORDS,
    TEACHER, PROBE): `base` (DatasetFeatures.to_row()) with the label entropy, plus the
    teacher's metric and calibration from `cache`, plus the probe's metric."""
    row = dict(base)
    row["label_entropy"] = label_entropy(train_labels, task.is_regression)
    row.update(teacher_metric=None, teacher_ece=None, nokd_probe_metric=None)
    if TEACHER in needs:
        if not cache:
            raise UsageError("this recommender uses the teacher's dev metric and calibration: "
                             "pass --cache, the teacher cache of this task with its dev corpus "
                             "(the cache `--run` trains from)")
        row.update(teacher_stats(cache, task, dev_corpus))
    if PROBE in needs:
        if not probe:
            raise UsageError("this recommender uses the teacher/no-KD gap but its model file "
                             "records no probe settings: fit it again (`make recommender`)")
        log.info("no-KD probe: %s steps of a %s-layer student on %s", probe["steps"],
                 probe["student_layers"], data_dir)
        if work_dir is not None:
            row["nokd_probe_metric"] = probe_metric(task, data_dir, probe, work_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="distiller-probe-") as tmp:
                row["nokd_probe_metric"] = probe_metric(task, data_dir, probe, tmp)
    return row
