"""Built-in tasks: GLUE's nine tasks, BoolQ and SQuAD 1.1 / 2.0, reading their files as the
benchmarks ship them.

Column names and label orders follow GLUE's own TSV files (and the `datasets` exports the shared
data comes from): CoLA has no header row (source, label, original mark, sentence); MRPC's header
is ``Quality  #1 ID  #2 ID  #1 String  #2 String`` after a byte-order mark; RTE and QNLI labels
are ``entailment``/``not_entailment`` or their 0/1 class indices; MNLI has two dev sets.
SQuAD reads the official JSON (``data`` → ``paragraphs`` → ``qas``; distiller.taskdata.squad) and is
scored as the official evaluation scripts do (distiller.taskdata.squad_metrics); augmentation
changes the question only. Metrics are the study's (docs/method.md, "Training recipe"): the first
one selects models.
"""
from __future__ import annotations

from typing import Dict, List

from .task import Task

__all__ = ["BUILTIN_TASKS", "ALIASES", "builtin_task", "builtin_names"]

_NLI2 = ("entailment", "not_entailment")

BUILTIN_TASKS: Dict[str, Task] = {t.name: t for t in (
    Task(name="cola", text_a=3, label=1, header=False, labels=("unacceptable", "acceptable"),
         metrics=("matthews", "accuracy"),
         description="CoLA: grammatical acceptability (no header row; Matthews correlation)"),
    Task(name="sst2", text_a="sentence", labels=("negative", "positive"),
         metrics=("accuracy",), description="SST-2: binary sentiment of a sentence"),
    Task(name="mrpc", text_a="#1 String", text_b="#2 String", label="Quality",
         labels=("not_equivalent", "equivalent"), metrics=("f1", "accuracy"),
         description="MRPC: paraphrase pairs (F1 and accuracy)"),
    Task(name="stsb", text_a="sentence1", text_b="sentence2", label="score", kind="regression",
         metrics=("pearson", "spearman"),
         description="STS-B: sentence-pair similarity 0-5 (Pearson and Spearman)"),
    Task(name="qqp", text_a="question1", text_b="question2", label="is_duplicate", id="id",
         labels=("not_duplicate", "duplicate"), metrics=("f1", "accuracy"),
         description="QQP: duplicate question pairs (F1 and accuracy)"),
    Task(name="mnli", text_a="sentence1", text_b="sentence2", label="gold_label|label",
         labels=("entailment", "neutral", "contradiction"), metrics=("accuracy",),
         dev_splits=("dev_matched", "dev_mismatched"),
         description="MNLI: 3-way entailment; matched and mismatched dev sets"),
    Task(name="qnli", text_a="question", text_b="sentence", labels=_NLI2,
         metrics=("accuracy",), description="QNLI: does the sentence answer the question"),
    Task(name="rte", text_a="sentence1", text_b="sentence2", id="idx|index", labels=_NLI2,
         metrics=("accuracy",), description="RTE: 2-way entailment"),
    Task(name="wnli", text_a="sentence1", text_b="sentence2", labels=("not_entailment",
                                                                      "entailment"),
         metrics=("accuracy",), description="WNLI: Winograd entailment"),
    Task(name="boolq", text_a="question", text_b="passage", label="label|answer",
         labels=("false", "true"), format="jsonl", metrics=("accuracy",),
         description="BoolQ: yes/no question over a passage (JSONL; label or answer)"),
    Task(name="squad", kind="span", text_a="question", text_b="context", label="answers",
         id="id", format="squad", augment_fields=("text_a",),
         description="SQuAD 1.1: extractive QA, every question answered (EM and F1)"),
    Task(name="squad2", kind="span", text_a="question", text_b="context", label="answers",
         id="id", format="squad", unanswerable=True, augment_fields=("text_a",),
         description="SQuAD 2.0: extractive QA, some questions unanswerable (EM, F1, "
                     "HasAns/NoAns, best no-answer threshold)"),
)}

ALIASES = {"sst-2": "sst2", "sst_2": "sst2", "sts-b": "stsb", "sts_b": "stsb",
           "mnli-m": "mnli", "mnli_matched": "mnli", "squad1": "squad", "squad_v1": "squad",
           "squad1.1": "squad", "squad_v2": "squad2", "squad2.0": "squad2"}


def builtin_names() -> List[str]:
    return sorted(BUILTIN_TASKS)


def builtin_task(name: str):
    """The built-in task of that name (case and GLUE's spellings accepted), or None."""
    key = name.strip().lower()
    return BUILTIN_TASKS.get(ALIASES.get(key, key))
