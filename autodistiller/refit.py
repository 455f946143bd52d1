"""Refit the shipped recommender on the seven-task ledger, in one command::

    python -m distiller.autodistiller.refit --ledger benchmarks/ledger7 --out autodistiller/assets
    make recommender                      # the same, LEDGER_DIR=benchmarks/ledger7

From the ledger directory `distiller.autodistiller.ledger_run` fills (ledger.jsonl, plan.json,
TASK/task.json), it writes into --out:

  ledger.parquet          every row of ledger.jsonl in the recommender's ledger schema
                          (distiller.autodistiller.ledger), with the configuration name, seed and
                          task features (from the row, else from TASK/task.json)
  autodistiller.json      the model fitted on the complete tasks' runs, with the probe settings
                          of the plan and its leave-one-task-out summary (printed by `distiller
                          recommend` with every ranking)
  report/loto.md, .json   per held-out task the regret of the recommender's top-1 and top-3, of a
                          random pick and of the configuration that won elsewhere; the means with
                          bootstrap 95% intervals, the intervals of recommender - random and
                          recommender - won elsewhere, and the curve of regret against the number
                          of tasks in the ledger (refit_report)
  report/report.md, ...   `distiller sweep-report` of the ledger (tables and plots)

A task is complete when every configuration of the plan has a finished run on it; only complete
tasks enter the fit and the evaluation, and fewer than three is refused, with nothing written.
Everything is computed before the first file is written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.autodistiller.cli import sweep_report as write_sweep_report
from distiller.autodistiller.design import DEFAULT_FEATURES, check_features
from distiller.autodistiller.ledger import COLUMNS, EXTRA_COLUMNS, Ledger, write_parquet
from distiller.autodistiller.ledger_plan import Plan, default_plan
from distiller.autodistiller.ledger_rows import read_jsonl_rows
from distiller.autodistiller.loto import autodistiller_ranker, loto_curve, loto_regret
from distiller.autodistiller.recommend import AutoDistiller
from distiller.autodistiller.refit_report import (evaluation_lines, evaluation_summary,
                                                  write_report)
from distiller.autodistiller.task_inputs import probe_settings

__all__ = ["convert_ledger", "complete_tasks", "refit", "main", "MIN_TASKS"]

MIN_TASKS = 3
_TASK_FEATURES = ("teacher_ece", "nokd_probe_metric", "label_entropy")


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def convert_ledger(ledger_dir: str) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]]]:
    """(parquet rows, plan dict or None) of a ledger directory: each line of ledger.jsonl as a
    row of the recommender's ledger schema, its task features from the row (`task_features`)
    or else from TASK/task.json."""
    if not os.path.exists(os.path.join(ledger_dir, "ledger.jsonl")):
        raise UsageError(f"no ledger.jsonl in {ledger_dir!r}: start the seven-task ledger with "
                         "`make ledger` (or pass the directory it writes, --ledger)")
    plan = _read_json(os.path.join(ledger_dir, "plan.json"))
    task_files: Dict[str, Dict[str, Any]] = {}
    out = []
    for row in read_jsonl_rows(os.path.join(ledger_dir, "ledger.jsonl")):
        task = row.get("task", "")
        if task not in task_files:
            state = _read_json(os.path.join(ledger_dir, task, "task.json")) or {}
            task_files[task] = state.get("task_features") or {}
        features = row.get("task_features") or task_files[task]
        converted = {k: row.get(k) for k in COLUMNS if k not in EXTRA_COLUMNS}
        converted.update(config_name=row.get("config_name"), seed=row.get("seed"),
                         **{k: features.get(k) for k in _TASK_FEATURES})
        if converted["teacher_metric"] is None:
            converted["teacher_metric"] = features.get("teacher_metric")
        out.append(converted)
    return out, plan


def complete_tasks(df, configs: Sequence[str]) -> Tuple[List[str], Dict[str, int]]:
    """(complete tasks, {incomplete task: configurations finished}): complete = a finished run
    of every configuration in `configs`."""
    done = df[df["status"] == "complete"]
    finished = done.groupby("task")["config_name"].agg(lambda c: set(c) & set(configs))
    complete = sorted(t for t, names in finished.items() if len(names) == len(set(configs)))
    incomplete = {t: len(finished.get(t, set())) for t in sorted(df["task"].unique())
                  if t not in complete}
    return complete, incomplete


def refit(ledger_dir: str, out_dir: str, *, features: Sequence[str] = DEFAULT_FEATURES,
          seed: int = 0, draws: int = 10000, curve_subsets: int = 10, note: str = "",
          model_args: Optional[Dict[str, Any]] = None, sweep_report: bool = True
          ) -> Dict[str, Any]:
    """Convert, fit, evaluate and write (module docstring); returns the report's data."""
    import pandas as pd

    features = check_features(features)
    rows, plan_dict = convert_ledger(ledger_dir)
    plan = Plan.from_dict(plan_dict) if plan_dict else default_plan()
    configs = [c["name"] for c in plan.configs]
    df = pd.DataFrame(rows, columns=list(COLUMNS)) if rows else pd.DataFrame(columns=list(COLUMNS))
    complete, incomplete = complete_tasks(df, configs)
    if len(complete) < MIN_TASKS:
        shown = ", ".join(f"{t} {n}/{len(configs)}" for t, n in incomplete.items()) or "none"
        raise UsageError(f"the ledger at {ledger_dir!r} has {len(complete)} complete task(s) "
                         f"{complete} (a finished run of each of its {len(configs)} "
                         f"configurations; the others: {shown}); a refit needs at least "
                         f"{MIN_TASKS}: let the ledger run on (`make ledger-status`)")
    used = df[df["task"].isin(complete) & df["config_name"].isin(configs)]
    args = dict(model_args or {}, seed=seed)
    ranker = partial(autodistiller_ranker, features=list(features), **args)
    per_task, summary = loto_regret(used, ranker, seed=seed, draws=draws)
    curve = loto_curve(used, ranker, max_subsets=curve_subsets, seed=seed, full=per_task)
    model = AutoDistiller(features=list(features), note=note, **args).fit(used)
    model.probe = probe_settings(plan)
    model.evaluation = evaluation_summary(summary, runs=model.n_rows, task_names=complete)
    data = {"ledger": ledger_dir, "runs": model.n_rows, "tasks": complete,
            "incomplete": incomplete, "configs": len(configs), "features": model.features,
            "draws": draws, "curve_subsets": curve_subsets,
            "per_task": per_task.to_dict("records"), "evaluation": model.evaluation,
            "summary": summary, "curve": curve.to_dict("records")}

    report_dir = os.path.join(out_dir, "report")
    os.makedirs(report_dir, exist_ok=True)
    write_parquet(rows, os.path.join(out_dir, "ledger.parquet"))
    model.save(os.path.join(out_dir, "autodistiller.json"))
    write_report(os.path.join(report_dir, "loto.md"), os.path.join(report_dir, "loto.json"),
                 data)
    if sweep_report:
        write_sweep_report(Ledger(os.path.join(out_dir, "ledger.parquet")).read(), report_dir)
    return data


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distiller.autodistiller.refit",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ledger", default=os.path.join("runs", "ledger"),
                   help="the ledger directory (ledger.jsonl, plan.json, TASK/task.json)")
    p.add_argument("--out", default=os.path.join("autodistiller", "assets"),
                   help="where the ledger, model and report go (default: the shipped assets)")
    p.add_argument("--features", default=",".join(DEFAULT_FEATURES),
                   help="task features of the model, comma-separated (default %(default)s; "
                        "see distiller.autodistiller.design)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", type=int, default=10000, help="bootstrap draws")
    p.add_argument("--curve-subsets", type=int, default=10,
                   help="task subsets per size in the regret-vs-tasks curve")
    p.add_argument("--trees", type=int, default=300,
                   help="boosting rounds of the model (default %(default)s)")
    p.add_argument("--note", default="", help="printed with every ranking of the model")
    p.add_argument("--no-sweep-report", dest="sweep_report", action="store_false",
                   help="skip the ledger's tables and plots (report/report.md and PNGs)")
    args = p.parse_args(argv)
    try:
        features = [f for f in args.features.split(",") if f]
        data = refit(args.ledger, args.out, features=features, seed=args.seed,
                     draws=args.draws, curve_subsets=args.curve_subsets, note=args.note,
                     model_args={"n_estimators": args.trees}, sweep_report=args.sweep_report)
    except UsageError as exc:
        print(f"refit: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(evaluation_lines(data["evaluation"], n_rows=data["runs"],
                                     tasks=data["tasks"])))
    print(f"wrote {args.out}/ledger.parquet, autodistiller.json and report/loto.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
