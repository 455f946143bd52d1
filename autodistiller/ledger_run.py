"""The resumable runner of the seven-task ledger (plan: distiller.autodistiller.ledger_plan).

    python -m distiller.autodistiller.ledger_run start  [--out DIR] [--parallel N]  # detached
    python -m distiller.autodistiller.ledger_run status [--out DIR]   # done/total, ETA
    python -m distiller.autodistiller.ledger_run stop   [--out DIR]
    python -m distiller.autodistiller.ledger_run run    [--out DIR]   # in the foreground

DIR defaults to runs/ledger; `make ledger` uses benchmarks/ledger7, whose plan.json and
ledger.jsonl are tracked by git (the rest ignored), so a ledger continues on another machine
from a checkout of the repository: its finished rows are skipped, its current task prepared again.

The first start writes ``{out}/plan.json``; later starts continue that plan (a different
--steps or task list is refused). Each task is prepared once (ledger_tasks), then the cells run
in the plan's order; each finished cell appends one JSON line to ``{out}/ledger.jsonl`` (the
ledger's columns plus cell, seed, steps, machine, start/end time, git commit and the task
features). A restart skips cells with a complete row; a cell killed mid-way has none and is run
again from scratch. `run` lowers its own priority to nice 19 and holds ``{out}/runner.lock``
so two runners never share one ledger.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import logging
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Dict, Iterator, List, Optional

import torch

from distiller.autodistiller.features import HashingEncoder
from distiller.autodistiller.ledger_control import (REPO, done_cells, load_plan, read_rows,
                                                    start_detached, status_text, stop)
from distiller.autodistiller.ledger_plan import TASKS, Cell, Plan, default_plan
from distiller.autodistiller.ledger_rows import ledger_row
from distiller.autodistiller.ledger_tasks import plan_student, prepare_task
from distiller.builders.teacher.devices import usable_cpus
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
from distiller.taskdata.paths import shared_data

# read_rows .. stop live in ledger_control (no trainer import); re-exported for callers here
__all__ = ["run_ledger", "read_rows", "done_cells", "load_plan", "status_text", "start_detached",
           "stop", "main"]

log = logging.getLogger("distiller.autodistiller.ledger_run")


def _append(out: str, row: Dict[str, Any]) -> None:
    path = os.path.join(out, "ledger.jsonl")
    with open(path, "a+b") as fh:  # a line a kill cut short is closed first, then skipped
        fh.seek(0, os.SEEK_END)
        if fh.tell():
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def machine() -> Dict[str, Any]:
    """CPU model and the cores this process may use."""
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh
                          if ln.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cores": usable_cpus(), "host": platform.node()}


def git_commit(ledger: Optional[str] = None) -> str:
    """HEAD of the checkout the code runs from ('+dirty' with uncommitted changes to its code;
    the ledger's own folder, which may be tracked so its rows travel between machines, is not
    code and does not count)."""
    spec = ["--", "."]
    if ledger:
        rel = os.path.relpath(os.path.abspath(ledger), REPO)
        if not rel.startswith(".."):
            spec.append(f":(exclude){rel}")
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "-uno", *spec],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return ""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_cell(cell: Cell, plan: Plan, task: Dict[str, Any], out: str) -> Dict[str, Any]:
    """Train one cell from scratch and return its ledger row (status complete or failed)."""
    cfg = dict(plan.config(cell.config))
    run_dir = os.path.join(out, "runs", cell.task, f"{cell.config}-s{cell.seed}")
    shutil.rmtree(run_dir, ignore_errors=True)  # a killed cell restarts from scratch
    corpus = task["plain_corpus"] if cfg["augmentation"] == "none" else task["aug_corpus"]
    settings = {k: cfg[k] for k in ("inter_loss", "mapping", "temperature", "lr", "w_inter",
                                    "pred_loss", "mi_alpha") if k in cfg}
    config = TrainConfig(
        task=task["task_spec"], mode="distill", cache=task["cache"], train_corpus=corpus,
        dev_corpus=task["dev_corpus"], run_dir=run_dir, student=plan_student(plan),
        student_init="truncate", student_num_layers=plan.student_layers, max_steps=plan.steps,
        batch_size=plan.batch_size, seed=cell.seed, progress=False, resume=False, **settings)
    started, t0 = _now(), time.time()
    status, metric, best_epoch, epochs, error = "failed", None, -1, 0, ""
    try:
        result = train(config)
        status, metric = "complete", float(result.best_metric)
        best_epoch, epochs = int(result.best_epoch or 0), len(result.history)
    except Exception as exc:  # recorded; the cell runs again on the next start
        log.exception("cell %s failed", cell.key)
        error = f"{type(exc).__name__}: {exc}"
    feats = task["task_features"]
    values = {"augmentation": cfg["augmentation"], "mapping": cfg["mapping"]}
    row = ledger_row(
        run_id=cell.key, study="ledger7", trial=plan.cells().index(cell), task=cell.task,
        student=f"{os.path.basename(plan_student(plan).rstrip('/'))}-l{plan.student_layers}",
        teacher=task["teacher"], teacher_fingerprint="", teacher_metric=feats["teacher_metric"],
        values=values, config=config.to_dict(), features=task["features"],
        metric_name=task["metric_name"], metric=metric, best_epoch=best_epoch, epochs=epochs,
        wall=time.time() - t0, status=status)
    row.update(cell=cell.key, config_name=cell.config, seed=cell.seed, steps=plan.steps,
               batch_size=plan.batch_size, started_at=started, ended_at=_now(),
               machine=dict(machine(), threads=torch.get_num_threads()),
               git_commit=git_commit(out), task_features=feats, error=error)
    return row


def _cell_in_worker(threads: int, cell: Cell, plan: Plan, task: Dict[str, Any],
                    out: str) -> Dict[str, Any]:
    """run_cell in a worker process of `parallel` ones, with `threads` torch threads."""
    torch.set_num_threads(threads)
    return run_cell(cell, plan, task, out)


def _run_cells(cells: List[Cell], plan: Plan, task: Dict[str, Any], out: str,
               parallel: int) -> Iterator[Dict[str, Any]]:
    """The rows of `cells`, one at a time in this process, or `parallel` at a time in worker
    processes sharing the usable cores (rows in the order they finish; a worker that dies ends
    the pass, its cells left for the next start)."""
    if parallel <= 1 or len(cells) <= 1:
        for cell in cells:
            log.info("cell %s", cell.key)
            yield run_cell(cell, plan, task, out)
        return
    threads = max(1, usable_cpus() // parallel)
    # the MI-alpha cells (their critic makes them several times slower) first, so that the last
    # cells of a task, which leave workers idle as they end, are short ones
    cells = sorted(cells, key=lambda c: plan.config(c.config)["inter_loss"] != "mi")
    log.info("cells %s, %d at a time, %d torch threads each", ", ".join(c.key for c in cells),
             parallel, threads)
    # spawn: a fork of a process whose torch threads have run can hang in the child
    with ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_cell_in_worker, threads, c, plan, task, out) for c in cells]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BrokenProcessPool:
            log.error("a worker process died; the cells without a row run at the next start")
            for future in futures:
                future.cancel()


def run_ledger(out: str, plan: Optional[Plan] = None, *, data_root: Optional[str] = None,
               encoder=None, workers: int = 2, parallel: int = 1) -> Dict[str, int]:
    """Run every cell the ledger lacks (one pass), `parallel` cells at a time (each with the
    usable cores / parallel torch threads); returns counts of this pass."""
    plan = load_plan(out, plan)
    data_root = data_root or os.path.dirname(shared_data("glue"))
    lock = open(os.path.join(out, "runner.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"another runner holds {out}/runner.lock") from None
    done = done_cells(read_rows(out))
    counts = {"complete": 0, "failed": 0, "skipped": 0}
    todo = [c for c in plan.cells() if c.key not in done]
    for name in dict.fromkeys(c.task for c in todo):   # task after task, in the plan's order
        cells = [c for c in todo if c.task == name]
        try:
            log.info("preparing task %s", name)
            task = prepare_task(TASKS[name], plan, out, data_root, encoder=encoder,
                                workers=workers)
        except Exception:  # its cells wait for the next start; the other tasks go on
            log.exception("preparing task %s failed", name)
            counts["skipped"] += len(cells)
            continue
        for row in _run_cells(cells, plan, task, out, parallel):
            _append(out, row)
            counts[row["status"]] += 1
            log.info("cell %s %s: %s %s", row["cell"], row["status"], row["metric_name"],
                     row["dev_metric"])
    lock.close()
    return counts


def _lower_priority() -> None:
    try:
        os.nice(max(0, 19 - os.nice(0)))
    except OSError:
        pass


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distiller.autodistiller.ledger_run",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("start", "run", "status", "stop"))
    p.add_argument("--out", default=os.path.join("runs", "ledger"))
    p.add_argument("--tasks", help=f"comma-separated subset of {','.join(TASKS)}")
    p.add_argument("--steps", type=int, help="optimizer steps per run (default 100)")
    p.add_argument("--plan", help="a plan JSON file (Plan.to_dict) instead of the default plan")
    p.add_argument("--data", help="the shared data folder (holding glue/ and text/)")
    p.add_argument("--encoder", choices=("minilm", "hashing"), default="minilm",
                   help="text encoder of the task features' embedding")
    p.add_argument("--parallel", type=int, default=1,
                   help="cells trained at a time, in worker processes sharing the cores "
                        "(default 1: one cell with every core)")
    args, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unknown arguments {rest}")
    if args.command == "status":
        print(status_text(args.out))
        return 0
    if args.command == "stop":
        print(stop(args.out))
        return 0
    passed = [a for a in (argv if argv is not None else sys.argv[1:]) if a != args.command]
    if args.command == "start":
        print(f"ledger runner started, pid {start_detached(args.out, passed)}; log "
              f"{os.path.join(args.out, 'runner.log')}")
        return 0
    # force: an import (apache_beam's) may already have given the root logger a WARNING handler
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        force=True)
    logging.getLogger("apache_beam").setLevel(logging.WARNING)  # a line per bundle otherwise
    _lower_priority()
    plan = None
    if args.plan:
        with open(args.plan, encoding="utf-8") as fh:
            plan = Plan.from_dict(json.load(fh))
    elif args.tasks or args.steps:
        plan = default_plan(tuple(args.tasks.split(",")) if args.tasks else tuple(TASKS),
                            steps=args.steps or 100)
    encoder = None
    if args.encoder == "hashing":
        encoder = HashingEncoder()
    counts = run_ledger(args.out, plan, data_root=args.data, encoder=encoder,
                        parallel=max(1, args.parallel))
    print(json.dumps(counts))
    print(status_text(args.out))
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
