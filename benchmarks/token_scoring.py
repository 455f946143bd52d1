"""Scoring with a masked-LM teacher: the vocabulary projection at the masked positions only
(builders/teacher/token_forward.py, the default) against the projection of every position,
gathered after (what a backend the hook cannot reach does), in one run.

The same texts (SUBJ train) are scored by the same loaded teacher in interleaved rounds, the two
paths taking turns; texts per second of each, their ratio, and the largest difference between
the two paths' top-k log-probabilities (and the share of top-k ids that agree).

    .venv/bin/python benchmarks/token_scoring.py [--teacher runs/mlm/minilm-glue] [--texts 600]
        [--rounds 3] [--tokens topk:32] [--out runs/token-scoring]

`make mlm` builds the default teacher. Writes OUT/results.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from distiller.builders.teacher import token_forward  # noqa: E402
from distiller.builders.teacher.config import TeacherConfig  # noqa: E402
from distiller.builders.teacher.factory import make_teacher  # noqa: E402
from distiller.common.files import atomic_write  # noqa: E402
from distiller.taskdata.paths import shared_data  # noqa: E402

import lm_study  # noqa: E402  (benchmarks/, this script's folder)

PROJECTED = token_forward._projected_rows


@contextlib.contextmanager
def _every_position(loaded, flat):
    yield []          # the hook never runs: full logits [B, W, V], gathered after


def score(teacher, texts, path: str):
    token_forward._projected_rows = PROJECTED if path == "masked rows" else _every_position
    try:
        start = time.perf_counter()
        outs = teacher.score(texts)
        return time.perf_counter() - start, outs
    finally:
        token_forward._projected_rows = PROJECTED


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default=os.path.join("runs", "mlm", "minilm-glue"))
    p.add_argument("--texts", type=int, default=600)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tokens", default="topk:32")
    p.add_argument("--out", default=os.path.join("runs", "token-scoring"))
    args = p.parse_args(argv)
    if not os.path.isdir(args.teacher):
        p.error(f"no masked LM at {args.teacher!r}: run `make mlm` first or pass --teacher")
    texts = lm_study.read_texts(os.path.join(shared_data("text", "SUBJ"), "train.txt"),
                                args.texts)
    teacher = make_teacher(TeacherConfig(model=args.teacher, head="masked_lm",
                                         tokens=args.tokens, device="cpu", max_length=128,
                                         layers=())).load()
    score(teacher, texts[:64], "masked rows")   # warm-up
    times = {"every position": [], "masked rows": []}
    outs = {}
    for _ in range(args.rounds):
        for path in times:
            seconds, outs[path] = score(teacher, texts, path)
            times[path].append(seconds)
            print(f"{path}: {len(texts) / seconds:.1f} texts/s", flush=True)
    diff, agree, total = 0.0, 0, 0
    for a, b in zip(outs["every position"], outs["masked rows"]):
        ta, tb = a["tokens"], b["tokens"]
        diff = max(diff, float(np.abs(ta.logprobs.astype(np.float64) -
                                      tb.logprobs.astype(np.float64)).max()))
        agree += int((ta.ids == tb.ids).sum())
        total += ta.ids.size
    rate = {k: len(texts) / statistics.median(v) for k, v in times.items()}
    positions = sum(len(o["positions"]) for o in outs["masked rows"])
    tokens = sum(len(o["input_ids"]) for o in outs["masked rows"])
    result = {"teacher": args.teacher, "texts": len(texts), "tokens": args.tokens,
              "masked_share": positions / tokens, "texts_per_s": rate,
              "speedup": rate["masked rows"] / rate["every position"],
              "max_logprob_diff": diff, "topk_ids_agree": agree / total, "rounds": args.rounds}
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "results.json"), json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
