"""What `distiller augment` does once its flags are read: the task of the input, the policy
loaded, and every record's augmented copies written to a JSONL file in batches (rows that cannot
become records to OUTPUT.dead.jsonl), with the counts for the summary."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from typing import Any, Dict, Iterable, Iterator, List

from tqdm import tqdm

from distiller.common.files import atomic_open
from distiller.taskdata.reader import check_input, read_records
from distiller.taskdata.records import DeadLetter
from distiller.taskdata.resolve import task_from_args

from .policy import AugmentationPolicy

__all__ = ["input_task", "check_task_input", "load_policy", "augment_to_jsonl"]

log = logging.getLogger(__name__)


def input_task(args):
    """(task, notes): the task the input is read with and notes on how it was chosen (the
    command prints them before `check_task_input`)."""
    return task_from_args(args, data=None if args.unlabelled else args.input)


def check_task_input(args, task) -> None:
    """The input's first rows checked against the task (one clear error when they do not fit)."""
    check_input(args.input, task, labelled=not args.unlabelled)


def load_policy(args) -> AugmentationPolicy:
    """The policy of --policy (--copies overriding its copies), its models loaded."""
    policy = AugmentationPolicy.from_spec(args.policy, mlm_model=args.mlm_model,
                                          bt_models=args.bt_models)
    if args.copies is not None:
        policy = dataclasses.replace(policy, copies=args.copies)
    log.info("policy %s (fingerprint %s)", policy.name, policy.fingerprint)
    return policy.load()


@dataclasses.dataclass
class _Tally:
    """The summary's counts: the policy's own (records, requested, produced, ...), the
    augmenters' other counters, and the dead letters by reason."""

    totals: Dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(
        ("records", "dead_letters", "requested", "produced", "shortfall", "noop", "duplicate"),
        0))
    extra: Dict[str, int] = dataclasses.field(default_factory=dict)
    reasons: Dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, stats: Dict[str, int]) -> None:
        for key, value in stats.items():
            if key in self.totals:
                self.totals[key] += value
            elif key != "candidates":
                self.extra[key] = self.extra.get(key, 0) + value

    def dead_letter(self, reason: str) -> None:
        self.totals["dead_letters"] += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def augment_to_jsonl(args, task, policy: AugmentationPolicy) -> Dict[str, Any]:
    """Augment every record of --input into --output, in batches of --batch-records; returns
    the summary. Both files appear whole when augmentation ends, neither when it fails."""
    dead_path = args.output + ".dead.jsonl"
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tally = _Tally()
    with atomic_open(args.output) as out, atomic_open(dead_path) as dead:
        bar = tqdm(desc="augment", unit="rec", disable=args.no_progress, file=sys.stderr)
        records = read_records(args.input, task, limit=args.limit, labelled=not args.unlabelled)
        for batch in _batches(records, args.batch_records, dead, tally):
            copies, stats = policy.augment_records(batch, args.seed, fields=task.augment_fields)
            _write_batch(out, batch, copies, task, args.include_originals)
            tally.add(stats)
            bar.update(len(batch))
        bar.close()
    return {"output": args.output, "dead_letters_file": dead_path, "policy": policy.name,
            "task": task.describe(), **tally.totals, "dead_letter_reasons": tally.reasons,
            "augmenters": tally.extra}


def _batches(items: Iterable[Any], size: int, dead, tally: _Tally) -> Iterator[List[Dict]]:
    """The records of `items` in lists of `size` (the last one shorter); each dead letter is
    written to `dead` as it comes."""
    batch: List[Dict] = []
    for item in items:
        if isinstance(item, DeadLetter):
            dead.write(json.dumps(item.to_dict(), ensure_ascii=False) + "\n")
            tally.dead_letter(item.reason)
            continue
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_batch(out, batch: List[Dict], copies: List[Dict], task,
                 include_originals: bool) -> None:
    """Each record's copies in input order (after the record itself with
    --include-originals)."""
    by_parent: Dict[Any, List[Dict]] = {}
    for c in copies:
        by_parent.setdefault(c["parent_id"], []).append(c)
    for rec in batch:
        if include_originals:
            out.write(_line({**rec, "parent_id": None, "chain": "original", "copy": 0,
                             "seed": None}, task))
        for c in by_parent.get(rec["id"], []):
            out.write(_line(c, task))


def _line(record, task) -> str:
    """One output line; labels by name, so the file reads back with the same task."""
    return json.dumps(dict(record, label=task.label_name(record.get("label"))),
                      ensure_ascii=False) + "\n"
