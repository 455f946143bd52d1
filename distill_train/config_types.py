"""Types of TrainConfig values, checked before their ranges: one message naming the key, the
value and what is allowed, for values that arrive from YAML or `--set` as anything at all.

Float keys take numbers and numeric strings (PyYAML reads ``5e-5`` as a string: it wants
``5.0e-5``), stored as floats; NaN and infinities are refused. Integer keys take integers,
booleans take true/false, names and paths take strings (paths also os.PathLike).
"""
from __future__ import annotations

import math
import numbers
import os
from typing import Any, Callable

from distiller.taskdata.yamlfile import load_yaml_file, load_yaml_text

from .choices import OPTIONS

__all__ = ["check_types", "load_yaml_text", "load_yaml_file"]

# the choices table's settings (choices.py): its numbers are floats, its names strings
FLOAT_KEYS = tuple(k for k, o in OPTIONS.items() if o.numeric)
OPTIONAL_FLOAT_KEYS = tuple(k for k, o in OPTIONS.items() if o.numeric and o.optional)
INT_KEYS = ("seed",)
BOOL_KEYS = ("scale_by_t2", "resume", "tensorboard", "progress", "reinit_head")
STR_KEYS = tuple(k for k, o in OPTIONS.items() if not o.numeric) + ("device",)
PATH_KEYS = ("run_dir", "cache", "train_file", "dev_file", "student")
NAME_KEYS = ("train_corpus", "dev_corpus")
SEVERAL_KEYS = ("dev_file", "dev_corpus")   # one name, or a list of them


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise ValueError
    out = float(value)  # ValueError for a non-numeric string
    if not math.isfinite(out):
        raise ValueError
    return out


def check_types(config, bad: Callable[[str, Any, str], Exception]) -> None:
    """Raise bad(key, value, allowed) for the first value of the wrong type; convert numeric
    strings of float keys. Ranges and choices are checked by the caller afterwards."""
    def put(key: str, value: Any) -> None:
        object.__setattr__(config, key, value)

    for key in FLOAT_KEYS:
        value = getattr(config, key)
        if value is None and key in OPTIONAL_FLOAT_KEYS:
            continue
        try:
            put(key, _as_float(value))
        except (ValueError, OverflowError):
            raise bad(key, value, "expected a number" + (" or null" if key in OPTIONAL_FLOAT_KEYS
                                                         else "")) from None
    for key in INT_KEYS:
        value = getattr(config, key)
        if not _is_int(value):
            raise bad(key, value, "expected an integer")
    for key in BOOL_KEYS:
        if not isinstance(getattr(config, key), bool):
            raise bad(key, getattr(config, key), "expected true or false")
    for key in STR_KEYS:
        if not isinstance(getattr(config, key), str):
            raise bad(key, getattr(config, key), "expected a string")
    for key in PATH_KEYS + NAME_KEYS:
        value = getattr(config, key)
        if value is None:
            continue
        several = key in SEVERAL_KEYS and isinstance(value, (list, tuple))
        items = [_as_name(v, key in PATH_KEYS) for v in (value if several else [value])]
        if any(v is None for v in items) or (several and not items):
            what = "a path" if key in PATH_KEYS else "a corpus name"
            raise bad(key, value, f"expected {what}" + (" or a list of them"
                                                        if key in SEVERAL_KEYS else ""))
        put(key, tuple(items) if several else items[0])
    task = getattr(config, "task")
    if task is not None and not isinstance(task, (str, dict)) and \
            type(task).__name__ != "Task":
        raise bad("task", task, "expected a task name, a task file or a mapping of task keys")
    for key in ("student_layers", "mapping_pairs"):
        value = getattr(config, key)
        if value is not None and not _int_list(value, pairs=key == "mapping_pairs"):
            raise bad(key, value, "expected a list of integers" if key == "student_layers"
                      else "expected a list of [student_layer, teacher_layer] integer pairs")


def _as_name(value: Any, path: bool) -> Any:
    """The value as a string (a path may be os.PathLike), or None when it is neither."""
    if isinstance(value, str):
        return value
    if path and isinstance(value, os.PathLike):
        return os.fspath(value)
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_list(value: Any, *, pairs: bool) -> bool:
    if not isinstance(value, (list, tuple)):
        return False
    if pairs:
        if not all(isinstance(p, (list, tuple)) for p in value):
            return False
        value = [v for p in value for v in p]
    return all(_is_int(v) for v in value)
