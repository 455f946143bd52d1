"""`distiller train --nproc N`: the trainer as N data-parallel processes on this machine,
started by PyTorch's elastic launcher (distributed.run_ranks); each runs `_rank_main`."""
from __future__ import annotations

import os
from typing import Any, Dict

from distiller.common.errors import UsageError
from distiller.common.seeding import thread_independent_math
from distiller.taskdata.console import configure

from .assemble import resolve_run_task
from .config import TrainConfig
from .distributed import run_ranks
from .train import train

__all__ = ["launch"]


def launch(config, nproc: int, *, verbosity: int = 0) -> Dict[str, Any]:
    """Run `train(config)` as `nproc` data-parallel processes (`run_ranks`); returns rank 0's
    result dict."""
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError("--nproc inside a torchrun job: torchrun already started the ranks")
    resolve_run_task(config)  # a wrong cache, corpus or task: one error here, not one per rank
    os.makedirs(config.run_dir, exist_ok=True)
    return run_ranks(_rank_main, (config.to_dict(), verbosity), nproc)[0]


def _rank_main(config: Dict[str, Any], verbosity: int) -> Dict[str, Any]:
    """What each process started by `launch` runs: the trainer on the config, logging as its
    command's (WARNING and the libraries quiet; -v INFO, -vv DEBUG)."""
    thread_independent_math()  # inherited from the command's environment; set if started alone
    configure(verbosity)  # the quiet environment the command set is inherited; logging is not
    return train(TrainConfig.from_dict(config)).to_dict()
