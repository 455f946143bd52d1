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
import logging
import os
import sys

from distiller.common.errors import UsageError
from distiller.common.files import atomic_open
from distiller.taskdata.resolve import add_task_arguments

__all__ = ["add_parsers", "run_augment"]

log = logging.getLogger(__name__)


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
    from tqdm import tqdm

    from distiller.taskdata.reader import check_input, read_records
    from distiller.taskdata.records import DeadLetter
    from distiller.taskdata.resolve import task_from_args

    from .policy import AugmentationPolicy

    labelled = not args.unlabelled
    task, notes = task_from_args(args, data=args.input if labelled else None)
    for note in notes:
        print(f"distiller augment: {note}", file=sys.stderr)
    check_input(args.input, task, labelled=labelled)
    if args.copies is not None and args.copies < 1:
        raise UsageError(f"--copies must be >= 1, got {args.copies}")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.batch_records < 1:
        raise UsageError(f"--batch-records must be >= 1, got {args.batch_records}")
    policy = AugmentationPolicy.from_spec(args.policy, mlm_model=args.mlm_model,
                                          bt_models=args.bt_models)
    if args.copies is not None:
        import dataclasses

        policy = dataclasses.replace(policy, copies=args.copies)
    log.info("policy %s (fingerprint %s)", policy.name, policy.fingerprint)
    policy.load()

    dead_path = args.output + ".dead.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    totals = {"records": 0, "dead_letters": 0, "requested": 0, "produced": 0, "shortfall": 0,
              "noop": 0, "duplicate": 0}
    extra: dict = {}
    reasons: dict = {}
    # both files appear whole when augmentation ends, neither when it fails
    with atomic_open(args.output) as out, atomic_open(dead_path) as dead:
        batch = []
        bar = tqdm(desc="augment", unit="rec", disable=args.no_progress, file=sys.stderr)

        def flush():
            copies, stats = policy.augment_records(batch, args.seed,
                                                   fields=task.augment_fields)
            by_parent: dict = {}
            for c in copies:
                by_parent.setdefault(c["parent_id"], []).append(c)
            for rec in batch:
                if args.include_originals:
                    out.write(_line({**rec, "parent_id": None, "chain": "original", "copy": 0,
                                     "seed": None}, task))
                for c in by_parent.get(rec["id"], []):
                    out.write(_line(c, task))
            for key, value in stats.items():
                if key in totals:
                    totals[key] += value
                elif key != "candidates":
                    extra[key] = extra.get(key, 0) + value
            bar.update(len(batch))
            batch.clear()

        for item in read_records(args.input, task, limit=args.limit, labelled=labelled):
            if isinstance(item, DeadLetter):
                dead.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
                totals["dead_letters"] += 1
                reasons[item.reason] = reasons.get(item.reason, 0) + 1
                continue
            batch.append(item)
            if len(batch) >= args.batch_records:
                flush()
        if batch:
            flush()
        bar.close()
    summary = {"output": args.output, "dead_letters_file": dead_path, "policy": policy.name,
               "task": task.describe(),
               **totals, "dead_letter_reasons": reasons, "augmenters": extra}
    print(json.dumps(summary, indent=1, sort_keys=False), file=sys.stderr)
    return 0


def _line(record, task) -> str:
    """One output line; labels by name, so the file reads back with the same task."""
    return json.dumps(dict(record, label=task.label_name(record.get("label"))),
                      ensure_ascii=False) + "\n"
