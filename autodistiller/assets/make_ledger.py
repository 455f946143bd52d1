"""How the shipped ledger and recommender were made: real CPU sweeps on GLUE SST-2, RTE, STS-B.

For each task: sample the training set (seeded) and the dev set, fine-tune all-MiniLM-L6-v2 into a
teacher and build its cache (originals + two EDA copies each, and the dev set) through the Beam
pipeline -- or, with --from-results DIR, reuse the teachers, caches and samples of a
benchmarks/results.py run -- then run `distiller sweep` over assets/space.yaml with 2-layer
students. Finally the per-task ledgers are exported into one Parquet file and the recommender is
fitted on it. The shipped assets:

    .venv/bin/python benchmarks/results.py --out runs/results        # teachers and caches
    .venv/bin/python -m distiller.autodistiller.assets.make_ledger --from-results runs/results \
        --out runs/ledger-real --trials 10          # then --trials 5 --no-prune: more complete runs

Everything it runs is the project's own code (trainer, builder, sweep CLI); nothing is invented.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from typing import List, Optional

log = logging.getLogger("distiller.autodistiller.assets.make_ledger")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)
from distiller.autodistiller.ledger import Ledger  # noqa: E402
from distiller.builders.teacher.pretrained import minilm_path  # noqa: E402
from distiller.distill_train.config import TrainConfig  # noqa: E402
from distiller.distill_train.train import train  # noqa: E402
from distiller.pipelines.build import BuildOptions, build_distill_set  # noqa: E402
from distiller.taskdata import builtin_task  # noqa: E402
from distiller.taskdata.paths import shared_data  # noqa: E402
from distiller.taskdata.sampling import sample_tsv  # noqa: E402

GLUE = shared_data("glue")
TASKS = {"sst2": ("SST-2", 64), "rte": ("RTE", 128), "stsb": ("STS-B", 128), "cola": ("CoLA", 64),
         "mrpc": ("MRPC", 128)}


def prepare_task(task: str, out: str, *, train_size: int, dev_size: int, seed: int,
                 teacher_epochs: int, workers: int, policy: str) -> dict:
    folder, max_length = TASKS[task]
    data = os.path.join(out, task, "data")
    train_file, dev_file = os.path.join(data, "train.tsv"), os.path.join(data, "dev.tsv")
    header = builtin_task(task).header
    sample_tsv(os.path.join(GLUE, folder, "train.tsv"), train_file, train_size, seed,
               header=header)
    sample_tsv(os.path.join(GLUE, folder, "dev.tsv"), dev_file, dev_size, seed, header=header)
    teacher_run = os.path.join(out, task, "teacher")
    result_path = os.path.join(teacher_run, "result.json")
    if not os.path.exists(result_path):
        train(TrainConfig(task=task, mode="finetune", run_dir=teacher_run, student=minilm_path(),
                          train_file=train_file, dev_file=dev_file, max_length=max_length,
                          epochs=teacher_epochs, lr=5e-5, seed=seed, progress=False))
    with open(result_path, encoding="utf-8") as fh:
        teacher = json.load(fh)
    cache = os.path.join(out, task, "cache")
    common = dict(task=task, teacher=os.path.join(teacher_run, "best_model"), cache=cache,
                  runner="direct", workers=workers, seed=seed, max_length=max_length,
                  progress=False)
    build_distill_set(BuildOptions(input=train_file, split="train", augment=policy, **common))
    build_distill_set(BuildOptions(input=dev_file, split="dev", **common))
    return {"data": data, "cache": cache, "teacher_metric": teacher["best_metric"]}


def reuse_results(task: str, out: str, results: str) -> dict:
    """Teacher and cache of a `benchmarks/results.py` run (--out RESULTS): its fine-tuned teacher,
    its cache (originals, the EDA variant, dev) and its seeded training sample as the task data."""
    folder, _ = TASKS[task]
    root = os.path.join(results, task)
    with open(os.path.join(root, "teacher", "result.json"), encoding="utf-8") as fh:
        teacher = json.load(fh)
    if not os.path.isdir(root):
        raise SystemExit(f"{root} does not exist: run benchmarks/results.py first")
    samples = sorted(f for f in os.listdir(os.path.join(root, "data"))
                     if f.startswith("train-")) if os.path.isdir(os.path.join(root, "data")) else []
    # the results run's seeded sample; a task it trained on whole (STS-B now): the train set
    train = (os.path.join(root, "data", samples[0]) if samples
             else os.path.join(GLUE, folder, "train.tsv"))
    data = os.path.join(out, task, "data")
    os.makedirs(data, exist_ok=True)
    shutil.copy(train, os.path.join(data, "train.tsv"))
    shutil.copy(os.path.join(GLUE, folder, "dev.tsv"), os.path.join(data, "dev.tsv"))
    return {"data": data, "cache": os.path.join(root, "cache"),
            "teacher_metric": teacher["best_metric"]}


def distiller(argv: List[str]) -> int:
    """Run a `distiller` command as `python -m distiller` with this checkout first on the path;
    its output goes to this process's stdout/stderr. Returns its exit code."""
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "distiller", *argv],
                          env=dict(os.environ, PYTHONPATH=path)).returncode


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distiller.autodistiller.assets.make_ledger",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ledger-build")
    parser.add_argument("--tasks", default="sst2,rte,stsb")
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--dev-size", type=int, default=400)
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="eda_synonym:0.1+eda_swap:0.1,copies=2")
    parser.add_argument("--space", default=os.path.join(HERE, "space.yaml"))
    parser.add_argument("--note", default="real CPU sweeps on 3 GLUE tasks (SST-2 1,000-row "
                        "sample, RTE 400, STS-B 800), 2-layer MiniLM students, 3 epochs: few "
                        "tasks and runs, so its rankings are weak evidence (see "
                        "autodistiller/assets/README.md)")
    parser.add_argument("--from-results", default=None, metavar="DIR",
                        help="reuse the teachers, caches and training samples of a "
                        "benchmarks/results.py run (its --out) instead of making new ones")
    parser.add_argument("--no-prune", action="store_true",
                        help="let every trial finish (complete runs are what leave-one-task-out "
                        "evaluates)")
    parser.add_argument("--with-ledger", default=None, metavar="PARQUET",
                        help="an earlier ledger (e.g. the shipped assets/ledger.parquet) whose "
                        "rows join this run's before the model is fitted and evaluated")
    parser.add_argument("--install", action="store_true",
                        help="copy ledger.parquet and autodistiller.json into the assets")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ledger_dir = os.path.join(args.out, "ledger")
    if args.with_ledger:  # a ledger directory reads every part file: the earlier rows join
        os.makedirs(ledger_dir, exist_ok=True)
        shutil.copy(args.with_ledger, os.path.join(ledger_dir, "part-0-earlier.parquet"))
    for task in args.tasks.split(","):
        start = time.time()
        if args.from_results:
            prep = reuse_results(task, args.out, args.from_results)
        else:
            prep = prepare_task(task, args.out, train_size=args.train_size,
                                dev_size=args.dev_size, seed=args.seed,
                                teacher_epochs=args.teacher_epochs, workers=args.workers,
                                policy=args.policy)
        log.info("[%s] teacher dev metric %.4f; cache %s (%.0f s)", task,
                 prep["teacher_metric"], prep["cache"], time.time() - start)
        rc = distiller(["sweep", "--space", args.space, "--task", task, "--cache",
                        prep["cache"], "--task-data", prep["data"], "--trials",
                        str(args.trials), "--out", os.path.join(args.out, task, "sweep"),
                        "--ledger", ledger_dir, "--teacher", "minilm-l6-finetuned",
                        "--teacher-metric", str(prep["teacher_metric"]),
                        "--feature-cache", os.path.join(args.out, "embeddings"),
                        "--seed", str(args.seed)] + (["--no-prune"] if args.no_prune else []))
        log.info("[%s] sweep exit %s (%.0f s)", task, rc, time.time() - start)
    shipped = os.path.join(args.out, "ledger.parquet")
    n = Ledger(ledger_dir).export(shipped)
    model = os.path.join(args.out, "autodistiller.json")
    for argv in (["recommend-fit", "--ledger", shipped, "--out", model, "--evaluate", "--note",
                  args.note],
                 ["sweep-report", "--ledger", shipped, "--out", os.path.join(args.out, "report")]):
        if distiller(argv):
            raise SystemExit(f"`distiller {argv[0]}` failed (its error is above)")
    log.info("%d ledger rows in %s", n, shipped)
    if args.install:
        shutil.copy(shipped, os.path.join(HERE, "ledger.parquet"))
        shutil.copy(model, os.path.join(HERE, "autodistiller.json"))
        log.info("installed into %s", HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
