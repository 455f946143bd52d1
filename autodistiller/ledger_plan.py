"""The plan of the seven-task ledger: which tasks, which fixed configurations, which seeds, and
the order the runner takes its (task, configuration, seed) cells in.

Every task gets the same configurations (a fixed list, not sampled, so a pick made on some tasks
can be scored on any other), each trained for the same number of optimizer steps whatever its
corpus size. The list varies the factors the study varies: the intermediate objective (none, MSE,
cosine, PKD, MI-alpha with alpha 0.1/0.5/0.9), the layer mapping, the temperature, EDA
augmentation and the learning rate. Six configurations are run with a second seed, so the ledger
also measures seed noise.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError

__all__ = ["TaskSource", "TASKS", "CONFIGS", "SECOND_SEED", "Cell", "Plan", "default_plan"]

EDA = "eda_synonym:0.1+eda_swap:0.1,copies=2"


@dataclasses.dataclass(frozen=True)
class TaskSource:
    """Where a task's files are (relative to the shared data folder) and how they are read:
    `task` is a built-in task name or a Task dict (files without a header, label first)."""

    name: str
    train: str
    dev: str
    task: Any
    max_length: int


def _text_task(name: str) -> Dict[str, Any]:
    return {"name": name, "text_a": 1, "label": 0, "header": False, "format": "tsv",
            "labels": ["0", "1"], "metrics": ["accuracy"]}


TASKS: Dict[str, TaskSource] = {t.name: t for t in (
    TaskSource("sst2", "glue/SST-2/train.tsv", "glue/SST-2/dev.tsv", "sst2", 64),
    TaskSource("rte", "glue/RTE/train.tsv", "glue/RTE/dev.tsv", "rte", 128),
    TaskSource("stsb", "glue/STS-B/train.tsv", "glue/STS-B/dev.tsv", "stsb", 128),
    TaskSource("cola", "glue/CoLA/train.tsv", "glue/CoLA/dev.tsv", "cola", 64),
    TaskSource("mrpc", "glue/MRPC/train.tsv", "glue/MRPC/dev.tsv", "mrpc", 128),
    TaskSource("subj", "text/SUBJ/train.txt", "text/SUBJ/test.txt", _text_task("subj"), 64),
    TaskSource("pc", "text/PC/train.txt", "text/PC/test.txt", _text_task("pc"), 64),
)}


def _c(name: str, inter: str = "none", mapping: str = "skip", t: float = 2.0, lr: float = 1e-4,
       aug: str = "none", alpha: Optional[float] = None) -> Dict[str, Any]:
    # MI-alpha at w_inter 1 drowns the prediction loss's gradients (distill_train/objective.py)
    w_inter = 0.1 if inter == "mi" else 1.0
    cfg = {"name": name, "inter_loss": inter, "mapping": mapping, "temperature": t, "lr": lr,
           "augmentation": aug, "w_inter": w_inter, "pred_loss": "kl"}
    if alpha is not None:
        cfg["mi_alpha"] = alpha
    return cfg


# Ordered so that the first few already span the objectives, augmentation and the learning rate.
CONFIGS: Tuple[Dict[str, Any], ...] = (
    _c("pred-t2"),
    _c("mse-skip-t2", "mse"),
    _c("mi0.9-skip-t2", "mi", alpha=0.9),
    _c("pred-t2-eda", aug=EDA),
    _c("cos-skip-t2", "cosine"),
    _c("pkd-skip-t2", "pkd"),
    _c("pred-t2-lr2e-4", lr=2e-4),
    _c("mse-last-t2", "mse", "last"),
    _c("pred-t1", t=1.0),
    _c("mse-skip-t2-eda", "mse", aug=EDA),
    _c("mi0.1-skip-t2", "mi", alpha=0.1),
    _c("pred-t4", t=4.0),
    _c("pkd-last-t2-lr2e-4", "pkd", "last", lr=2e-4),
    _c("pred-t2-lr5e-5", lr=5e-5),
    _c("cos-last-t1-eda", "cosine", "last", t=1.0, aug=EDA),
    _c("mse-skip-t4-lr2e-4", "mse", t=4.0, lr=2e-4),
    _c("mi0.9-last-t2-eda", "mi", "last", aug=EDA, alpha=0.9),
    _c("pkd-skip-t1-eda", "pkd", t=1.0, aug=EDA),
    _c("cos-skip-t4-lr5e-5", "cosine", t=4.0, lr=5e-5),
    _c("mi0.5-skip-t4-lr2e-4", "mi", t=4.0, lr=2e-4, alpha=0.5),
    _c("pred-t4-lr2e-4-eda", t=4.0, lr=2e-4, aug=EDA),
    _c("mse-last-t1-lr5e-5-eda", "mse", "last", t=1.0, lr=5e-5, aug=EDA),
    _c("mi0.9-skip-t1-lr5e-5", "mi", t=1.0, lr=5e-5, alpha=0.9),
    _c("pkd-skip-t4-lr5e-5", "pkd", t=4.0, lr=5e-5),
)
# configurations also run with seed 1: one per objective family, and the augmented baseline
SECOND_SEED = ("pred-t2", "mse-skip-t2", "mi0.9-skip-t2", "pred-t2-eda", "cos-skip-t2",
               "pkd-skip-t2")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the ledger: a configuration on a task with a seed."""

    task: str
    config: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}/{self.config}/s{self.seed}"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Tasks, configurations and the shared budget. Sizes: the students' training sample, the
    dev sample, the teacher's training sample (whole train set when smaller)."""

    tasks: Tuple[str, ...]
    configs: Tuple[Dict[str, Any], ...]
    second_seed: Tuple[str, ...]
    steps: int                   # optimizer steps of every run (batch_size examples each)
    batch_size: int = 32
    train_size: int = 2000
    dev_size: int = 1000
    teacher_size: int = 2000
    teacher_epochs: int = 2
    probe_steps: int = 100       # the no-KD student of the task features (teacher/no-KD gap)
    student: str = "minilm"      # "minilm" (the MiniLM-L6 teacher's base) or a model path
    student_layers: int = 2

    def config(self, name: str) -> Dict[str, Any]:
        for cfg in self.configs:
            if cfg["name"] == name:
                return cfg
        raise KeyError(f"no configuration {name!r} in the plan")

    def cells(self) -> List[Cell]:
        """Every cell, in run order: task after task (each task's first seeds, then its second
        seeds). A task is prepared (teacher, cache, features) once per machine, and a session's
        machine does not outlive it: finishing one task before preparing the next keeps every
        task's rows on one preparation and spends no session preparing tasks it never runs."""
        order: List[Cell] = []
        for task in self.tasks:
            order += [Cell(task, c["name"], 0) for c in self.configs]
            order += [Cell(task, name, 1) for name in self.second_seed]
        return order

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Dict[str, Any]) -> "Plan":
        data = dict(data)
        for key in ("tasks", "second_seed"):
            data[key] = tuple(data[key])
        data["configs"] = tuple(dict(c) for c in data["configs"])
        return Plan(**data)


def default_plan(tasks: Sequence[str] = tuple(TASKS), steps: int = 100) -> Plan:
    """The seven-task plan (24 configurations, 6 with a second seed: 30 cells per task).

    The budget of 100 steps of 32 examples (1.6 epochs of a plain 2,000-row sample, half an
    epoch of its EDA corpus) fits the ledger in 6-10 hours of a 2-core CPU: a step of the 2-layer
    MiniLM student takes 1-2 s there, one cell about 2-3 minutes with its evaluations, and each
    task's preparation (teacher, cache, probe) about 15 minutes. `ledger_run status` prints the
    ETA measured on the machine; a different budget needs a new ledger folder."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UsageError(f"unknown ledger task(s) {unknown}; known: {sorted(TASKS)}")
    return Plan(tasks=tuple(tasks), configs=CONFIGS, second_seed=SECOND_SEED, steps=steps)


def source_paths(source: TaskSource, data_root: str) -> Tuple[str, str]:
    """The task's train and dev files under the shared data folder."""
    return os.path.join(data_root, source.train), os.path.join(data_root, source.dev)
