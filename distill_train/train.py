"""The training loop: one function, top to bottom, for distillation and plain fine-tuning.

    train(config) -> TrainResult

AdamW (no weight decay on biases and LayerNorm), linear warm-up then linear decay, gradient
accumulation, clipping (student and objective parameters apart), AMP on CUDA, evaluation on the
dev set each epoch with the task's metric, the best model saved as a HF directory
(run_dir/best_model), early stopping, and a checkpoint (run_dir/checkpoint.pt) after every epoch
(and every `save_every_steps`) from which a killed run resumes to the same final metrics: each
epoch's data order and dropout draws depend on (seed, epoch) only, and mid-epoch checkpoints
carry the RNG state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch

from augment.seeding import derive_seed

from . import distributed
from .assemble import assemble, resolve_run_task
from .config import TrainConfig
from .forward import evaluate, to_device
from .runlog import RunLog, json_safe, load_checkpoint, save_checkpoint

__all__ = ["TrainResult", "train", "param_groups", "clip_apart", "linear_schedule"]

log = logging.getLogger(__name__)

# Config keys that may change between a killed run and its resumption.
_RESUME_FREE = {"resume", "progress", "tensorboard", "log_every", "device", "eval_batch_size",
                "loader_workers"}


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


def param_groups(modules: Sequence[torch.nn.Module], weight_decay: float) -> List[Dict]:
    """AdamW groups: weight decay on weight matrices, none on biases and LayerNorm weights."""
    decay, no_decay = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad:
                continue
            lname = name.lower()
            if p.ndim < 2 or "bias" in lname or "layernorm" in lname or "layer_norm" in lname:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def clip_apart(groups: Sequence[Sequence[torch.nn.Parameter]], max_norm: float) -> None:
    """Clip each group's gradient norm to `max_norm` on its own.

    The trainer passes (student parameters, objective parameters): under one joint norm a fresh
    MI critic's gradients (measured ~20 against the prediction loss's ~0.5 on the student) shrank
    the student's step to almost nothing and the student did not learn the task.
    """
    for params in groups:
        params = [p for p in params if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, max_norm)


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """LR multiplier: 0 -> 1 over `warmup` steps, then 1 -> 0 linearly at `total`."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _autocast_factory(amp: str, device: torch.device):
    """(autocast context factory or None, use a GradScaler)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), (dtype == torch.float16
                                                                and device.type == "cuda")


def _check_resumable(run_dir: str, config: TrainConfig) -> None:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        old = json.load(fh)
    new = config.to_dict()
    diff = {k: (old.get(k), new[k]) for k in new if k not in _RESUME_FREE and old.get(k) != new[k]}
    if diff:
        raise ValueError(f"run_dir {run_dir!r} holds a checkpoint of a different config "
                         f"(key: (saved, now): {diff}); use a new run_dir or resume=false")


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
    # issue 19: under torchrun, this process is one rank of a data-parallel run (distributed.py)
    dist, rank_device = distributed.setup(config.device)
    if provider is None or config._task is None:  # an injected provider brings its own task
        config = resolve_run_task(config)
    run_dir = config.run_dir
    os.makedirs(run_dir, exist_ok=True)
    ckpt_path = os.path.join(run_dir, "checkpoint.pt")
    resuming = config.resume and os.path.exists(ckpt_path)
    if dist.is_main:
        if resuming:
            _check_resumable(run_dir, config)
        with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(config.to_dict(), fh, indent=2, sort_keys=True)
    log.info("training config: %s", json.dumps(config.to_dict(), sort_keys=True))

    # ---- model, objective, data (weights initialised from the seed alone)
    device = rank_device or _device(config.device)
    torch.manual_seed(derive_seed(config.seed, "init"))
    parts = assemble(config, provider=provider, train_rows=train_rows, dev_rows=dev_rows)
    model, objective = parts.model.to(device), parts.objective.to(device)
    need_attn = objective.needs_attentions
    need_hidden = objective.kind != "none" and not need_attn
    # student + objective in one module (DDP-wrapped with several ranks); this rank's batches
    step = distributed.wrap(model, objective, dist, device, hidden=need_hidden,
                            attentions=need_attn)
    train_batches = distributed.RankBatches(parts.train, dist, device,
                                            workers=config.loader_workers)

    # ---- optimizer and schedule
    # The fused kernel (CPU and CUDA) is ~4x faster than the per-tensor loop on CPU.
    optimizer = torch.optim.AdamW(param_groups([model, objective], config.weight_decay),
                                  lr=config.lr, fused=device.type in ("cpu", "cuda"))
    student_params = [p for p in model.parameters() if p.requires_grad]
    objective_params = [p for p in objective.parameters() if p.requires_grad]
    n_batches = len(train_batches)  # global batches (batch_size x ranks rows each)
    steps_per_epoch = math.ceil(n_batches / config.grad_accum)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(int(config.warmup_ratio * total_steps), total_steps))
    autocast, use_scaler = _autocast_factory(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

    state: Dict[str, Any] = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": None,
                             "best_epoch": None, "bad_epochs": 0, "history": [],
                             "teacher_metric": None, "teacher_dev": None, "best_dev": None}
    rng_state = None
    if resuming:
        state, rng_state = load_checkpoint(ckpt_path, model=model, objective=objective,
                                           optimizer=optimizer, scheduler=scheduler,
                                           scaler=scaler)
        if state.get("world_size", 1) != dist.world_size:
            raise ValueError(f"{ckpt_path} was written by a run of {state.get('world_size', 1)} "
                             f"process(es), this one has {dist.world_size}: resume with as many "
                             "(the global batch and the data order depend on it)")
        if dist.enabled:  # each rank continues from its own RNG state
            rng_state = (state.pop("rank_rng", None) or [rng_state] * dist.world_size)[dist.rank]
        log.info("resumed from %s at epoch %d, step %d", ckpt_path, state["epoch"],
                 state["global_step"])
    runlog = (RunLog(run_dir, tensorboard=config.tensorboard, fresh=not resuming)
              if dist.is_main else distributed.NullLog())
    runlog.event({"event": "resume" if resuming else "start", "global_step": state["global_step"]})
    metric = config.metric_name

    def checkpoint() -> None:
        rank_rng = distributed.gather_rng(dist)  # every rank's, with several (a collective)
        if dist.is_main:
            saved = dict(state, world_size=dist.world_size)
            if rank_rng is not None:
                saved["rank_rng"] = rank_rng
            save_checkpoint(ckpt_path, state=saved, model=model, objective=objective,
                            optimizer=optimizer, scheduler=scheduler, scaler=scaler)

    # ---- the loop
    for epoch in range(state["epoch"], config.epochs):
        skip = state["step_in_epoch"] * config.grad_accum
        if rng_state is not None and skip:
            torch.set_rng_state(rng_state["cpu"])
            if rng_state.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng_state["cuda"])
        else:  # dropout draws of an epoch depend on (seed, epoch) only (and the rank)
            torch.manual_seed(distributed.epoch_seed(config.seed, epoch, dist))
        rng_state = None
        model.train()
        objective.train()
        sums: Dict[str, float] = {}
        step_parts: Dict[str, float] = {}
        bar = (_progress(config, n_batches, skip, f"epoch {epoch + 1}/{config.epochs}")
               if dist.is_main else None)
        for index, (_, batch, weight) in enumerate(train_batches.epoch(epoch, skip),
                                                   start=skip):
            group_start = (index // config.grad_accum) * config.grad_accum
            in_group = min(config.grad_accum, n_batches - group_start)
            batch = to_device(batch, device)
            step_end = index + 1 >= group_start + in_group
            with distributed.sync_gradients(step, step_end):
                with (autocast() if autocast else contextlib.nullcontext()):
                    loss, loss_parts = step(batch)
                # weight: this rank's share of the global batch (1.0 with one process)
                scaler.scale(loss * weight / in_group).backward()
            for k, v in loss_parts.items():
                step_parts[k] = step_parts.get(k, 0.0) + v * weight / in_group
            if not step_end:
                continue
            step_parts = distributed.global_parts(step_parts, dist)
            # ---- optimizer step at the end of each accumulation group
            if config.max_grad_norm:
                scaler.unscale_(optimizer)
                clip_apart((student_params, objective_params), config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            for k, v in step_parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if state["global_step"] % config.log_every == 0:
                runlog.scalars(state["global_step"], dict(step_parts, epoch=epoch,
                                                          lr=scheduler.get_last_lr()[0]))
            if bar is not None:
                bar.update(index + 1 - bar.n)
                bar.set_postfix(loss=f"{step_parts['loss']:.4f}")
            if on_step is not None:
                on_step(state["global_step"], dict(step_parts))
            step_parts = {}
            if config.save_every_steps and state["global_step"] % config.save_every_steps == 0 \
                    and state["step_in_epoch"] < steps_per_epoch:
                state["epoch_sums"] = sums
                checkpoint()
        if bar is not None:
            bar.close()
        sums = _merge_sums(state.pop("epoch_sums", None), sums)

        # ---- evaluate, keep the best, stop early
        entry: Dict[str, Any] = {"epoch": epoch, "global_step": state["global_step"],
                                 "train": {k: v / max(1, steps_per_epoch) for k, v in
                                           sorted(sums.items())}}
        if parts.dev:  # on rank 0, its result given to every rank
            dev, teacher = distributed.on_main(dist, lambda: evaluate_sets(
                model, parts.dev, config.task_def.metrics, device, autocast=autocast))
            entry["dev"] = dev
            if teacher is not None:
                state["teacher_metric"], state["teacher_dev"] = teacher[metric], teacher
            improved = state["best"] is None or dev[metric] > state["best"]
            if improved:
                state["best"], state["best_epoch"], state["bad_epochs"] = dev[metric], epoch, 0
                state["best_dev"] = dev
                if dist.is_main:
                    _save_model(model, parts.tokenizer, os.path.join(run_dir, "best_model"),
                                config.task_def)
            else:
                state["bad_epochs"] += 1
        else:
            if dist.is_main:
                _save_model(model, parts.tokenizer, os.path.join(run_dir, "best_model"),
                            config.task_def)
            state["best_epoch"] = epoch
        state["history"].append(entry)
        runlog.event(dict(entry, event="epoch"))
        log.info("epoch %d: %s", epoch + 1, entry)
        state["epoch"], state["step_in_epoch"] = epoch + 1, 0
        stop = (config.early_stopping_patience is not None
                and state["bad_epochs"] >= config.early_stopping_patience)
        if stop:
            state["epoch"] = config.epochs  # a resumed run must not train on
            log.info("early stopping: no improvement in %d epochs", state["bad_epochs"])
        checkpoint()
        if on_epoch is not None:
            on_epoch(epoch, dict(entry))
        if stop:
            break

    runlog.close()
    best = state["best"] if state["best"] is not None else float("nan")
    result = TrainResult(best_metric=best, metric_name=metric, best_epoch=state["best_epoch"],
                         history=state["history"], run_dir=run_dir,
                         wall_time_s=time.time() - start, teacher_metric=state["teacher_metric"],
                         best_dev=state.get("best_dev"), teacher_dev=state.get("teacher_dev"))
    if dist.is_main:
        with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=2, allow_nan=False)
    distributed.teardown(dist)
    return result


def _merge_sums(saved: Optional[Dict[str, float]], sums: Dict[str, float]) -> Dict[str, float]:
    """Loss sums of an epoch resumed mid-way: the part before the checkpoint plus the rest."""
    if saved is None or saved is sums:
        return sums
    return {k: saved.get(k, 0.0) + sums.get(k, 0.0) for k in set(saved) | set(sums)}


def _progress(config: TrainConfig, total: int, initial: int, desc: str):
    if not config.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)


def evaluate_sets(model, dev_sets, metrics: Sequence[str], device, *, autocast=None):
    """(student, teacher or None) metrics over every dev set: the first set's under their own
    names (``accuracy``), the others' prefixed with the set's name (``dev_mismatched/accuracy``)."""
    student: Dict[str, float] = {}
    teacher: Optional[Dict[str, float]] = None
    for i, (name, batches) in enumerate(dev_sets):
        prefix = "" if i == 0 else f"{name}/"
        got, t = evaluate(model, batches, metrics, device, autocast=autocast)
        student.update({prefix + k: v for k, v in got.items()})
        if t is not None:
            teacher = teacher or {}
            teacher.update({prefix + k: v for k, v in t.items()})
    return student, teacher


def _save_model(model, tokenizer, path: str, task) -> None:
    from taskdata.resolve import save_task

    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    save_task(task, path)
