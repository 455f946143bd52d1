"""Sweeps over the Distiller search space on one teacher cache (Optuna TPE + per-epoch pruning).

`run_sweep(options)` creates or resumes an Optuna study in SQLite (``load_if_exists``), runs
``options.trials`` more trials (in ``options.jobs`` processes sharing the study when more than
one), and appends one ledger row per finished trial (complete, pruned or failed). Each trial turns
a sampled configuration into the trainer's config (`SearchSpace.to_train_config`) and calls the
trainer with a per-epoch callback that reports the dev metric to Optuna and raises
``optuna.TrialPruned`` when the median pruner says so.

The trainer is named by ``"module:function"`` (default ``distiller.distill_train.train:train``) so
worker processes can import it; a trainer from ``distiller.distill_train.train`` gets a
`TrainConfig`, any other gets the config dict. A configuration identical to an already completed
trial is not trained again: the trial takes the earlier value (TPE repeats itself on small
categorical spaces).
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging
import os
import time
import warnings
from typing import Any, Callable, Dict, Mapping, Optional

from distiller.autodistiller.ledger import Ledger
from distiller.autodistiller.ledger_rows import config_columns, ledger_row
from distiller.autodistiller.space import SearchSpace
from distiller.builders.cache.store import TeacherCache
from distiller.builders.teacher.devices import usable_cpus
from distiller.common.errors import UsageError
from distiller.distill_train.assemble import resolve_run_task
from distiller.distill_train.config import TrainConfig
from distiller.taskdata.builtin import builtin_task

__all__ = ["SweepOptions", "TrialRunner", "run_sweep", "teacher_info", "study_storage",
           "config_columns", "ledger_row"]

log = logging.getLogger(__name__)

# Names under which a trainer may accept the per-epoch callback, most specific first.
# The callback gets (epoch, metrics): metrics is the dev metric, a dict holding it, or the
# trainer's history entry ({"epoch", "dev": {metric: value}, ...}).
_CALLBACK_PARAMS = ("on_epoch", "epoch_callback", "on_epoch_end", "callback")


@dataclasses.dataclass(frozen=True)
class SweepOptions:
    """Everything one sweep needs; built once by the CLI (or a caller) and passed down."""

    space: SearchSpace
    task: str
    cache: str
    out_dir: str                         # trial run dirs, default study.db and ledger live here
    trials: int                          # trials to add in this call (a resumed study grows)
    features: Mapping[str, Any]          # DatasetFeatures.to_row() of the task
    study_db: Optional[str] = None       # SQLite file; default {out_dir}/study.db
    study_name: Optional[str] = None     # default "{space.name}-{task}"
    ledger: Optional[str] = None         # ledger directory; default {out_dir}/ledger
    jobs: int = 1                        # worker processes (capped by CPU count and trials)
    seed: int = 0
    teacher: str = ""                    # teacher model name (ledger column); default from cache
    teacher_fingerprint: str = ""        # default: the cache manifest's fingerprint
    teacher_metric: Optional[float] = None  # dev metric of the teacher; default from train()
    trainer: str = "distiller.distill_train.train:train"
    startup_trials: int = 4              # random trials before TPE models the space
    prune_warmup_epochs: int = 1         # epochs reported before a trial may be pruned

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1, got {self.jobs}")
        if ":" not in self.trainer:
            raise UsageError(f"trainer must be 'module:function', got {self.trainer!r}")
        if "student" not in self.space.names and "student" not in self.space.fixed:
            raise UsageError("the search space names no student: add 'student' under params "
                             "(choices) or under fixed")

    @property
    def db_path(self) -> str:
        return self.study_db or os.path.join(self.out_dir, "study.db")

    @property
    def ledger_path(self) -> str:
        return self.ledger or os.path.join(self.out_dir, "ledger")

    @property
    def name(self) -> str:
        return self.study_name or f"{self.space.name}-{self.task}"


def study_storage(db_path: str):
    """RDBStorage over SQLite with a lock timeout and heartbeats (stale trials are retried)."""
    import optuna

    os.makedirs(os.path.dirname(os.path.abspath(db_path)), exist_ok=True)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            f"sqlite:///{os.path.abspath(db_path)}",
            engine_kwargs={"connect_args": {"timeout": 60}},
            heartbeat_interval=60, grace_period=180,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1))


def teacher_info(cache: str) -> Dict[str, str]:
    """{"fingerprint", "model"} of the teacher that filled `cache`, read from its manifest."""
    spec = TeacherCache.open(cache).spec
    return {"fingerprint": str(getattr(spec, "fingerprint", "")),
            "model": str(getattr(spec, "model", ""))}


def _load_trainer(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _metric_value(reported: Any, metric_name: Optional[str]) -> float:
    if isinstance(reported, Mapping):
        if isinstance(reported.get("dev"), Mapping):
            reported = reported["dev"]
        for key in (metric_name, "metric", "dev_metric"):
            if key and key in reported:
                return float(reported[key])
        if len(reported) == 1:
            return float(next(iter(reported.values())))
        raise UsageError(f"epoch callback got metrics {dict(reported)} without the dev metric "
                         f"{metric_name!r}")
    return float(reported)


def _task_metric(task: str) -> Optional[str]:
    """A built-in task's primary dev metric (None for another trainer's task names)."""
    found = builtin_task(task)
    return found.primary_metric if found is not None else None


class _Objective:
    """One Optuna trial: sample, skip exact repeats, train with per-epoch reports."""

    def __init__(self, options: SweepOptions) -> None:
        self.runner = TrialRunner(options)

    def __call__(self, trial) -> float:
        import optuna

        values = self.runner.options.space.suggest(trial)
        for earlier in trial.study.get_trials(deepcopy=False,
                                              states=(optuna.trial.TrialState.COMPLETE,)):
            if earlier.params == trial.params and earlier.value is not None:
                trial.set_user_attr("duplicate_of", earlier.number)
                return earlier.value

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if epoch + 1 >= self.runner.options.prune_warmup_epochs and trial.should_prune():
                raise optuna.TrialPruned(f"dev metric {value:.4f} after epoch {epoch}")

        row = self.runner.run(values, trial.number, report=report,
                              pruned=(optuna.TrialPruned,))
        trial.set_user_attr("ratio", row["ratio"])
        return row["dev_metric"]


class TrialRunner:
    """Train one configuration through the trainer and append its ledger row (any outcome)."""

    def __init__(self, options: SweepOptions) -> None:
        self.options = options
        self.trainer = _load_trainer(options.trainer)
        params = inspect.signature(self.trainer).parameters
        self.callback_param = next((p for p in _CALLBACK_PARAMS if p in params), None)
        if self.callback_param is None:
            log.warning("trainer %s takes no per-epoch callback (%s): trials are pruned only "
                        "after they finish", options.trainer, "/".join(_CALLBACK_PARAMS))
        self.wants_config = self.trainer.__module__ == "distiller.distill_train.train"

    def run(self, values: Mapping[str, Any], number: int, *,
            report: Optional[Callable[[int, float], None]] = None,
            pruned: tuple = ()) -> Dict[str, Any]:
        """Train `values` as run `number`; `report(epoch, metric)` is called after each epoch
        and may raise one of `pruned` to stop the run. Returns the ledger row written."""
        opts = self.options
        run_dir = os.path.join(opts.out_dir, "trials", f"{number:04d}")
        config = opts.space.to_train_config(values, task=opts.task, cache=opts.cache,
                                            run_dir=run_dir)
        state = {"best": None, "epochs": 0, "best_epoch": -1}
        metric_name = _task_metric(opts.task)
        train_config: Any = config
        if self.wants_config:
            train_config = resolve_run_task(TrainConfig.from_dict(config))
            metric_name = train_config.metric_name
            config = train_config.to_dict()

        def epoch_callback(epoch: int, metrics: Any = None, **_: Any) -> None:
            value = _metric_value(metrics, metric_name)
            state["epochs"] = int(epoch) + 1
            if state["best"] is None or value > state["best"]:
                state["best"], state["best_epoch"] = value, int(epoch)
            if report is not None:
                report(int(epoch), value)

        kwargs = {self.callback_param: epoch_callback} if self.callback_param else {}
        start = time.perf_counter()
        row = dict(values=values, config=config, number=number)
        try:
            result = self.trainer(train_config, **kwargs)
        except pruned:
            self._record(**row, status="pruned", metric=state["best"], metric_name=metric_name,
                         best_epoch=state["best_epoch"], epochs=state["epochs"],
                         wall=time.perf_counter() - start, teacher_metric=None)
            raise
        except Exception:
            self._record(**row, status="failed", metric=None, metric_name=metric_name,
                         best_epoch=-1, epochs=state["epochs"],
                         wall=time.perf_counter() - start, teacher_metric=None)
            raise
        history = list(getattr(result, "history", None) or [])
        if self.callback_param is None and report is not None:
            # after the fact, so the pruner sees this curve when judging later trials; a
            # finished run is kept whatever the pruner says about it now
            for epoch, entry in enumerate(history):
                try:
                    report(epoch, _metric_value(entry, result.metric_name))
                except pruned:
                    continue
        return self._record(
            **row, status="complete", metric=float(result.best_metric),
            metric_name=result.metric_name,
            best_epoch=int(getattr(result, "best_epoch", state["best_epoch"])),
            epochs=max(state["epochs"], len(history)),
            wall=float(getattr(result, "wall_time_s", None) or time.perf_counter() - start),
            teacher_metric=getattr(result, "teacher_metric", None))

    def _record(self, *, values, config, number, status, metric, metric_name, best_epoch,
                epochs, wall, teacher_metric) -> Dict[str, Any]:
        opts = self.options
        teacher_metric = opts.teacher_metric if opts.teacher_metric is not None else teacher_metric
        row = ledger_row(
            run_id=f"{opts.name}/{number:04d}", study=opts.name, trial=number, task=opts.task,
            student=opts.space.student_label(values), teacher=opts.teacher,
            teacher_fingerprint=opts.teacher_fingerprint, teacher_metric=teacher_metric,
            values=values, config=config, features=opts.features, metric_name=metric_name,
            metric=metric, best_epoch=best_epoch, epochs=epochs, wall=wall, status=status)
        Ledger(opts.ledger_path).append([row])
        return row


def _worker(options: SweepOptions, target: int, index: int, start: int) -> None:
    import optuna

    with warnings.catch_warnings():  # multivariate/group TPE: "experimental", long stable
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # seeded by (seed, trials so far, worker): a resumed study does not replay old draws
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=options.startup_trials, multivariate=True, group=True,
            seed=(options.seed * 1_000_003 + start * 101 + index) % (2 ** 31))
    study = optuna.load_study(study_name=options.name, storage=study_storage(options.db_path),
                              sampler=sampler, pruner=_pruner(options))
    stop = optuna.study.MaxTrialsCallback(target, states=None)
    study.optimize(_Objective(options), n_trials=target - start, callbacks=[stop],
                   catch=(Exception,), gc_after_trial=True)


def _pruner(options: SweepOptions):
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=2,
                                       n_warmup_steps=max(options.prune_warmup_epochs - 1, 0))


def run_sweep(options: SweepOptions) -> Dict[str, Any]:
    """Create or resume the study, run `options.trials` more trials, return a summary dict."""
    import optuna

    os.makedirs(options.out_dir, exist_ok=True)
    TrialRunner(options)  # fail fast on a trainer that cannot be imported
    study = optuna.create_study(study_name=options.name, storage=study_storage(options.db_path),
                                direction="maximize", load_if_exists=True)
    start = len(study.trials)
    target = start + options.trials
    jobs = min(options.jobs, usable_cpus(), options.trials)
    log.info("study %s: %d trials so far, running %d more in %d process(es)", options.name,
             start, options.trials, jobs)
    if jobs == 1:
        _worker(options, target, 0, start)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker, args=(options, target, i, start), daemon=False)
                 for i in range(jobs)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        failed = [p.exitcode for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"{len(failed)} sweep worker process(es) exited with codes "
                               f"{failed}; see their log above")
    study = optuna.load_study(study_name=options.name, storage=study_storage(options.db_path))
    trials = study.get_trials(deepcopy=False)
    states: Dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"study": options.name, "db": options.db_path, "ledger": options.ledger_path,
            "trials_before": start, "trials_total": len(trials), "states": states,
            "best_value": None if best is None else best.value,
            "best_params": None if best is None else best.params,
            "best_trial": None if best is None else best.number}
