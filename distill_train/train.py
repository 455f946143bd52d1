"""The training loop, for distillation and plain fine-tuning: `train(config) -> TrainResult`
reads as a page of steps, each a function below it.

    set up      `_open_run_dir`: the task, config.json, the resume check;
                `_set_up`: model and objective (initialised from the seed alone), this rank's
                batches, the optimisation (optim.py: AdamW, linear warm-up and decay, clipping,
                AMP on CUDA); `_start_or_resume`: a fresh loop state or the checkpoint's
    each epoch  `_train_epoch`: micro-batches, gradient accumulation, an optimizer step per
                group, a checkpoint every `save_every_steps`; `_evaluate`: the task's metrics on
                every dev set, the best model saved as a HF directory (run_dir/best_model);
                `_end_epoch`: the history, early stopping, a checkpoint (run_dir/checkpoint.pt)
    result      `_finish`: result.json and the TrainResult

A killed run resumes from its checkpoint to the same final metrics: each epoch's data order and
dropout draws depend on (seed, epoch) only, and mid-epoch checkpoints carry the RNG state and the
epoch's loss sums so far. Under torchrun each process is one rank of a data-parallel run
(distributed.py): rank 0 alone evaluates and writes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from distiller.common.errors import UsageError
from distiller.common.device import gpu_count, resolve_device
from distiller.common.seeding import derive_seed

from . import distributed
from .assemble import assemble, resolve_run_task
from .config import TrainConfig
from .dev_metrics import evaluate_sets
from .forward import to_device
from .optim import Optimisation
from .runlog import (RunLog, check_resumable, json_safe, load_checkpoint, save_checkpoint,
                     save_model)
from .token_run import assemble_tokens
from .token_source import token_problem

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainResult:
    best_metric: float            # best dev value of the task's primary metric (nan: no dev set)
    metric_name: str
    best_epoch: Optional[int]     # 0-based
    history: List[Dict[str, Any]]  # one entry per epoch: train loss parts, dev metrics
    run_dir: str
    wall_time_s: float
    teacher_metric: Optional[float] = None  # teacher's dev metric from cached logits
    best_dev: Optional[Dict[str, float]] = None     # every dev metric at the best epoch
    teacher_dev: Optional[Dict[str, float]] = None  # every dev metric of the teacher

    def to_dict(self) -> Dict[str, Any]:
        """As a JSON-safe dict: NaN (no dev set, an undefined metric) becomes None."""
        return json_safe(dataclasses.asdict(self))


def train(config: TrainConfig, *, provider=None, train_rows: Optional[Sequence[Mapping]] = None,
          dev_rows: Optional[Sequence[Mapping]] = None,
          on_step: Optional[Callable[[int, Dict[str, float]], None]] = None,
          on_epoch: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> TrainResult:
    """Train a student as `config` says. `provider`/`train_rows`/`dev_rows` replace the cache
    (tests, the online-teacher baseline); `on_step(global_step, loss_parts)` runs after each
    optimizer step and `on_epoch(epoch, entry)` after each epoch's evaluation and checkpoint
    (entry = {"epoch", "global_step", "train": {...}, "dev": {metric: value}}); raising in either
    stops the run, as a kill would (a sweep prunes a trial this way)."""
    start = time.time()
    dist, rank_device = distributed.setup(config.device)  # one rank of several under torchrun
    lm_problem = token_problem(config, provider)  # masked_lm / causal_lm: a token-level teacher
    config, resuming = _open_run_dir(config, dist, own_task=provider is not None,
                                     token_level=lm_problem is not None)
    run = _set_up(config, dist, rank_device, resuming, lm_problem, provider=provider,
                  train_rows=train_rows, dev_rows=dev_rows)
    state = _start_or_resume(run)
    for epoch in range(state["epoch"], run.config.epochs):
        sums = _train_epoch(run, state, epoch, on_step)
        entry = _evaluate(run, state, epoch, sums)
        stop = _end_epoch(run, state, entry)
        if on_epoch is not None:
            on_epoch(epoch, dict(entry))
        if stop:
            break
    return _finish(run, state, time.time() - start)


@dataclasses.dataclass
class _Run:
    """What the steps of one run share, set up once by `_set_up`."""

    config: TrainConfig
    dist: distributed.DistContext
    device: torch.device
    model: torch.nn.Module
    objective: torch.nn.Module
    step: torch.nn.Module                 # student + objective: batch -> (loss, loss parts);
    #                                       DDP-wrapped with several ranks
    batches: distributed.RankBatches      # this rank's share of each global batch
    dev: List[Tuple[str, Any]]            # (name, batches) per dev set; the first selects
    tokenizer: Any
    opt: Optimisation
    steps_per_epoch: int                  # optimizer steps
    resuming: bool
    runlog: Any = None                    # RunLog on rank 0, distributed.NullLog elsewhere
    rng: Optional[Dict[str, Any]] = None  # a mid-epoch checkpoint's RNG state, for its epoch
    lm: Any = None                        # token-level runs: token_run.LMRun

    @property
    def ckpt_path(self) -> str:
        return _checkpoint_path(self.config)

    @property
    def metric_name(self) -> str:
        """The dev metric that selects the best epoch."""
        return self.lm.metric if self.lm is not None else self.config.metric_name

    def better(self, value: float, best: float) -> bool:
        return self.lm.better(value, best) if self.lm is not None else value > best

    def dev_metrics(self) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
        """(student, teacher or None) metrics over every dev set."""
        if self.lm is not None:
            return self.lm.evaluate(self.model, self.dev, self.device,
                                    autocast=self.opt.autocast)
        return evaluate_sets(self.model, self.dev, self.config.task_def.metrics, self.device,
                             autocast=self.opt.autocast)


def _checkpoint_path(config: TrainConfig) -> str:
    return os.path.join(config.run_dir, "checkpoint.pt")


def _open_run_dir(config: TrainConfig, dist, *, own_task: bool, token_level: bool = False
                  ) -> Tuple[TrainConfig, bool]:
    """(the config with its task resolved, whether the run resumes): the task read from the cache
    (unless an injected provider brings its own, or the teacher is token-level: an LM has no
    task), the run directory made, a checkpoint there checked to belong to this config and
    config.json written (rank 0)."""
    if not token_level and (not own_task or config._task is None):
        config = resolve_run_task(config)
    os.makedirs(config.run_dir, exist_ok=True)
    resuming = config.resume and os.path.exists(_checkpoint_path(config))
    if dist.is_main:
        if resuming:
            check_resumable(config.run_dir, config.to_dict())
        with open(os.path.join(config.run_dir, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(config.to_dict(), fh, indent=2, sort_keys=True)
    log.info("training config: %s", json.dumps(config.to_dict(), sort_keys=True))
    return config, resuming


def _set_up(config: TrainConfig, dist, rank_device, resuming: bool, lm_problem: Optional[str],
            **data) -> _Run:
    """Model and objective on the device (weights initialised from the seed alone), wrapped as
    one training step; this rank's batches; the optimisation over all the run's steps. A
    token-level run (`lm_problem`) is assembled by token_run.assemble_tokens."""
    device = rank_device or resolve_device(config.device)
    torch.manual_seed(derive_seed(config.seed, "init"))
    parts = (assemble_tokens(config, lm_problem, **data) if lm_problem
             else assemble(config, **data))
    model, objective = parts.model.to(device), parts.objective.to(device)
    attentions = objective.needs_attentions
    step = distributed.wrap(model, objective, dist, device, attentions=attentions,
                            hidden=objective.kind != "none" and not attentions)
    batches = distributed.RankBatches(parts.train, dist, device, workers=config.loader_workers)
    steps_per_epoch = math.ceil(len(batches) / config.grad_accum)  # len: global batches
    total = steps_per_epoch * config.epochs
    if config.max_steps:  # a step budget: as many epochs as it needs, the last one cut short
        config = dataclasses.replace(config, epochs=math.ceil(config.max_steps / steps_per_epoch))
        total = config.max_steps
    opt = Optimisation.build(config, model, objective, device, total)
    return _Run(config=config, dist=dist, device=device, model=model, objective=objective,
                step=step, batches=batches, dev=parts.dev, tokenizer=parts.tokenizer, opt=opt,
                steps_per_epoch=steps_per_epoch, resuming=resuming, lm=parts.lm)


def _start_or_resume(run: _Run) -> Dict[str, Any]:
    """The loop state (what a checkpoint saves): fresh, or restored with the model, objective and
    optimisation from the run directory's checkpoint; the metrics log opened (rank 0)."""
    state: Dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None,
                             "best_epoch": None, "bad_epochs": 0, "history": [],
                             "teacher_metric": None, "teacher_dev": None, "best_dev": None}
    dist, path = run.dist, run.ckpt_path
    if run.resuming:
        state, run.rng = load_checkpoint(path, model=run.model, objective=run.objective,
                                         **run.opt.checkpointed())
        if state.get("world_size", 1) != dist.world_size:
            raise UsageError(f"{path} was written by a run of {state.get('world_size', 1)} "
                             f"process(es), this one has {dist.world_size}: resume with as many "
                             "(the global batch and the data order depend on it)")
        if dist.enabled:  # each rank continues from its own RNG state
            run.rng = (state.pop("rank_rng", None) or [run.rng] * dist.world_size)[dist.rank]
        log.info("resumed from %s at epoch %d, step %d", path, state["epoch"],
                 state["global_step"])
    run.runlog = (RunLog(run.config.run_dir, tensorboard=run.config.tensorboard,
                         fresh=not run.resuming) if dist.is_main else distributed.NullLog())
    run.runlog.event({"event": "resume" if run.resuming else "start",
                      "global_step": state["global_step"]})
    return state


