"""Entry points the data-parallel tests start in each rank (importable by spawned processes)."""
from __future__ import annotations


class Killed(Exception):
    """Raised by every rank at the same step: the run stops as a kill would stop it."""


def killed_run(config: dict, kill_at: int) -> None:
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.train import train

    def kill(step, parts):
        if step == kill_at:
            raise Killed(f"killed at step {step}")

    train(TrainConfig.from_dict(config), on_step=kill)
