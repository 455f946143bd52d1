"""The trainer's run outputs over the shared run files (distiller.common.runfiles,
distiller.common.checkpoints): the metrics log (plus optional TensorBoard), the checkpoint of
the student, objective, optimizer, schedule and scaler (and the check that a run directory's
checkpoint belongs to the config resuming it), the saved model."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Tuple

import torch

from distiller.common import runfiles
from distiller.common.checkpoints import load_checkpoint_file, save_checkpoint_file
from distiller.common.device import cuda_rng_states
from distiller.common.errors import UsageError
from distiller.common.runfiles import append_event, json_safe
from distiller.taskdata.resolve import save_task

from .config import ADDED_KEYS

__all__ = ["RunLog", "save_checkpoint", "load_checkpoint", "check_resumable", "save_model",
           "json_safe"]

log = logging.getLogger(__name__)

# What a checkpoint holds (save_checkpoint).
_CHECKPOINT_KEYS = ("state", "model", "objective", "optimizer", "scheduler", "scaler")
# Config keys that may change between a killed run and its resumption; run_dir among them: a
# run directory moved or copied elsewhere (another disk, another machine) resumes from there.
RESUME_FREE = {"resume", "progress", "tensorboard", "log_every", "device", "eval_batch_size",
               "loader_workers", "run_dir"}


class RunLog:
    """Appends one JSON object per line to run_dir/metrics.jsonl; mirrors scalars to TensorBoard
    (run_dir/tb) when asked and installed."""

    def __init__(self, run_dir: str, *, tensorboard: bool = False, fresh: bool = False):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        if fresh and os.path.exists(self.path):  # a new run, not a resumed one: start over
            os.remove(self.path)
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(os.path.join(run_dir, "tb"))
            except ImportError as exc:
                log.warning("tensorboard requested but not usable (%s): pip install tensorboard",
                            exc)

    def event(self, record: Dict[str, Any]) -> None:
        record = append_event(self.path, record)
        if self.tb is not None and record.get("event") == "epoch":
            for name, value in (record.get("dev") or {}).items():
                self.tb.add_scalar(f"dev/{name}", value, record["global_step"])

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        self.event(dict(values, event="step", global_step=step))
        if self.tb is not None:
            for name, value in values.items():
                self.tb.add_scalar(f"train/{name}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def save_checkpoint(path: str, *, state: Dict[str, Any], model, objective, optimizer, scheduler,
                    scaler) -> None:
    """Everything a resumed run needs, as plain data (tensors, numbers, strings, lists, dicts:
    what `load_checkpoint` reads without running code), written atomically."""
    payload = {
        "state": state, "model": model.state_dict(), "objective": objective.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": {"cpu": torch.get_rng_state(),
                "cuda": cuda_rng_states()},
    }
    save_checkpoint_file(path, payload)


def load_checkpoint(path: str, *, model, objective, optimizer, scheduler, scaler
                    ) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]]]:
    """Restore in place; returns (loop state, RNG state). The file is loaded as data only
    (weights_only=True: a checkpoint received with a run directory runs no code); one that is
    refused, damaged or does not fit this run is a ValueError saying how to start over."""
    fix = (f"start the run over with `--set resume=false` (or delete {os.path.dirname(path)!r} "
           "or use another run directory)")
    payload = load_checkpoint_file(path, keys=_CHECKPOINT_KEYS, fix=fix)
    try:
        model.load_state_dict(payload["model"])
        objective.load_state_dict(payload["objective"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        scaler.load_state_dict(payload["scaler"])
        state, rng = payload["state"], payload.get("rng")
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        detail = detail if len(detail) <= 300 else detail[:300] + " ..."
        raise UsageError(f"{path} does not fit this run ({detail or type(exc).__name__}); "
                         f"{fix}") from None
    if not isinstance(state, dict) or not (rng is None or isinstance(rng, dict)):
        raise UsageError(f"{path} holds no loop state; {fix}")
    return state, rng


def check_resumable(run_dir: str, config: Dict[str, Any]) -> None:
    """UsageError unless the config saved in `run_dir` (if any) equals `config` (a
    TrainConfig.to_dict()) in every key but those a resumed run may change (RESUME_FREE)."""
    runfiles.check_resumable(os.path.join(run_dir, "config.json"), config, free=RESUME_FREE,
                             what=f"run_dir {run_dir!r}", fix="use a new run_dir or resume=false",
                             omitted=ADDED_KEYS)


def save_model(model, tokenizer, path: str, task) -> None:
    """A HF model directory: the weights and config, the tokenizer (if any) and the task
    (distiller_task.json, so that `distiller evaluate` knows the labels; none for an LM
    student, whose architecture says what it predicts)."""
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    if task is not None:
        save_task(task, path)
