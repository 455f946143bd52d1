"""`make demo` entry point: `python -m examples.demo` (see examples.demo.run)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

from distiller.builders.teacher.devices import usable_cpus
from examples.demo import run as demo_module
from examples.demo.run import DemoOptions, run_demo
from distiller.taskdata.console import configure

__all__ = ["main", "print_report", "plot_report"]


def _say(line: str) -> None:
    print(line, flush=True)


def _rows(res: Dict, opts: DemoOptions):
    speed, sizes = res["speed"], res["sizes"]
    t, s = speed["teacher"], speed["student"]
    return [
        (f"teacher: MiniLM-L6 fine-tuned on {sizes['labelled']} labelled", res["teacher"],
         t["parameters"], t["sentences_per_s"]),
        (f"student {opts.student_layers}L, no KD ({sizes['labelled']} labelled)", res["nokd"],
         s["parameters"], s["sentences_per_s"]),
        (f"student {opts.student_layers}L, KD from the cache ({sizes['transfer']} sentences "
         "+ copies)", res["kd"], s["parameters"], s["sentences_per_s"]),
    ]


def print_report(res: Dict, opts: DemoOptions, total_s: float) -> None:
    rows = _rows(res, opts)
    print(f"\nSST-2 dev (872 sentences; sentences/s over {res['speed_sentences']} "
          "of them, every second by length)")
    print("| model | accuracy % | parameters | sentences/s |\n|---|---|---|---|")
    for name, acc, params, rate in rows:
        print(f"| {name} | {acc:.2f} | {params / 1e6:.1f} M | {rate:.0f} |")
    gain = res["kd"] - res["nokd"]
    t, s = res["speed"]["teacher"], res["speed"]["student"]
    print(f"\nKD gain over no KD: {gain:+.2f} points; the student is "
          f"{t['parameters'] / s['parameters']:.1f}x smaller and "
          f"{s['sentences_per_s'] / t['sentences_per_s']:.1f}x faster than its teacher "
          f"({s['layers']} of {t['layers']} layers) and keeps "
          f"{100 * res['kd'] / res['teacher']:.1f}% of its accuracy")
    hits = res["transfer_summary"].get("cache_hits", 0) + res["dev_summary"].get("cache_hits", 0)
    new = res["transfer_summary"].get("newly_scored", 0) + \
        res["dev_summary"].get("newly_scored", 0)
    print(f"teacher cache: {new} texts newly scored, {hits} reused (a second run scores none)")
    print("time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in res["timings"].items())
          + f", total {total_s:.0f}")
    print("artifacts:")
    for k, v in res["paths"].items():
        print(f"  {k}: {v}")
    print(f"  table: {os.path.join(opts.out, 'demo.png')}")
    print(f"machine: {platform.machine()}, {usable_cpus()} usable CPU cores, "
          f"Python {platform.python_version()}")


def plot_report(res: Dict, opts: DemoOptions, path: str) -> None:
    """A small PNG: dev accuracy and inference speed of teacher and students."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(res, opts)
    labels = ["teacher\n(6 layers)", "student\nno KD", "student\nKD (cache)"]
    colors = ["tab:gray", "tab:orange", "tab:blue"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2))
    accs = [r[1] for r in rows]
    ax1.bar(labels, accs, color=colors)
    ax1.set_ylim(min(accs) - 6, max(accs) + 3)
    ax1.set_title("SST-2 dev accuracy (%)")
    for i, v in enumerate(accs):
        ax1.text(i, v + 0.3, f"{v:.1f}", ha="center", fontsize=9)
    rates = [r[3] for r in rows]
    ax2.bar(labels, rates, color=colors)
    ax2.set_title("inference, sentences/s (2 CPU cores)")
    for i, (v, p) in enumerate(zip(rates, [r[2] for r in rows])):
        ax2.text(i, v, f"{v:.0f}\n{p / 1e6:.1f}M params", ha="center", va="bottom", fontsize=8)
    ax2.set_ylim(0, max(rates) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo",
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
    total = time.time() - start
    plot_report(res, opts, os.path.join(opts.out, "demo.png"))
    print_report(res, opts, total)
    with open(os.path.join(opts.out, "demo_result.json"), "w", encoding="utf-8") as fh:
        json.dump(dict(res, total_s=total), fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
