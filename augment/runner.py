"""The loop behind AugmentationPolicy.augment_records: candidate rounds, chains, dedupe."""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Sequence, Tuple

from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

from .base import Job

__all__ = ["run_policy"]

_TEXTS = ("text_a", "text_b")


def run_policy(policy, records: Sequence[Dict[str, Any]], base_seed: int, *,
               fields: Sequence[str] = _TEXTS
               ) -> Tuple[List[Dict[str, Any]], Dict[str, int]]:
    """Make policy.copies unique copies per record in up to policy.max_rounds rounds.

    Candidate c of record r (c = round * copies + slot) is pushed through every step, on each
    side named in `fields` (both by default); its seeds depend only on (base_seed, record id,
    policy name, c, step, side), so changing one side only leaves that side's copies as they
    were. Other sides and fields (label, a question's context and answers) are carried over.
    """
    unknown = [f for f in fields if f not in _TEXTS]
    if unknown or not fields:
        raise UsageError(f"fields must be a non-empty subset of {list(_TEXTS)}, got "
                         f"{list(fields)}")
    augs = policy.augmenters()
    name = policy.name
    n = policy.copies
    stats: Counter = Counter(records=len(records), requested=n * len(records))
    ids = [str(r["id"]) for r in records]
    if len(set(ids)) != len(ids):
        raise UsageError("records passed to augment_records must have unique ids; got "
                         f"{len(ids) - len(set(ids))} duplicate(s)")
    accepted: List[List[Tuple[int, str, Any]]] = [[] for _ in records]
    for rnd in range(policy.max_rounds):
        todo = [(r, c) for r in range(len(records)) if len(accepted[r]) < n
                for c in range(rnd * n, (rnd + 1) * n)]
        if not todo:
            break
        stats["candidates"] += len(todo)
        texts = {(r, c, side): records[r][side] for r, c in todo
                 for side in fields if records[r].get(side) is not None}
        keys = sorted(texts, key=lambda k: (k[0], k[1], k[2]))
        for step, aug in enumerate(augs):
            jobs = [Job(text=texts[(r, c, side)],
                        seed=derive_seed(base_seed, ids[r], name, c, step, aug.name, side),
                        record_seed=derive_seed(base_seed, ids[r], name, step, side),
                        copy=c, copies=n) for r, c, side in keys]
            outs, counters = aug.augment(jobs)
            for key, text in zip(keys, outs):
                texts[key] = text
            for k, v in counters.items():
                stats[f"{step}:{aug.name}:{k}"] += v
        for r, c in todo:
            if len(accepted[r]) >= n:
                continue
            rec = records[r]
            new = tuple(texts.get((r, c, side), rec.get(side)) for side in _TEXTS)
            if new == (rec.get("text_a"), rec.get("text_b")):
                stats["noop"] += 1
            elif any(new == (a, b) for _, a, b in accepted[r]):
                stats["duplicate"] += 1
            else:
                accepted[r].append((c, new[0], new[1]))
    copies = []
    for r, rec in enumerate(records):
        for k, (c, a, b) in enumerate(accepted[r]):
            copy = {"id": f"{ids[r]}#{name}#{k}", "text_a": a, "text_b": b,
                    "label": rec.get("label"), "parent_id": ids[r], "chain": name, "copy": k,
                    "seed": derive_seed(base_seed, ids[r], name, c)}
            copy.update((key, v) for key, v in rec.items() if key not in copy)
            copies.append(copy)
    stats["produced"] = len(copies)
    stats["shortfall"] = stats["requested"] - len(copies)
    stats.setdefault("noop", 0)
    return copies, dict(stats)
