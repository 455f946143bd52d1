"""Ledger rows from finished `benchmarks/results.py` runs, so the recommender learns from them.

Every KD run of a results run is a run of the search space: a configuration (corpus with or
without the EDA chain, mapping, intermediate loss, temperature, learning rate), a seed and the
dev metric it reached, made with the same teacher, cache and 2-layer student as the sweeps. This
turns those runs into typed ledger rows (the dataset features computed from the task's training
sample and dev set, as `distiller sweep` does), one per (configuration, seed): the
leave-one-task-out evaluation merges seeds of one configuration (`one_row_per_config`).
Runs without a teacher (no-KD), online-teacher runs and unfinished runs are skipped.

    .venv/bin/python -m distiller.autodistiller.assets.ledger_from_runs --results runs/results \
        --tasks cola,mrpc --ledger runs/ledger-5/ledger
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from distiller.autodistiller.assets.make_ledger import reuse_results  # noqa: E402
from distiller.autodistiller.features import (MiniLMEncoder, compute_features,  # noqa: E402
                                              load_task_records)
from distiller.autodistiller.ledger import Ledger  # noqa: E402
from distiller.autodistiller.ledger_rows import ledger_row  # noqa: E402

SKIPPED = ("nokd", "online", "transfer")  # not KD from the cache, or not in the space
POLICY = "eda_synonym:0.1+eda_swap:0.1,copies=2"   # results.py's default augmentation


def run_rows(task: str, results: str, features: Dict[str, Any],
             teacher_metric: float, policy: str = POLICY) -> List[Dict[str, Any]]:
    """Ledger rows of every finished KD run of `task` under `results` (results.py's --out)."""
    rows = []
    root = os.path.join(results, task)
    for group in sorted(d for d in os.listdir(root) if d.startswith("runs")):
        for name in sorted(os.listdir(os.path.join(root, group))):
            run = os.path.join(root, group, name)
            if name.startswith(SKIPPED) or not os.path.exists(os.path.join(run, "result.json")):
                continue
            with open(os.path.join(run, "config.json"), encoding="utf-8") as fh:
                config = json.load(fh)
            with open(os.path.join(run, "result.json"), encoding="utf-8") as fh:
                result = json.load(fh)
            if config.get("mode") != "distill" or result.get("best_metric") is None:
                continue
            augmented = "+" in str(config.get("train_corpus") or "")
            values = {"augmentation": policy if augmented else "none",
                      "mapping": config.get("mapping", "skip")}
            rows.append(ledger_row(
                run_id=f"results/{task}/{group}/{name}", study=f"results-{task}",
                trial=len(rows), task=task, student="minilm-l6", teacher="minilm-l6-finetuned",
                teacher_fingerprint="", teacher_metric=teacher_metric, values=values,
                config=config, features=features, metric_name=result.get("metric_name"),
                metric=float(result["best_metric"]),
                best_epoch=int(result.get("best_epoch") or 0),
                epochs=len(result.get("history") or []),
                wall=float(result.get("wall_time_s") or 0.0), status="complete"))
    return rows


def task_features(task: str, data_dir: str, feature_cache: Optional[str]) -> Dict[str, Any]:
    """The ledger's feature columns of a task directory (train.tsv, dev.tsv), with the encoder
    the sweeps used (all-MiniLM-L6-v2)."""
    train, dev, regression = load_task_records(data_dir, task)
    feats = compute_features(train, dev, regression=regression, encoder=MiniLMEncoder(),
                             cache_dir=feature_cache)
    return feats.to_row()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m distiller.autodistiller.assets.ledger_from_runs", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="runs/results", help="results.py's --out")
    parser.add_argument("--tasks", required=True, help="comma-separated, e.g. cola,mrpc")
    parser.add_argument("--ledger", required=True, help="ledger directory the rows join")
    parser.add_argument("--work", default=None, help="task data copies and embeddings "
                        "(default: beside the ledger)")
    args = parser.parse_args(argv)
    work = args.work or os.path.dirname(os.path.abspath(args.ledger))
    total = 0
    for task in args.tasks.split(","):
        prep = reuse_results(task, work, args.results)
        features = task_features(task, prep["data"], os.path.join(work, "embeddings"))
        rows = run_rows(task, args.results, features, prep["teacher_metric"])
        if rows:
            Ledger(args.ledger).append(rows)
        total += len(rows)
        print(f"{task}: {len(rows)} ledger rows from {args.results}/{task}")
    print(f"{total} rows appended to {args.ledger}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
