"""Control of the ledger's runner without loading the trainer: its rows, plan and status, and
starting and stopping the detached runner (distiller.autodistiller.ledger_run).

    python -m distiller.autodistiller.ledger_control status [--out DIR]   # done/total, ETA
    python -m distiller.autodistiller.ledger_control stop   [--out DIR]

Standard library and the plan only: `make ledger-status` answers in a fraction of a second.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import signal
import subprocess
import sys
from typing import Any, Dict, List, Optional, Set

from distiller.autodistiller.ledger_plan import Plan, default_plan
from distiller.autodistiller.ledger_rows import read_jsonl_rows
from distiller.common.files import atomic_write

__all__ = ["read_rows", "done_cells", "load_plan", "cell_seconds", "status_text",
           "start_detached", "stop", "main"]

# the checkout holding the `distiller` package (the detached runner's path)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(
    importlib.util.find_spec("distiller").origin)))


def read_rows(out: str) -> List[Dict[str, Any]]:
    """The ledger's rows; a line cut short by a kill is skipped."""
    path = os.path.join(out, "ledger.jsonl")
    return read_jsonl_rows(path) if os.path.exists(path) else []


def done_cells(rows: List[Dict[str, Any]]) -> Set[str]:
    return {r["cell"] for r in rows if r.get("status") == "complete"}


def load_plan(out: str, requested: Optional[Plan]) -> Plan:
    """The ledger's plan: plan.json when the ledger exists (`requested` must match it), else
    `requested` (default: the seven-task plan), written to plan.json."""
    path = os.path.join(out, "plan.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            plan = Plan.from_dict(json.load(fh))
        if requested is not None and requested != plan:
            raise SystemExit(f"{out} holds a ledger of another plan ({path}); continue it without "
                             "plan options, or give another --out")
        return plan
    plan = requested or default_plan()
    os.makedirs(out, exist_ok=True)
    atomic_write(path, json.dumps(plan.to_dict(), indent=1))
    return plan


def _pid(out: str) -> Optional[int]:
    try:
        with open(os.path.join(out, "runner.pid"), encoding="utf-8") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def cell_seconds(rows: List[Dict[str, Any]]) -> List[float]:
    """Machine seconds per complete cell: its wall time divided by the cells that ran beside it
    (rows whose start..end spans its midpoint, itself included), so cells run two at a time
    count half their wall time each."""
    spans = []
    for r in rows:
        if r.get("status") != "complete":
            continue
        try:
            start = datetime.datetime.fromisoformat(r["started_at"]).timestamp()
            end = datetime.datetime.fromisoformat(r["ended_at"]).timestamp()
        except (KeyError, TypeError, ValueError):
            start = end = None
        spans.append((float(r["wall_time_s"]), start, end))
    out = []
    for wall, start, end in spans:
        if start is None:
            out.append(wall)
            continue
        mid = (start + end) / 2
        beside = sum(1 for _, s, e in spans if s is not None and s <= mid <= e)
        out.append(wall / max(1, beside))
    return out


def status_text(out: str) -> str:
    """Cells done/total, per task, the machine time per cell and the ETA of the rest."""
    if not os.path.exists(os.path.join(out, "plan.json")):
        return f"no ledger in {out} (start it first)"
    plan = load_plan(out, None)
    rows = read_rows(out)
    done = done_cells(rows)
    cells = plan.cells()
    seconds = cell_seconds(rows)
    left = len(cells) - len(done & {c.key for c in cells})
    pid = _pid(out)
    lines = [f"ledger {out}: {len(cells) - left}/{len(cells)} cells done, "
             f"{sum(r.get('status') == 'failed' for r in rows)} failed attempts; runner "
             + (f"running (pid {pid})" if pid else "not running")]
    for task in plan.tasks:
        mine = [c for c in cells if c.task == task]
        lines.append(f"  {task:6s} {sum(c.key in done for c in mine)}/{len(mine)}")
    if seconds:
        recent = seconds[-30:]   # the pace of the latest cells (parallelism, machine)
        mean = sum(recent) / len(recent)
        eta = datetime.timedelta(seconds=int(mean * left))
        lines.append(f"{mean:.0f} s of the machine per cell over the last {len(recent)} "
                     f"(cells run side by side share it); ETA {eta} for the {left} left "
                     "(task preparation not counted)")
    return "\n".join(lines)


def start_detached(out: str, argv: List[str]) -> int:
    """Start `run` with `argv` in a new session (survives the shell), niced, logging to
    {out}/runner.log; returns its pid."""
    if _pid(out):
        raise SystemExit(f"a runner is already running on {out} (pid {_pid(out)})")
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "runner.log"), "a", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen(["nohup", "nice", "-n", "19", sys.executable, "-m",
                             "distiller.autodistiller.ledger_run", "run", *argv],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    with open(os.path.join(out, "runner.pid"), "w", encoding="utf-8") as fh:
        fh.write(str(proc.pid))
    return proc.pid


def stop(out: str) -> str:
    pid = _pid(out)
    if pid is None:
        return "no runner running"
    os.killpg(pid, signal.SIGTERM)  # its own session: the runner and its build workers
    return f"stopped runner {pid}"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m distiller.autodistiller.ledger_control",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("status", "stop"))
    p.add_argument("--out", default=os.path.join("runs", "ledger"))
    args = p.parse_args(argv)
    print(status_text(args.out) if args.command == "status" else stop(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
