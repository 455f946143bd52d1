"""`distiller sweep`, `sweep-report`, `recommend` and `recommend-fit`.

Registered by the `distiller` command (distiller.cli). Heavy libraries (optuna, sklearn, torch,
matplotlib) are imported inside the command functions so `distiller --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional

from distiller.common.errors import UsageError
from distiller.autodistiller.assets_path import asset
from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "sweep_report"]

log = logging.getLogger(__name__)

DEFAULT_SPACE = asset("space.yaml")


def add_parsers(subparsers) -> None:
    """Register the sweep and recommender subcommands on an argparse subparsers object."""
    p = subparsers.add_parser(
        "sweep", help="Optuna search over distillation pipelines on one teacher cache",
        description="Run --trials more trials of a (resumable) Optuna study; every finished "
                    "trial becomes a ledger row.")
    p.add_argument("--space", required=True,
                   help="search-space YAML (see distiller.autodistiller.space)")
    p.add_argument("--cache", required=True, help="teacher cache directory")
    p.add_argument("--task-data", required=True,
                   help="directory with the task's train/dev files (dataset features)")
    p.add_argument("--trials", type=int, required=True, help="trials to add in this call")
    p.add_argument("--out", default=None, help="output dir (default runs/sweeps/TASK)")
    p.add_argument("--study-db", default=None, help="SQLite file (default OUT/study.db)")
    p.add_argument("--study-name", default=None, help="default SPACE_NAME-TASK")
    p.add_argument("--ledger", default=None, help="ledger directory (default OUT/ledger)")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    p.add_argument("--prune-warmup-epochs", type=int, default=1, metavar="N",
                   help="epochs a trial reports before the median pruner may stop it; a number "
                   "at least the trials' epochs (or --no-prune) lets every trial finish")
    p.add_argument("--no-prune", dest="prune_warmup_epochs", action="store_const",
                   const=10 ** 6, help="never prune (every trial a complete ledger row)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher", default=None, help="teacher name (default: from the cache)")
    p.add_argument("--teacher-fingerprint", default=None, help="default: from the cache")
    p.add_argument("--teacher-metric", type=float, default=None,
                   help="teacher dev metric (default: from the trainer's result)")
    p.add_argument("--trainer", default="distiller.distill_train.train:train",
                   help="trainer as module:function (default %(default)s)")
    p.add_argument("--no-build", dest="build", action="store_false",
                   help="do not build the corpus variants the space needs and the cache lacks "
                        "(default: build them through the pipeline from TASK_DATA/train.*)")
    p.add_argument("--build-workers", type=int, default=1,
                   help="pipeline worker processes for those builds")
    _encoder_args(p)
    add_task_arguments(p)
    p.set_defaults(func=_cmd_sweep)

    r = subparsers.add_parser("sweep-report", help="table and plots of a run ledger")
    r.add_argument("--ledger", required=True, help="ledger directory or Parquet file")
    r.add_argument("--out", required=True, help="directory for report.md, table.csv and PNGs")
    r.add_argument("--top", type=int, default=10, help="best configurations shown per task")
    r.set_defaults(func=_cmd_report)

    c = subparsers.add_parser("recommend", help="rank a search space's configurations for a "
                                                "new dataset (AutoDistiller)")
    c.add_argument("--task-data", required=True, help="directory with train/dev files")
    c.add_argument("--space", default=DEFAULT_SPACE, help="candidate space (default: shipped)")
    c.add_argument("--model", default=None, help="fitted model (default: shipped)")
    c.add_argument("--ledger", default=None, help="fit on this ledger instead of --model")
    c.add_argument("--teacher", default="", help="teacher name (as in the ledger)")
    c.add_argument("--k", type=int, default=5)
    c.add_argument("--run", action="store_true", help="train the top k via the trainer")
    c.add_argument("--cache", default=None,
                   help="the task's teacher cache: needed with --run, and by a recommender "
                        "that uses the teacher's dev metric and calibration (read from its dev "
                        "corpus)")
    c.add_argument("--dev-corpus", default=None,
                   help="the cache's dev corpus of this task (default TASK-dev)")
    c.add_argument("--out", default=None, help="run dir for --run (default runs/recommend/TASK)")
    c.add_argument("--trainer", default="distiller.distill_train.train:train",
                   help=argparse.SUPPRESS)
    _encoder_args(c)
    add_task_arguments(c)
    c.set_defaults(func=_cmd_recommend)

    f = subparsers.add_parser("recommend-fit", help="fit the recommender on a ledger")
    f.add_argument("--ledger", required=True, help="ledger directory or Parquet file")
    f.add_argument("--out", required=True, help="where to write the fitted model (.json)")
    f.add_argument("--evaluate", action="store_true",
                   help="also run leave-one-task-out: top-k recommended vs k random")
    f.add_argument("--k", type=int, default=5)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--note", default="", help="what the ledger is; printed with every ranking")
    f.add_argument("--features", default=None,
                   help="task features, comma-separated (default: those of "
                        "distiller.autodistiller.design.DEFAULT_FEATURES the ledger has)")
    f.set_defaults(func=_cmd_fit)


def _encoder_args(p) -> None:
    p.add_argument("--encoder", choices=("minilm", "hashing"), default="minilm",
                   help="sentence encoder for the dataset embedding (hashing: fast, tests)")
    p.add_argument("--feature-cache", default=None, help="embedding cache directory")
    p.add_argument("--feature-sample", type=int, default=256, help="texts embedded")


def _task(args, cache: Optional[str] = None):
    """The task of a sweep or recommendation: from the flags (a built-in name, a task file or
    columns, labels inferred from TASK_DATA's train file), else, for a name only, the task the
    cache recorded under that name."""
    from distiller.autodistiller.features import find_split
    from distiller.taskdata.resolve import task_from_args

    name = args.task or os.path.basename(os.path.normpath(args.task_data))
    try:
        task, notes = task_from_args(args, data=find_split(args.task_data, "train"),
                                     required=False)
    except ValueError:
        task, notes = None, []
    if task is None and cache:
        from distiller.builders.cache.store import TeacherCache

        opened = TeacherCache.open(cache)
        found = [t for t in (opened.corpus_task(c) for c in opened.corpora())
                 if t is not None and t.name == name]
        task = found[0] if found else None
    if task is None:
        task, notes = task_from_args(args, data=find_split(args.task_data, "train"))
    for note in notes:
        print(f"distiller: {note}", file=sys.stderr)
    return task


def _features(args, task, records=None):
    from distiller.autodistiller.features import (HashingEncoder, MiniLMEncoder, compute_features,
                                        load_task_records)

    train, dev, regression = records or load_task_records(args.task_data, task)
    encoder = HashingEncoder() if args.encoder == "hashing" else MiniLMEncoder()
    return compute_features(train, dev, regression=regression, encoder=encoder,
                            sample_size=args.feature_sample, cache_dir=args.feature_cache)


def _recommend_features(args, task, model):
    """(DatasetFeatures, the candidate rows' feature columns): what the model uses, computed
    for this task (distiller.autodistiller.task_inputs)."""
    from distiller.autodistiller.features import load_task_records
    from distiller.autodistiller.task_inputs import task_feature_row

    records = load_task_records(args.task_data, task)
    base = _features(args, task, records)
    row = task_feature_row(task, args.task_data, base.to_row(),
                           [r.get("label") for r in records[0]], model.needs(),
                           cache=args.cache, dev_corpus=args.dev_corpus, probe=model.probe)
    return base, row


def _feature_values(model, row) -> str:
    """The model's task features of this task, as printed beside the ranking."""
    import pandas as pd

    from distiller.autodistiller.design import TASK_FEATURES

    frame = pd.DataFrame([row])
    return ", ".join(f"{f} {float(TASK_FEATURES[f].compute(frame).iloc[0]):.4g}"
                     for f in model.features or [] if f in TASK_FEATURES)


def _cmd_sweep(args) -> int:
    from distiller.autodistiller.space import load_space
    from distiller.autodistiller.sweep import SweepOptions, run_sweep, teacher_info

    space = load_space(args.space)
    task = _task(args, args.cache)
    teacher, fingerprint = args.teacher, args.teacher_fingerprint
    info = teacher_info(args.cache) if args.build or None in (teacher, fingerprint) else {}
    if args.build:
        from distiller.autodistiller.features import find_split
        from distiller.autodistiller.corpora import build_missing_corpora

        for s in build_missing_corpora(space, task=task, cache=args.cache,
                                       train_file=find_split(args.task_data, "train"),
                                       teacher=info["model"], workers=args.build_workers):
            log.info("built %s: %d newly scored, %d cache hits", list(s["corpora"]),
                     s["newly_scored"], s["cache_hits"])
    if teacher is None or fingerprint is None:
        teacher = info["model"] if teacher is None else teacher
        fingerprint = info["fingerprint"] if fingerprint is None else fingerprint
    out = args.out or os.path.join("runs", "sweeps", task.name)
    features = _features(args, task)
    options = SweepOptions(
        space=space, task=task.name, cache=args.cache, out_dir=out, trials=args.trials,
        features=features.to_row(), study_db=args.study_db, study_name=args.study_name,
        ledger=args.ledger, jobs=args.jobs, seed=args.seed, teacher=teacher,
        teacher_fingerprint=fingerprint, teacher_metric=args.teacher_metric,
        trainer=args.trainer, prune_warmup_epochs=args.prune_warmup_epochs)
    summary = run_sweep(options)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["states"].get("complete") else 1


def sweep_report(ledger_df, out_dir: str, *, top: int = 10) -> dict:
    """Write table.csv, report.md, best_configs.png and factor_effects.png; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from distiller.autodistiller.ledger import CONFIG_COLUMNS

    os.makedirs(out_dir, exist_ok=True)
    done = ledger_df[ledger_df["status"] == "complete"].copy()
    if done.empty:
        raise UsageError("the ledger has no completed runs to report on")
    factors = [c for c in list(CONFIG_COLUMNS) + ["student"] if c != "corpus"
               and done[c].astype(str).nunique() > 1]
    cols = ["task", "trial", "student", *[f for f in factors if f != "student"], "dev_metric",
            "ratio", "wall_time_s"]
    best = (done.sort_values("dev_metric", ascending=False)
            .groupby("task", sort=True).head(top).sort_values(["task", "dev_metric"],
                                                               ascending=[True, False]))
    paths = {"table": os.path.join(out_dir, "table.csv"),
             "report": os.path.join(out_dir, "report.md"),
             "best": os.path.join(out_dir, "best_configs.png"),
             "effects": os.path.join(out_dir, "factor_effects.png")}
    best[cols].to_csv(paths["table"], index=False)
    counts = ledger_df.groupby(["task", "status"]).size().unstack(fill_value=0)
    with open(paths["report"], "w", encoding="utf-8") as fh:
        fh.write("# Sweep report\n\nRuns by status:\n\n" + _markdown(counts.reset_index())
                 + "\n\n" + f"Best {top} completed configurations per task:\n\n"
                 + _markdown(best[cols]) + "\n")

    tasks = sorted(done["task"].unique())
    fig, axes = plt.subplots(len(tasks), 1, figsize=(9, 1.2 + 0.35 * top * len(tasks)),
                             squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        rows = best[best["task"] == task].iloc[::-1]
        labels = [" ".join(f"{f}={r[f]}" for f in factors) or r["run_id"]
                  for _, r in rows.iterrows()]
        ax.barh(range(len(rows)), rows["dev_metric"], color="tab:blue")
        ax.set_yticks(range(len(rows)), labels, fontsize=6)
        ax.set_title(f"{task}: best configurations ({rows['metric_name'].iloc[0]})")
        lo = rows["dev_metric"].min()
        ax.set_xlim(lo - 0.05 * abs(lo) - 1e-3, rows["dev_metric"].max() * 1.01 + 1e-3)
    fig.tight_layout()
    fig.savefig(paths["best"], dpi=120)
    plt.close(fig)

    shown = factors or ["inter_loss"]
    fig, axes = plt.subplots(len(tasks), len(shown), figsize=(3.2 * len(shown), 2.8 * len(tasks)),
                             squeeze=False)
    for i, task in enumerate(tasks):
        rows = done[done["task"] == task]
        for j, factor in enumerate(shown):
            ax = axes[i, j]
            # a factor a run did not sample (mi_alpha without MI) is "-", not a float NaN
            labels = rows[factor].map(lambda v: "-" if pd.isna(v) else str(v))
            groups = sorted(labels.unique())
            data = [rows.loc[labels == g, "dev_metric"].to_numpy() for g in groups]
            ax.boxplot(data, tick_labels=groups)
            for k, d in enumerate(data, start=1):
                ax.scatter([k] * len(d), d, s=8, alpha=0.6, color="tab:orange")
            ax.set_title(f"{task}: by {factor}", fontsize=9)
            ax.tick_params(axis="x", labelsize=7, rotation=30)
    fig.tight_layout()
    fig.savefig(paths["effects"], dpi=120)
    plt.close(fig)
    return paths


def _markdown(df) -> str:
    """A GitHub-style table of a DataFrame (no tabulate dependency)."""
    def cell(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |",
             "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _cmd_report(args) -> int:
    from distiller.autodistiller.ledger import Ledger

    df = Ledger(args.ledger).read()
    if df.empty:
        raise FileNotFoundError(f"no ledger rows at {args.ledger!r}; run `distiller sweep` first")
    paths = sweep_report(df, args.out, top=args.top)
    with open(paths["report"], encoding="utf-8") as fh:
        print(fh.read())
    print("wrote " + ", ".join(paths.values()))
    return 0


def _cmd_recommend(args) -> int:
    from distiller.autodistiller.ledger import Ledger
    from distiller.autodistiller.recommend import AutoDistiller, load_default
    from distiller.autodistiller.space import load_space

    task = _task(args, args.cache)
    if task.kind == "span":
        raise UsageError(f"recommend ranks configurations for classification and regression "
                         f"tasks; {task.name!r} is question answering (spans), which the "
                         "recommender's ledger has no runs of")
    from distiller.autodistiller.refit_report import evaluation_lines

    space = load_space(args.space)
    if args.ledger:
        model = AutoDistiller().fit(Ledger(args.ledger).read())
    elif args.model:
        model = AutoDistiller.load(args.model)
    else:
        model = load_default()
    print("\n".join(evaluation_lines(model.evaluation, n_rows=model.n_rows, tasks=model.tasks)))
    if model.note:
        print(f"note on the recommender: {model.note}")
    sys.stdout.flush()  # the evaluation before the features, which may take minutes (probe)
    features, feature_row = _recommend_features(args, task, model)
    ranked = model.rank(space, feature_row, teacher=args.teacher, k=args.k)
    print(f"task features of {task.name}: {_feature_values(model, feature_row) or '(none)'}")
    print(f"top {len(ranked)} of {len(list(space.candidates()))} configurations for {task.name}, "
          "distinct objectives and augmentations first:")
    for i, row in ranked.iterrows():
        print(f"{i + 1:2d}. predicted ratio {row['predicted_ratio']:.4f}  "
              f"{json.dumps(row['params'], sort_keys=True)}")
    if not args.run:
        return 0
    if not args.cache:
        raise UsageError("--run needs --cache, the teacher cache to train the students from")
    from distiller.autodistiller.sweep import SweepOptions, TrialRunner, teacher_info

    info = teacher_info(args.cache)
    out = args.out or os.path.join("runs", "recommend", task.name)
    runner = TrialRunner(SweepOptions(
        space=space, task=task.name, cache=args.cache, out_dir=out, trials=len(ranked),
        features=features.to_row(), study_name=f"recommend-{task.name}", teacher=args.teacher
        or info["model"], teacher_fingerprint=info["fingerprint"], trainer=args.trainer))
    for i, row in ranked.iterrows():
        result = runner.run(row["params"], i)
        print(f"{i + 1:2d}. {result['metric_name']} {result['dev_metric']:.4f} "
              f"(ratio {result['ratio'] if result['ratio'] is not None else float('nan'):.4f})")
    print(f"ledger rows appended to {runner.options.ledger_path}")
    return 0


def _cmd_fit(args) -> int:
    from distiller.autodistiller.ledger import Ledger
    from distiller.autodistiller.recommend import AutoDistiller, leave_one_task_out

    df = Ledger(args.ledger).read()
    features = args.features.split(",") if args.features else None
    model = AutoDistiller(seed=args.seed, note=args.note, features=features).fit(df)
    model.save(args.out)
    print(f"fitted on {model.n_rows} runs of tasks {model.tasks} with task features "
          f"{model.features}; wrote {args.out}")
    if args.evaluate:
        report = leave_one_task_out(df, k=args.k, seed=args.seed)
        print(report.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    return 0
