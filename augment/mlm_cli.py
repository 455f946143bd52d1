"""`distiller mlm-adapt`: turn an encoder without a masked-LM head into a masked LM.

    distiller mlm-adapt --encoder ENCODER_DIR --input corpus.txt --output runs/mlm
    distiller mlm-adapt --encoder ENCODER_DIR --output runs/mlm-glue \\
        --input 'glue/*/train.tsv' --exclude 'glue/*/dev.tsv' --eval glue/SST-2/dev.tsv \\
        --whole-word --epochs 1 --eval-every 250
    distiller mlm-adapt ... --input reviews.tsv --task reviews --text-a 1   # your own columns

Inputs (--input, --exclude, --eval: files, globs, saved datasets, `hf:NAME[:CONFIG][@SPLIT]`) are
read by the same reader as every command: with task flags, those columns; without, a plain .txt
file is one sentence per line and a file in a folder named after a built-in task (SST-2, RTE,
CoLA, ...) is read as that task. Both texts of a pair are sentences of the corpus; duplicates are
dropped. --exclude: text never trained on (dev sets); --eval: text the held-out accuracy is
measured on (never trained on; default: a seeded 2% of the corpus).

OUTPUT ends as a standard masked-LM checkpoint that `contextual(model=OUTPUT)` loads, with
mlm_adapt.json (settings, corpus counts, held-out top-1/top-5 against minutes) and metrics.jsonl.
Interrupted, the same command resumes from OUTPUT/checkpoint.pt to the same weights; run again
when done, it reports the finished model.
"""
from __future__ import annotations

import argparse
import json
import sys

from distiller.common.errors import UsageError
from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "run_mlm_adapt"]


def add_parsers(subparsers) -> None:
    """Register `distiller mlm-adapt` on the dispatcher's subparsers."""
    p = subparsers.add_parser(
        "mlm-adapt", help="train a masked-LM head (and the encoder) so that an encoder without "
        "one can drive contextual augmentation", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True, help="encoder directory or HF name (its "
                   "tokenizer needs a mask token)")
    p.add_argument("--input", required=True, nargs="+", action="extend",
                   help="training text: files, globs, saved datasets or hf:NAME (repeatable)")
    p.add_argument("--output", required=True, help="output directory (new, empty, or this "
                   "run's own: then it resumes)")
    p.add_argument("--exclude", nargs="+", action="extend", default=[],
                   help="text never to train on (e.g. dev sets); matched ignoring case and "
                        "spacing")
    p.add_argument("--eval", nargs="+", action="extend", default=[],
                   help="held-out text to measure masked-token accuracy on (never trained on)")
    p.add_argument("--eval-fraction", type=float, default=0.02,
                   help="without --eval: the share of the corpus held out (default 0.02)")
    p.add_argument("--eval-size", type=int, default=2000,
                   help="at most this many held-out texts (a seeded choice; default 2000)")
    p.add_argument("--min-words", type=int, default=1,
                   help="drop texts of fewer words (default 1: keep all)")
    p.add_argument("--whole-word", action="store_true",
                   help="mask every piece of a chosen word together")
    p.add_argument("--mask-prob", type=float, default=0.15, help="share of units masked")
    p.add_argument("--max-length", type=int, default=128, help="tokens per text (truncated)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (the learning-rate "
                   "schedule spans them) instead of after --epochs")
    p.add_argument("--lr", type=float, default=1e-4, help="encoder learning rate")
    p.add_argument("--head-lr", type=float, help="the new head's learning rate (default 10x "
                   "--lr)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--freeze-up-to", type=int, metavar="K",
                   help="freeze the embeddings (and with them a tied decoder) and encoder "
                        "layers 1..K (0: embeddings only); default: train everything")
    p.add_argument("--no-unigram-bias", dest="unigram_bias", action="store_false",
                   help="start the new decoder bias at zero, not at log unigram frequencies")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, help="also measure every N steps (default: each "
                   "epoch only)")
    p.add_argument("--save-every", type=int, default=200, help="checkpoint every N steps")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one, bfloat16 "
                   "autocast there), cpu, or cuda[:N]")
    p.add_argument("--fresh", action="store_true", help="discard this output's checkpoint or "
                   "finished model and start over")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_arguments(p)
    p.set_defaults(func=run_mlm_adapt)


def _sources(specs, task):
    from .mlm_data import TextSource

    return [TextSource(spec, task) for spec in specs]


def run_mlm_adapt(args) -> int:
    """Run `distiller mlm-adapt` from parsed arguments; returns the exit code."""
    from distiller.taskdata.resolve import task_from_args

    from .mlm_adapt import MlmAdaptConfig, adapt
    from .mlm_data import MaskingConfig, collect_texts

    flags = any(getattr(args, k, None) for k in ("task", "task_file", "text_a"))
    task = None
    if flags:
        task, _ = task_from_args(args)  # texts only are read: labels are never needed
    if not 0.0 < args.eval_fraction < 1.0:
        raise UsageError(f"--eval-fraction must be in (0, 1), got {args.eval_fraction}")
    if args.eval_size < 1 or args.min_words < 1:
        raise UsageError("--eval-size and --min-words must be >= 1")
    config = MlmAdaptConfig(
        encoder=args.encoder, output=args.output,
        masking=MaskingConfig(mask_prob=args.mask_prob, whole_word=args.whole_word),
        max_length=args.max_length, batch_size=args.batch_size, epochs=args.epochs,
        max_steps=args.max_steps, lr=args.lr, head_lr=args.head_lr,
        weight_decay=args.weight_decay, warmup_ratio=args.warmup_ratio,
        freeze_up_to=args.freeze_up_to, unigram_bias=args.unigram_bias, seed=args.seed,
        eval_every=args.eval_every, save_every=args.save_every,
        progress=not args.no_progress, fresh=args.fresh, device=args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    corpus = collect_texts(_sources(args.input, task), exclude=_sources(args.exclude, task),
                           held_out=_sources(args.eval, task),
                           held_out_fraction=args.eval_fraction, held_out_max=args.eval_size,
                           min_words=args.min_words, seed=args.seed)
    print(f"distiller mlm-adapt: {corpus.stats.get('train_texts', 0)} training texts, "
          f"{corpus.stats.get('held_out_texts', 0)} held out; {json.dumps(corpus.stats)}",
          file=sys.stderr)
    if corpus.dead_letters:
        print(f"distiller mlm-adapt: rows skipped: {json.dumps(corpus.dead_letters)}",
              file=sys.stderr)
    result = adapt(config, corpus)
    final = result["final"]
    summary = {"output": args.output, "reused": bool(result.get("reused")),
               "held_out_top1": round(final["top1"], 2), "held_out_top5": round(final["top5"], 2),
               "unigram_baseline_top1": round(result["unigram_baseline"]["top1"], 2),
               "steps": final["step"], "minutes": round(result["minutes"], 1),
               "cpu_minutes": round(result["cpu_minutes"], 1), "tied": result["tied"],
               "curve": [(h["step"], round(h["minutes"], 1), round(h["top1"], 2),
                          round(h["top5"], 2)) for h in result["history"]]}
    print(json.dumps(summary, indent=1))
    return 0
