"""Ready-to-paste `distiller train` and `distiller evaluate` flags for the corpora of a cache.

A build names its corpora ``TASK-SPLIT``, ``TASK-SPLIT+POLICY`` and ``...+mixup-nN-aA``, where
POLICY ends with a hash of the augmentation chain (docs/cache.md, "Corpora"). `distiller cache
corpora CACHE` lists them with the flags that select each one, so a name is pasted, never typed.

Which corpora are dev sets comes from the task recorded with each corpus: ``TASK-S`` for every
``S`` in the task's ``dev_splits`` (``dev``; MNLI's ``dev_matched`` then ``dev_mismatched``), when
its rows carry gold labels. Every other corpus of a task is a training corpus, paired with that
task's dev corpora in the order of ``dev_splits`` (the first selects the best epoch). A corpus
recorded without a task gets a training line with no dev corpus.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from distiller.taskdata.task import LM_KINDS

__all__ = ["CorpusLine", "describe_corpora", "train_flags", "evaluate_flags", "format_corpora"]


@dataclass(frozen=True)
class CorpusLine:
    """One corpus of a cache: its name, rows, task name (None when none was recorded), whether
    its rows carry gold labels, whether it is a dev corpus of its task, and whether the task is a
    language model's (whose targets are the text's own tokens: no gold labels to carry)."""
    name: str
    rows: int
    task: Optional[str]
    labelled: bool
    dev: bool
    lm: bool = False


def _dev_names(task: Mapping[str, Any]) -> List[str]:
    return [f"{task['name']}-{split}" for split in task.get("dev_splits") or ("dev",)]


def describe_corpora(corpora: Mapping[str, Mapping[str, Any]]) -> List[CorpusLine]:
    """The manifest's ``corpora`` mapping (name -> entry) as CorpusLines, sorted by name."""
    out = []
    for name in sorted(corpora):
        entry = corpora[name]
        task = entry.get("task") or None
        labelled = bool(entry.get("labelled", True))
        dev = task is not None and labelled and name in _dev_names(task)
        out.append(CorpusLine(name=name, rows=int(entry.get("rows", 0)),
                              task=task["name"] if task else None, labelled=labelled, dev=dev,
                              lm=bool(task) and task.get("kind") in LM_KINDS))
    return out


def _dev_corpora_of(task_name: str, corpora: Mapping[str, Mapping[str, Any]],
                    lines: Sequence[CorpusLine]) -> List[str]:
    """The dev corpora of `task_name` in the cache, in the order of the task's dev_splits."""
    present = {line.name for line in lines if line.dev and line.task == task_name}
    task = next(corpora[line.name]["task"] for line in lines if line.task == task_name)
    return [name for name in _dev_names(task) if name in present]


def train_flags(cache_path: str, corpora: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """One ``--cache ... --train-corpus ... [--dev-corpus ...]`` line per training corpus."""
    lines = describe_corpora(corpora)
    out = []
    for line in lines:
        if line.dev:
            continue
        devs = _dev_corpora_of(line.task, corpora, lines) if line.task else []
        words = ["--cache", cache_path, "--train-corpus", line.name]
        for dev in devs:
            words += ["--dev-corpus", dev]
        out.append(shlex.join(words))
    return out


def evaluate_flags(cache_path: str, corpora: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """One ``--cache ... --corpus ...`` line per dev corpus."""
    return [shlex.join(["--cache", cache_path, "--corpus", line.name])
            for line in describe_corpora(corpora) if line.dev]


def format_corpora(cache_path: str, corpora: Mapping[str, Mapping[str, Any]]) -> str:
    """The text `distiller cache corpora` prints: a table of the corpora, then the flag lines."""
    lines = describe_corpora(corpora)
    if not lines:
        return (f"cache {cache_path}: no corpora yet (`distiller build` or `distiller score` "
                "writes them)")
    rows: List[Dict[str, str]] = [{"corpus": c.name, "rows": str(c.rows), "task": c.task or "-",
                                   "gold labels": "-" if c.lm else "yes" if c.labelled else "no",
                                   "use": "dev" if c.dev else "train"} for c in lines]
    heads = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in heads}

    def fmt(cells: Mapping[str, str]) -> str:
        return "  " + "  ".join(cells[h].rjust(widths[h]) if h == "rows" else
                                cells[h].ljust(widths[h]) for h in heads).rstrip()

    text = [f"cache {cache_path}: {len(lines)} corpora", fmt({h: h for h in heads})]
    text += [fmt(r) for r in rows]
    train = train_flags(cache_path, corpora)
    if train:
        text += ["", "distiller train flags, one line per training corpus:"]
        text += ["  " + line for line in train]
    evaluate = evaluate_flags(cache_path, corpora)
    if evaluate:
        text += ["", "distiller evaluate flags (after --model MODEL), one line per dev corpus:"]
        text += ["  " + line for line in evaluate]
    return "\n".join(text)
