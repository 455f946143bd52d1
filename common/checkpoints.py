"""A run's checkpoint file (checkpoint.pt of `distiller train`, `finetune` and `mlm-adapt`),
written and read as data only.

A run directory may come from someone else, and unpickling a file can run any code it names, so
checkpoints are read with ``torch.load(weights_only=True)``: tensors, numbers, strings, None and
lists, tuples and dicts of them, nothing else. `save_checkpoint_file` writes nothing else (numpy
numbers become Python numbers; anything that is not plain data is an error while saving, not a
checkpoint that cannot be resumed). `load_checkpoint_file` turns a refused, damaged or truncated
file into one UsageError naming it and what to do.
"""
from __future__ import annotations

import pickle
import warnings
from typing import Any, Dict, Sequence

from .errors import UsageError
from .files import atomic_write

__all__ = ["save_checkpoint_file", "load_checkpoint_file", "plain_data"]

_SCALARS = (bool, int, float, str, bytes, type(None))


def plain_data(value: Any, where: str = "checkpoint") -> Any:
    """`value` as what the weights-only loader reads: dicts, lists and tuples of tensors and
    plain scalars; numpy scalars become Python numbers and numpy arrays tensors. TypeError
    naming the entry (`where`, e.g. `checkpoint['state']['best']`) for anything else."""
    import torch

    if isinstance(value, torch.Tensor) or type(value) in _SCALARS:  # not numpy's float64 etc.
        return value
    if isinstance(value, dict):
        return {k: plain_data(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [plain_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    kind = type(value).__module__.split(".")[0]
    if kind == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()  # np.float64(0.5) -> 0.5: the same number
    if kind == "numpy" and hasattr(value, "shape"):
        return torch.from_numpy(value.copy())
    raise TypeError(f"{where} is a {type(value).__name__}: a checkpoint holds tensors, numbers, "
                    "strings, None, lists, tuples and dicts only (what loads without running code)")


def save_checkpoint_file(path: str, payload: Dict[str, Any]) -> None:
    """`payload` (plain_data) written durably and atomically (distiller.common.files)."""
    import torch

    data = plain_data(payload)
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_checkpoint_file(path: str, *, keys: Sequence[str], fix: str) -> Dict[str, Any]:
    """The checkpoint at `path`, a dict holding at least `keys`, loaded as data only on the CPU.
    UsageError (one line: the file, what is wrong with it, then `fix`, e.g. how to start the run
    over) when it holds anything but plain data, is damaged or truncated, or lacks a key."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it did not write
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except pickle.UnpicklingError as exc:
        raise UsageError(f"{path} is not a checkpoint that loads as data only ({_detail(exc)}); "
                         f"nothing in it was run: it was not written by Distiller or was altered "
                         f"since; {fix}") from None
    except Exception as exc:  # noqa: BLE001 - any failure to parse the file means it is damaged
        detail = f": {_first_sentence(str(exc))}" if str(exc).strip() else ""
        raise UsageError(f"{path} is damaged or truncated and cannot be resumed "
                         f"({type(exc).__name__}{detail}); {fix}") from None
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise UsageError(f"{path} is not a checkpoint of this kind of run (it lacks {missing}); "
                         f"{fix}")
    return payload


def _detail(exc: Exception) -> str:
    """The weights-only unpickler's reason (e.g. 'Unsupported global: GLOBAL io.open was not an
    allowed global by default'), without torch's advice to load the file unsafely."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker not in text:
        return _first_sentence(text)
    rest = text.split(marker, 1)[1].strip()
    return "the unpickler refused: " + _first_sentence(rest)


def _first_sentence(text: str) -> str:
    line = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return line.split(". ")[0].rstrip(".")
