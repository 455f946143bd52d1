"""The recommender's model file: one JSON object holding a format tag, what the model was fitted
with and on (`info`) and the fitted numbers (`model`, distiller.autodistiller.ratio_model).

A model file may come from someone else, so reading one parses JSON only (no pickle, no joblib:
those run code from the file while loading) and checks every field before it is used; anything
else, a pickle included, is one ValueError saying what the file is and how to get a model.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Tuple

from distiller.common.errors import UsageError
from distiller.autodistiller.ratio_model import RatioModel
from distiller.builders.cache.manifest import atomic_write_bytes

__all__ = ["FORMAT", "VERSION", "INFO_TYPES", "OPTIONAL_INFO", "PROBE_TYPES", "write_model_file",
           "read_model_file"]

FORMAT = "distiller-recommender"
VERSION = 1

# info key -> its JSON type (AutoDistiller's settings and what it was fitted on)
INFO_TYPES = {"n_components": int, "seed": int, "n_estimators": int, "max_depth": int,
              "learning_rate": float, "tasks": list, "n_rows": int, "embedding_dim": int,
              "sklearn_version": str, "note": str}
# info keys later models write (an earlier file without them reads as the default here): the
# task features the model uses, the no-KD probe that measures one of them, and the model's
# leave-one-task-out evaluation (distiller.autodistiller.refit), printed with every ranking
OPTIONAL_INFO = {"features": None, "probe": None, "evaluation": None}
# the probe's settings (distiller.autodistiller.probe): the ledger's, repeated on a new task
PROBE_TYPES = {"student": str, "student_layers": int, "steps": int, "batch_size": int,
               "lr": float, "train_size": int, "dev_size": int, "seed": int}
# the evaluation's summaries printed by `distiller recommend` (each {"mean", "low", "high"})
EVALUATION_CIS = ("recommended_top1", "random_top1", "elsewhere_top1",
                  "recommended_minus_random_top1", "recommended_minus_elsewhere_top1")

_REFIT = "fit one with `distiller recommend-fit --ledger LEDGER --out MODEL.json`"


def write_model_file(path: str, info: Mapping[str, Any], model: RatioModel) -> None:
    """Write `path` atomically (strict JSON: a NaN or infinity is an error, never written)."""
    data = {"format": FORMAT, "version": VERSION, "info": dict(info), "model": model.to_dict()}
    text = json.dumps(data, allow_nan=False, separators=(",", ":")) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"))


def read_model_file(path: str) -> Tuple[Dict[str, Any], RatioModel]:
    """(info, model) of a file `write_model_file` wrote; ValueError for anything else."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:1] == b"\x80":  # the opening byte of a binary pickle (joblib files are pickles)
        raise UsageError(f"{path!r} is a pickle (such as a .joblib model of an earlier "
                         "Distiller), which is never opened because loading one runs code from "
                         f"the file: {_REFIT}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path!r} is not a recommender model file (JSON written by "
                         f"`distiller recommend-fit`): {_reason(exc)}; {_REFIT}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path!r} is JSON but not a recommender model file (no \"format\": "
                         f"\"{FORMAT}\"); {_REFIT}")
    if data.get("version") != VERSION:
        raise UsageError(f"{path!r} is a recommender model file of version "
                         f"{data.get('version')!r}, this Distiller reads version {VERSION}: "
                         f"{_REFIT}")
    where = repr(path)
    info = data.get("info")
    if not isinstance(info, dict):
        raise UsageError(f"{where}: info must be a JSON object")
    for key, kind in INFO_TYPES.items():
        value = info.get(key)
        ok = isinstance(value, (int, float) if kind is float else kind) \
            and not isinstance(value, bool)
        if not ok or (key == "tasks" and not all(isinstance(t, str) for t in value)):
            raise UsageError(f"{where}: info.{key} must be a {kind.__name__}"
                             f"{' of strings' if kind is list else ''}, got {value!r}")
    out = {k: info[k] for k in INFO_TYPES}
    out.update({k: info.get(k, default) for k, default in OPTIONAL_INFO.items()})
    _check_optional(out, where)
    return out, RatioModel.from_dict(data.get("model"), where)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value == value and abs(value) != float("inf")


def _check_optional(info: Dict[str, Any], where: str) -> None:
    """The later info keys, when present: features a list of names, probe its settings,
    evaluation the numbers `distiller recommend` prints."""
    features = info["features"]
    if features is not None and not (isinstance(features, list)
                                     and all(isinstance(f, str) for f in features)):
        raise UsageError(f"{where}: info.features must be a list of feature names")
    probe = info["probe"]
    if probe is not None:
        ok = isinstance(probe, dict) and all(
            isinstance(probe.get(k), (int, float) if kind is float else kind)
            and not isinstance(probe.get(k), bool) for k, kind in PROBE_TYPES.items())
        if not ok:
            raise UsageError(f"{where}: info.probe must hold {sorted(PROBE_TYPES)} (the no-KD "
                             "probe's settings)")
    evaluation = info["evaluation"]
    if evaluation is not None:
        ok = isinstance(evaluation, dict) and all(
            isinstance(evaluation.get(k), dict)
            and all(_is_number(evaluation[k].get(b)) for b in ("mean", "low", "high"))
            for k in EVALUATION_CIS) and all(
            isinstance(evaluation.get(k), int) for k in ("tasks", "runs"))
        if not ok:
            raise UsageError(f"{where}: info.evaluation must hold tasks, runs and "
                             f"{list(EVALUATION_CIS)} as {{mean, low, high}} numbers")


def _no_constant(name: str):
    raise UsageError(f"{name} is not a number a model file may hold")


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start} is not UTF-8 text"
    return str(exc)
