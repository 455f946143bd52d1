"""`make demo` entry point: `python -m distill_train.demo_cli` (see distill_train.demo)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

from distill_train import demo as demo_module
from distill_train.demo import DemoOptions, run_demo
from pipelines.console import configure

__all__ = ["main", "print_report"]


def _say(line: str) -> None:
    print(line, flush=True)


def print_report(res: Dict, opts: DemoOptions, total_s: float) -> None:
    rows = [("teacher (MiniLM-L6, fine-tuned)", res["teacher"]),
            (f"student {opts.student_layers}L, no KD", res["nokd"]),
            (f"student {opts.student_layers}L, KD from cache", res["kd"])]
    print("\nSST-2 dev accuracy, % (872 sentences)")
    print("| model | accuracy |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:.2f} |")
    t = res["timings"]
    print("\ntime (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items())
          + f", total {total_s:.0f}")
    hits = res["train_summary"].get("cache_hits", 0) + res["dev_summary"].get("cache_hits", 0)
    new = res["train_summary"].get("newly_scored", 0) + res["dev_summary"].get("newly_scored", 0)
    print(f"teacher cache: {hits} texts reused, {new} newly scored")
    print("artifacts:")
    for k, v in res["paths"].items():
        print(f"  {k}: {v}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
          f"Python {platform.python_version()}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_train.demo_cli",
                                     description=demo_module.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = DemoOptions.__dataclass_fields__
    for f in dataclasses.fields(DemoOptions):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(defaults[f.name].default), default=f.default)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # quiet libraries here and in the build's worker processes: no Beam WARN lines, no LOAD
    # REPORT tables (the classifier heads the students lack are expected), no loading bars
    configure(0, fmt="%(levelname)s %(name)s: %(message)s")
    try:
        opts = DemoOptions(**{f.name: getattr(args, f.name)
                              for f in dataclasses.fields(DemoOptions)})
    except (ValueError, FileNotFoundError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    start = time.time()
    res = run_demo(opts, say=_say)
    print_report(res, opts, time.time() - start)
    with open(os.path.join(opts.out, "demo_result.json"), "w", encoding="utf-8") as fh:
        json.dump({k: v for k, v in res.items()}, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
