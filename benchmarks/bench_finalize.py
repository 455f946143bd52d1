"""Benchmark: peak memory of a build's runner and workers as the corpus grows (issue 19).

Builds a cache from N synthetic rows (real SST-2 sentences, each made distinct by a row suffix,
so every row is a new key) with a tiny random teacher (2 layers, hidden 32, [CLS] of the last
layer kept), once per size, each build in a fresh process, and prints per size:

- the runner's (main process) peak RSS: the driver, Beam's DirectRunner (which holds the data
  between stages in this process) and, for dask, the client;
- the largest peak RSS of a worker process (any step: reading, keying, scoring, parts, commit);
- the committing step's own figures: the RSS of its process when the step began and the peak
  during the step (Linux: the peak is reset at the step's start), so its growth is the memory
  the commit itself needed;
- seconds and rows/s;

then the ratio of each figure between the largest and the smallest size.

    python benchmarks/bench_finalize.py --rows 20000 200000 [--workers 2] [--runner direct]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from distiller.taskdata.paths import shared_data  # noqa: E402

SST2 = shared_data("glue", "SST-2", "train.tsv")


def _mb(rusage_kb: int) -> float:
    """ru_maxrss in MB (kilobytes on Linux, bytes on macOS)."""
    return rusage_kb / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def make_corpus(path: str, rows: int) -> str:
    """`rows` distinct labelled rows (GLUE SST-2 layout) cycling through the SST-2 sentences."""
    with open(SST2, encoding="utf-8") as fh:
        next(fh)
        base = [line.rstrip("\n").split("\t") for line in fh]
    with open(path, "w", encoding="utf-8") as out:
        out.write("sentence\tlabel\n")
        for i in range(rows):
            text, label = base[i % len(base)]
            out.write(f"{text.strip()} r{i}\t{label}\n")
    return path


def make_teacher(directory: str) -> str:
    from tests.tinymodels import tiny_bert_classifier

    with open(SST2, encoding="utf-8") as fh:
        next(fh)
        texts = [line.split("\t")[0] for _, line in zip(range(5000), fh)]
    return tiny_bert_classifier(directory, texts + [f"r{i}" for i in range(100)],
                                vocab_size=2000)


def child(args) -> None:
    """One build in this (fresh) process; prints its figures as one JSON line."""
    from distiller.pipelines.build import BuildOptions, build_distill_set

    start = time.perf_counter()
    summary = build_distill_set(BuildOptions(
        input=args.data, task="sst2", teacher=args.teacher, cache=args.cache,
        workers=args.workers, runner=args.runner, devices="cpu", max_length=64,
        layers=(2,), pooling="cls", progress=False, threads_per_worker=1,
        dead_letters=args.cache + ".dead.jsonl"))
    seconds = time.perf_counter() - start
    print(json.dumps({
        "rows": summary["records_read"], "scored": summary["newly_scored"],
        "seconds": round(seconds, 1),
        "main_peak_rss_mb": round(_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1),
        "workers_peak_rss_mb": round(_mb(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss),
                                     1),
        "commit_step_rss_mb": summary.get("commit_rss_mb"),
        "part_files": summary.get("part_files")}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[20000, 200000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runner", default="direct")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--teacher", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-finalize-") as tmp:
        teacher = make_teacher(os.path.join(tmp, "teacher"))
        for n in sorted(args.rows):
            data = make_corpus(os.path.join(tmp, f"rows-{n}.tsv"), n)
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "--data", data,
                   "--teacher", teacher, "--cache", os.path.join(tmp, f"cache-{n}"),
                   "--workers", str(args.workers), "--runner", args.runner]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env=dict(os.environ, PYTHONPATH=ROOT)).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(f"{n:>8} rows: {result['seconds']:7.1f} s ({n / result['seconds']:6.0f} rows/s)"
                  f"  runner peak RSS {result['main_peak_rss_mb']:7.1f} MB"
                  f"  largest worker {result['workers_peak_rss_mb']:7.1f} MB"
                  f"  commit step: RSS {_commit(result)} MB"
                  f"  part files merged {result.get('part_files')}", flush=True)
    if len(results) > 1:
        small, big = results[0], results[-1]
        print(f"{big['rows']} vs {small['rows']} rows ({args.runner}, {args.workers} workers): "
              f"runner peak RSS x{big['main_peak_rss_mb'] / small['main_peak_rss_mb']:.2f}, "
              f"largest worker x{big['workers_peak_rss_mb'] / small['workers_peak_rss_mb']:.2f}"
              + (f", commit step's growth {_growth(small)} -> {_growth(big)} MB"
                 if small.get("commit_step_rss_mb") else ""))


def _commit(result) -> str:
    rss = result.get("commit_step_rss_mb") or {}
    return f"{rss.get('start')} at its start, peak {rss.get('peak')}"


def _growth(result) -> str:
    rss = result["commit_step_rss_mb"]
    if rss.get("start") is None or rss.get("peak") is None:
        return "?"
    return f"{rss['peak'] - rss['start']:+.1f}"


if __name__ == "__main__":
    main()
