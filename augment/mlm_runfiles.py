"""The files of an `mlm-adapt` run in its output directory: the atomic checkpoint, the
metrics log, the result (written last: the completion marker), and the checks that keep a run
from writing over another run or over files that are not a run's."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from distiller.common.checkpoints import load_checkpoint_file, save_checkpoint_file
from distiller.common.errors import UsageError
from distiller.common.runfiles import append_event, write_json
from distiller.common.tempnames import temp_owner

__all__ = ["RESULT_FILE", "CHECKPOINT_FILE", "LOG_FILE", "save_checkpoint", "load_checkpoint",
           "write_json", "log_event", "prepare_output", "remove_checkpoint"]

RESULT_FILE = "mlm_adapt.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "metrics.jsonl"


def save_checkpoint(path: str, state, model, optimizer, scheduler) -> None:
    """Model, optimizer, schedule, loop state and the torch RNG (and the GPU's, training on one:
    dropout draws there), as plain data (what `load_checkpoint` reads), atomically."""
    import torch

    payload = {"state": state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
    device = next(model.parameters()).device
    if device.type == "cuda":
        payload["cuda_rng"] = torch.cuda.get_rng_state(device)
    save_checkpoint_file(path, payload)


def load_checkpoint(path: str) -> Dict[str, Any]:
    """The checkpoint `save_checkpoint` wrote, loaded as data only (weights_only=True: an
    output directory received from someone else runs no code); a refused, damaged or truncated
    one is a ValueError saying how to start over."""
    payload = load_checkpoint_file(
        path, keys=("state", "model", "optimizer", "scheduler", "rng"),
        fix=f"start over with --fresh (or delete {os.path.dirname(path)!r})")
    if not isinstance(payload["state"], dict):
        raise UsageError(f"{path} holds no loop state: start over with --fresh")
    return payload


def log_event(output: str, record: Dict[str, Any]) -> None:
    """Append one event (with the time) to OUTPUT/metrics.jsonl."""
    append_event(os.path.join(output, LOG_FILE), record)


def prepare_output(config, fingerprint: str) -> Optional[Dict[str, Any]]:
    """Create OUTPUT; the finished result if this very run is done there already (else None).
    Refuses a directory holding another run or files that are not a run's."""
    out = config.output
    os.makedirs(out, exist_ok=True)
    ours = (RESULT_FILE, CHECKPOINT_FILE, LOG_FILE)
    result_path = os.path.join(out, RESULT_FILE)
    if config.fresh:
        built = []
        if os.path.exists(result_path):  # the model files a finished run saved go too
            with open(result_path, encoding="utf-8") as fh:
                built = json.load(fh).get("files") or []
        for name in list(ours) + [n for n in built if os.sep not in n]:
            if os.path.isfile(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as fh:
            done = json.load(fh)
        if done.get("fingerprint") == fingerprint:
            return done
        raise UsageError(f"{out} holds a masked LM built by another mlm-adapt run (other "
                         "settings or corpus); use another --output, or --fresh to replace it")
    if not os.path.exists(os.path.join(out, CHECKPOINT_FILE)):
        foreign = sorted(n for n in os.listdir(out) if n not in ours
                         and not n.startswith(".mlm-adapt-") and temp_owner(n) is None)
        if foreign:
            raise UsageError(f"{out} is not empty ({foreign[:5]}): give a new or empty --output")
    return None


def remove_checkpoint(output: str) -> None:
    """Drop the checkpoint of a finished run (the result marks it done)."""
    path = os.path.join(output, CHECKPOINT_FILE)
    if os.path.exists(path):
        os.remove(path)