def _train_epoch(run: _Run, state: Dict[str, Any], epoch: int,
                 on_step: Optional[Callable]) -> Dict[str, float]:
    """One epoch's optimizer steps from where `state` stands (an epoch resumed mid-way skips the
    micro-batches done); returns the epoch's sums of loss parts over its optimizer steps."""
    config = run.config
    skip = state["step_in_epoch"] * config.grad_accum
    _seed_epoch(run, epoch, skip)
    run.model.train()
    run.objective.train()
    state.setdefault("epoch_sums", {})  # a mid-epoch checkpoint's sums continue
    n_batches = len(run.batches)
    bar = (_progress(config, n_batches, skip, f"epoch {epoch + 1}/{config.epochs}")
           if run.dist.is_main else None)
    group: Dict[str, float] = {}  # loss parts of the accumulation group so far
    for index, (_, batch, weight) in enumerate(run.batches.epoch(epoch, skip), start=skip):
        group_start = (index // config.grad_accum) * config.grad_accum
        in_group = min(config.grad_accum, n_batches - group_start)
        group_end = index + 1 >= group_start + in_group
        batch = to_device(batch, run.device)
        with distributed.sync_gradients(run.step, group_end):
            with run.opt.precision():
                loss, loss_parts = run.step(batch)
            # weight: this rank's share of the global batch (1.0 with one process)
            run.opt.backward(loss * weight / in_group)
        for k, v in loss_parts.items():
            group[k] = group.get(k, 0.0) + v * weight / in_group
        if group_end:
            step_parts, group = distributed.global_parts(group, run.dist), {}
            if bar is not None:
                bar.update(index + 1 - bar.n)
                bar.set_postfix(loss=f"{step_parts['loss']:.4f}")
            _optimizer_step(run, state, epoch, step_parts, on_step)
            if config.max_steps and state["global_step"] >= config.max_steps:
                break
    if bar is not None:
        bar.close()
    return state.pop("epoch_sums")


def _seed_epoch(run: _Run, epoch: int, skip: int) -> None:
    """The RNG of an epoch's dropout draws: seeded by (seed, epoch) only (and the rank), or, in
    the epoch a mid-epoch checkpoint resumes, the checkpoint's state."""
    rng, run.rng = run.rng, None
    if rng is not None and skip:
        torch.set_rng_state(rng["cpu"])
        if rng.get("cuda") is not None and gpu_count():
            torch.cuda.set_rng_state_all(rng["cuda"])
    else:
        torch.manual_seed(distributed.epoch_seed(run.config.seed, epoch, run.dist))


def _optimizer_step(run: _Run, state: Dict[str, Any], epoch: int, step_parts: Dict[str, float],
                    on_step: Optional[Callable]) -> None:
    """The step at the end of an accumulation group (`step_parts`: its loss parts over the
    global batch): counted, summed, logged every `log_every`, reported to `on_step`, and
    checkpointed every `save_every_steps` within an epoch (its end checkpoints anyway)."""
    config = run.config
    run.opt.step()
    state["global_step"] += 1
    state["step_in_epoch"] += 1
    sums = state["epoch_sums"]
    for k, v in step_parts.items():
        sums[k] = sums.get(k, 0.0) + v
    if state["global_step"] % config.log_every == 0:
        run.runlog.scalars(state["global_step"], dict(step_parts, epoch=epoch, lr=run.opt.lr))
    if on_step is not None:
        on_step(state["global_step"], dict(step_parts))
    if config.save_every_steps and state["global_step"] % config.save_every_steps == 0 \
            and state["step_in_epoch"] < run.steps_per_epoch:
        _checkpoint(run, state)


def _evaluate(run: _Run, state: Dict[str, Any], epoch: int, sums: Dict[str, float]
              ) -> Dict[str, Any]:
    """The epoch's history entry (mean loss parts per optimizer step; every dev metric,
    evaluated on rank 0 and given to every rank); a better primary metric saves the best model
    and resets the early-stopping count. Without a dev set the last epoch's model is kept."""
    entry: Dict[str, Any] = {"epoch": epoch, "global_step": state["global_step"],
                             "train": {k: v / max(1, state["step_in_epoch"])
                                       for k, v in sorted(sums.items())}}
    if not run.dev:
        _save_best(run)
        state["best_epoch"] = epoch
        return entry
    dev, teacher = distributed.on_main(run.dist, run.dev_metrics)
    entry["dev"] = dev
    metric = run.metric_name
    if teacher is not None:  # (a sparse LM teacher has no perplexity: None)
        state["teacher_metric"], state["teacher_dev"] = teacher.get(metric), teacher
    if state["best"] is None or run.better(dev[metric], state["best"]):
        state.update(best=dev[metric], best_epoch=epoch, bad_epochs=0, best_dev=dev)
        _save_best(run)
    else:
        state["bad_epochs"] += 1
    return entry


def _end_epoch(run: _Run, state: Dict[str, Any], entry: Dict[str, Any]) -> bool:
    """The entry logged and kept, the state moved to the next epoch and checkpointed; returns
    whether to stop early (`early_stopping_patience` epochs without improvement)."""
    state["history"].append(entry)
    run.runlog.event(dict(entry, event="epoch"))
    log.info("epoch %d: %s", entry["epoch"] + 1, entry)
    state["epoch"], state["step_in_epoch"] = entry["epoch"] + 1, 0
    patience = run.config.early_stopping_patience
    stop = patience is not None and state["bad_epochs"] >= patience
    if stop:
        state["epoch"] = run.config.epochs  # a resumed run must not train on
        log.info("early stopping: no improvement in %d epochs", state["bad_epochs"])
    _checkpoint(run, state)
    return stop


def _checkpoint(run: _Run, state: Dict[str, Any]) -> None:
    """run_dir/checkpoint.pt (rank 0), with every rank's RNG state when there are several (a
    collective: every rank calls it)."""
    rank_rng = distributed.gather_rng(run.dist)
    if run.dist.is_main:
        saved = dict(state, world_size=run.dist.world_size)
        if rank_rng is not None:
            saved["rank_rng"] = rank_rng
        save_checkpoint(run.ckpt_path, state=saved, model=run.model, objective=run.objective,
                        **run.opt.checkpointed())


def _save_best(run: _Run) -> None:
    if run.dist.is_main:
        save_model(run.model, run.tokenizer, os.path.join(run.config.run_dir, "best_model"),
                   None if run.lm is not None else run.config.task_def)


def _finish(run: _Run, state: Dict[str, Any], wall_time_s: float) -> TrainResult:
    """The result, written to run_dir/result.json (rank 0); the process group left."""
    run.runlog.close()
    best = state["best"] if state["best"] is not None else float("nan")
    result = TrainResult(best_metric=best, metric_name=run.metric_name,
                         best_epoch=state["best_epoch"], history=state["history"],
                         run_dir=run.config.run_dir, wall_time_s=wall_time_s,
                         teacher_metric=state["teacher_metric"], best_dev=state.get("best_dev"),
                         teacher_dev=state.get("teacher_dev"))
    if run.dist.is_main:
        with open(os.path.join(run.config.run_dir, "result.json"), "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2, allow_nan=False)
    distributed.teardown(run.dist)
    return result


def _progress(config: TrainConfig, total: int, initial: int, desc: str):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)
