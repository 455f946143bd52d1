"""`distiller augment`: augment any input (file, glob, dataset) into JSONL, without a teacher.

    distiller augment --input train.tsv --task sst2 --policy eda_swap:0.3 --copies 4 \\
        --seed 13 --output out.jsonl [--mlm-model PATH] [--bt-models FWD BWD] [--limit N]
    distiller augment --input trec.tsv --task trec --text-a 1 --label 0 --policy ...  # own data

Every output line is an augmented copy (id, text_a, text_b, label by name, parent_id, chain, copy,
seed); originals are not written (add --include-originals to write them too). Rows that cannot
become records go to OUTPUT.dead.jsonl with their reason; a summary goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from distiller.common.errors import UsageError
from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "run_augment"]


def add_parsers(subparsers) -> None:
    """Register `distiller augment` on the dispatcher's subparsers."""
    p = subparsers.add_parser(
        "augment", help="augment a local TSV/CSV/JSONL file into JSONL",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True,
                   help="file, glob, saved dataset or hf:NAME (as `distiller build --input`)")
    p.add_argument("--policy", required=True,
                   help="policy spec, e.g. 'eda_swap:0.3' or 'eda_synonym:0.1+eda_swap:0.1', "
                        "or a YAML file")
    p.add_argument("--copies", type=int, default=None,
                   help="augmented copies per record (overrides the spec's copies=)")
    p.add_argument("--seed", type=int, default=0, help="base seed")
    p.add_argument("--output", required=True, help="output JSONL file")
    p.add_argument("--mlm-model", help="masked LM (HF name or path) for contextual steps")
    p.add_argument("--bt-models", nargs=2, metavar=("FWD", "BWD"),
                   help="seq2seq models (HF names or paths) for backtranslate steps")
    p.add_argument("--limit", type=int, help="only the first N data rows")
    p.add_argument("--batch-records", type=int, default=256,
                   help="records per augmentation batch (does not change the output)")
    p.add_argument("--include-originals", action="store_true",
                   help="also write each original record (chain 'original', copy 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_task_arguments(p, labels_optional=True)
    p.set_defaults(func=run_augment)


def run_augment(args) -> int:
    """Run `distiller augment` from parsed arguments; returns the exit code."""
    from .to_jsonl import (augment_to_jsonl, check_task_input, input_task,  # loaded when it runs
                           load_policy)

    task, notes = input_task(args)
    for note in notes:
        print(f"distiller augment: {note}", file=sys.stderr)
    check_task_input(args, task)
    _check_counts(args)
    policy = load_policy(args)
    summary = augment_to_jsonl(args, task, policy)
    print(json.dumps(summary, indent=1, sort_keys=False), file=sys.stderr)
    return 0


def _check_counts(args) -> None:
    if args.copies is not None and args.copies < 1:
        raise UsageError(f"--copies must be >= 1, got {args.copies}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_records < 1:
        raise UsageError(f"--batch-records must be >= 1, got {args.batch_records}")
