"""The files of a run directory that `train`, `finetune` and `mlm-adapt` share: the metrics log
(one JSON object per line, with the time; NaN and infinities written as null), JSON files
written atomically (a run's config and result), and the check that a run directory's saved
config matches the run resuming in it. Checkpoints are `distiller.common.checkpoints`.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Collection, Dict, Optional

from .errors import UsageError
from .files import atomic_write

__all__ = ["json_safe", "append_event", "write_json", "check_resumable"]


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinite float (an undefined metric, a diverged loss) replaced
    by None, so that json.dumps(..., allow_nan=False) writes valid JSON; tensors and numpy
    scalars become floats."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else None


def append_event(path: str, record: Dict[str, Any]) -> Dict[str, Any]:
    """Append `record`, with the time (seconds since the epoch), as one line to the metrics log
    `path`; returns the record written."""
    record = dict(record, time=round(time.time(), 3))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(json_safe(record), sort_keys=True, allow_nan=False) + "\n")
    return record


def write_json(path: str, data: Dict[str, Any], *, indent: int = 1) -> None:
    """A JSON file written durably and atomically (non-finite numbers as null)."""
    atomic_write(path, json.dumps(json_safe(data), indent=indent, sort_keys=True,
                                  allow_nan=False))


def check_resumable(path: str, config: Dict[str, Any], *, free: Collection[str], what: str,
                    fix: str, omitted: Optional[Dict[str, Any]] = None) -> None:
    """UsageError unless the config saved at `path` (JSON; absent: nothing to check) equals
    `config` in every key but `free` (those a resumed run may change); the message lists the
    keys that differ, (saved, now), then `fix`; `what` names the directory (e.g. "run_dir
    'runs/a'"). omitted: keys either side may leave out, meaning the value given here."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        old = json.load(fh)
    omitted = omitted or {}
    diff = {}
    for k in list(config) + [k for k in omitted if k not in config]:
        saved, now = old.get(k, omitted.get(k)), config.get(k, omitted.get(k))
        if k not in free and saved != now:
            diff[k] = (saved, now)
    if diff:
        raise UsageError(f"{what} holds a checkpoint of a different config "
                         f"(key: (saved, now): {diff}); {fix}")
