"""Teacher scoring on a GPU (issue 21), every ratio measured side by side in one run.

For each compute precision (float32; float16 and bfloat16 autocast) and the MiniLM-L6 teacher:
  bare       a length-sorted forward loop over our batch plan (token budget), logits to the host,
             nothing kept or written: the floor of any scorer;
  bare_keep  the same loop also bringing every hidden state to the host as float16;
  user10     what a careful user writes in ten lines (sort by length, batches of 64 tokenized in
             the loop, logits to the host);
  ours_wN    `score_into_cache` into a float16 cache (all hidden states; tokenize, key, score,
             write Parquet, sha256, fsync, commit) with N writer threads.
Then, at bfloat16: plain instead of page-locked host copies, and layers 0,3,6 only (fewer bytes);
and the writer alone (the same outputs encoded, written, hashed, fsynced and committed, no
forward): the ceiling the disk and the writer set. Variants run in interleaved rounds (rates are
medians over rounds, ratios medians of per-round ratios).

Usage: python benchmarks/bench_gpu.py --model DIR [--sentences 10000] [--rounds 3]
       [--max-tokens 32768] [--workdir DIR] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cache import sst2_sample  # noqa: E402
from scoring_compare import (bare_sorted_loop, interleaved, median_ratio, ours,  # noqa: E402
                             user_loop, writer_alone)


def teacher_for(model: str, amp: str, max_tokens: int, layers="all", device: str = "cuda"):
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    return Teacher(TeacherConfig(model=model, num_labels=2, device=device, amp=amp,
                                 layers=layers, max_tokens_per_batch=max_tokens,
                                 max_batch_size=1024)).load()


def main() -> int:
    import torch

    from distiller.builders import forward

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", type=int, default=10000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=32768)
    p.add_argument("--workdir")
    p.add_argument("--out")
    p.add_argument("--precisions", default="float32,float16,bfloat16")
    p.add_argument("--device", default="cuda", help="cpu: a smoke run of this script only")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here; nothing measured", file=sys.stderr)
        return 2
    work = args.workdir or tempfile.mkdtemp(prefix="bench-gpu-")
    os.makedirs(work, exist_ok=True)
    rows = sst2_sample(args.sentences)
    n = len(rows)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (smoke run)"
    print(f"{gpu}: {n} SST-2 sentences, token budget {args.max_tokens}, {os.cpu_count()} CPUs",
          flush=True)
    summary = {"device": gpu, "sentences": n}
    amps = {"float32": "off", "float16": "fp16", "bfloat16": "bf16"}
    for name in args.precisions.split(","):
        teacher = teacher_for(args.model, amps[name], args.max_tokens, device=args.device)
        teacher.score(rows[:2048])                       # warm-up: kernels, allocator
        variants = {
            "bare": lambda: bare_sorted_loop(teacher, rows),
            "bare_keep": lambda: bare_sorted_loop(teacher, rows, keep=True),
            "user10": lambda: user_loop(teacher, rows),
            "ours_w1": lambda: ours(teacher, rows, work, "o1", chunk=512, writers=1),
            "ours_w4": lambda: ours(teacher, rows, work, "o4", chunk=512, writers=4),
        }
        sec = interleaved(variants, args.rounds)["wall"]
        rate = {k: n / statistics.median(v) for k, v in sec.items()}
        print(f"{name}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rate.items()))
        for o in ("ours_w1", "ours_w4"):
            for b in ("bare", "bare_keep", "user10"):
                summary[f"{name}_{o}_vs_{b}"] = round(median_ratio(sec, o, b), 3)
        summary[f"{name}_rates"] = {k: round(v) for k, v in rate.items()}
        print("  " + json.dumps({k: v for k, v in summary.items() if k.startswith(name + "_o")}),
              flush=True)
    # extras at the last precision: host copies, fewer layers, the writer alone
    few = teacher_for(args.model, amps[name], args.max_tokens, layers=(0, 3, 6),
                      device=args.device)
    few.score(rows[:2048])

    def plain_copies():
        forward.PIN_HOST_COPIES = False
        try:
            return ours(teacher, rows, work, "plain", chunk=512, writers=4)
        finally:
            forward.PIN_HOST_COPIES = True

    extras = {"ours_w4": lambda: ours(teacher, rows, work, "o4", chunk=512, writers=4),
              "ours_w4_plain_copies": plain_copies,
              "ours_w4_layers036": lambda: ours(few, rows, work, "few", chunk=512, writers=4),
              "bare": lambda: bare_sorted_loop(teacher, rows),
              "writer_alone_w1": lambda: writer_alone(teacher, rows, work, 1),
              "writer_alone_w4": lambda: writer_alone(teacher, rows, work, 4)}
    sec = interleaved(extras, args.rounds)["wall"]
    rate = {k: n / statistics.median(v) for k, v in sec.items()}
    print(f"{name} extras: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rate.items()))
    summary["bf16_extras_rates"] = {k: round(v) for k, v in rate.items()}
    summary["bf16_plain_vs_pinned"] = round(median_ratio(sec, "ours_w4_plain_copies",
                                                         "ours_w4"), 3)
    summary["bf16_layers036_vs_bare"] = round(median_ratio(sec, "ours_w4_layers036", "bare"), 3)
    # the cache row size sets the writer's share: bytes per sentence at all layers
    sample = teacher.score(rows[:500], store_as="float16")
    per = sum(sum(h.nbytes for h in o["hidden"].values()) for o in sample) / len(sample)
    summary["hidden_bytes_per_sentence"] = round(per)
    print("SUMMARY " + json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(summary, fh, indent=1)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
