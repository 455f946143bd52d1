"""TrainConfig: every choice of a training run in one frozen, validated object.

A run is either ``mode="distill"`` (student learns from a teacher cache; the teacher never runs)
or ``mode="finetune"`` (plain training on gold labels over raw text files; makes the teacher and
the no-KD baseline). YAML files and CLI flags are parsed once, at the entry point, into this
object (`from_yaml`, `from_dict`); unknown keys and bad values are rejected with a message that
names the key, the value that arrived and what is allowed. The named choices and numeric ranges
(and their defaults) are declared once, in choices.py, which the CLI and the search space read too.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from distiller.common.errors import UsageError
from distiller.taskdata.resolve import resolve_task
from distiller.taskdata.task import Task

from .choices import OPTIONS, default
from .config_types import check_types, load_yaml_file

__all__ = ["TrainConfig"]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults follow the study's recipe (docs/method.md, "Training recipe");
    those of the named choices and numeric ranges come from their table (choices.py)."""

    task: Any = None                         # built-in name, YAML task file, Task dict; distill:
    #                                          None (or a name) = the task the cache recorded
    mode: str = default("mode")              # "distill" (from a cache) or "finetune" (gold labels)
    run_dir: str = "runs/default"            # outputs: config, metrics.jsonl, checkpoints, model
    # --- data -----------------------------------------------------------------------------
    cache: Optional[str] = None              # teacher cache directory (distill)
    train_corpus: Optional[str] = None       # corpus name in the cache, e.g. "sst2-train"
    dev_corpus: Any = None                   # dev corpus name(s) in the cache, e.g. "sst2-dev";
    #                                          several (MNLI): all reported, the first selects
    train_file: Optional[str] = None         # finetune: any input (file, glob, hf:NAME, ...)
    dev_file: Any = None                     # finetune: dev input(s), like dev_corpus
    max_length: int = 128                    # tokenisation length for raw text (finetune;
    #                                          question answering: tokens per context window)
    doc_stride: int = 128                    # QA finetune: context tokens between window starts
    max_query_length: int = 64               # QA finetune: question tokens kept
    limit_train: Optional[int] = None        # use only the first N training examples
    # --- student --------------------------------------------------------------------------
    student: Optional[str] = None            # HF name/path: the model (pretrained), the teacher
    #                                          to cut down (truncate) or the base config (config)
    student_init: str = default("student_init")  # "pretrained" | "truncate" | "config"
    student_layers: Optional[Tuple[int, ...]] = None  # truncate: teacher layers kept (1-based)
    student_num_layers: Optional[int] = None  # truncate (skip-chosen layers) / config
    student_hidden: Optional[int] = None     # config: hidden size
    student_heads: Optional[int] = None      # config: attention heads
    student_intermediate: Optional[int] = None  # config: feed-forward size (default 4*hidden)
    reinit_head: bool = False                # start a new head even if the checkpoint has one
    #                                          that does not fit the task (else: an error)
    # --- objective (docs/method.md, "The objective") ---------------------------------
    pred_loss: str = default("pred_loss")    # "kl" | "soft_ce" | "mse" | "none"; regression: mse
    temperature: float = default("temperature")  # tau of the soft targets
    scale_by_t2: bool = True                 # multiply the soft loss by tau^2 (Hinton)
    inter_loss: str = default("inter_loss")  # intermediate objective over mapped layer pairs
    mapping: str = default("mapping")        # "skip" | "last" | "emd" | "explicit"
    mapping_pairs: Optional[Tuple[Tuple[int, int], ...]] = None  # explicit (student, teacher)
    mi_alpha: float = default("mi_alpha")    # MI-alpha interpolation, in [0, 1]
    critic: str = default("critic")          # MI-alpha critic: "transformer" | "mlp" (on [CLS])
    critic_dim: int = 16                     # size of the L2-normalised critic head
    critic_layers: int = 2
    critic_heads: int = 8
    critic_ff: int = 512
    w_kd: float = default("w_kd")            # total = w_kd*L_pred + w_inter*sum L_inter
    w_inter: float = default("w_inter")      # ... + w_gold*L_gold
    w_gold: float = default("w_gold")
    # --- question answering (span tasks): decoding answers on the dev set --------------------
    n_best: int = 20                         # start and end candidates per window
    max_answer_length: int = 30              # tokens per answer
    null_threshold: Optional[float] = None   # SQuAD 2.0: answer "" when null odds exceed it;
    #                                          None = the best threshold on the dev set
    # --- optimisation ---------------------------------------------------------------------
    epochs: int = 3
    max_steps: Optional[int] = None          # stop after N optimizer steps (a budget that compares
    #                                          corpora of any size); epochs then follow from it,
    #                                          evaluated at each epoch end and at the last step
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = default("lr")
    weight_decay: float = default("weight_decay")  # none on bias and LayerNorm weights
    warmup_ratio: float = default("warmup_ratio")  # linear warm-up share of all steps, then decay
    grad_accum: int = 1                      # micro-batches per optimizer step
    max_grad_norm: Optional[float] = default("max_grad_norm")  # clip; None = no clipping
    amp: str = default("amp")                # auto (AMP on CUDA, off on a CPU) | off | fp16 | bf16
    seed: int = 42
    device: str = "auto"                     # "auto" | "cpu" | "cuda" | "cuda:1" ...; several
    #                                          processes (torchrun): auto/cuda = cuda:LOCAL_RANK
    loader_workers: Optional[int] = None     # DataLoader processes per rank (pinned memory);
    #                                          None: 2 on a GPU, 0 on a CPU (a prefetch thread)
    early_stopping_patience: Optional[int] = None  # epochs without improvement before stopping
    save_every_steps: Optional[int] = None   # also checkpoint mid-epoch every N optimizer steps
    resume: bool = True                      # continue from run_dir's checkpoint when present
    log_every: int = 10                      # optimizer steps between JSONL loss lines
    tensorboard: bool = False                # also write TensorBoard scalars (if installed)
    progress: bool = True                    # tqdm progress bar

    def __post_init__(self) -> None:
        def bad(key: str, value: Any, allowed: str) -> ValueError:
            return UsageError(f"config key {key!r}: got {value!r}; {allowed}")

        check_types(self, bad)  # types first (config_types.py); pathlib paths become strings
        for key in ("dev_corpus", "dev_file"):
            object.__setattr__(self, key, _names(key, getattr(self, key)))
        self._resolve_task()
        for key, option in OPTIONS.items():  # choices and ranges (choices.py)
            problem = option.problem(getattr(self, key))
            if problem:
                raise bad(key, getattr(self, key), problem)
        if self.student_layers is not None:
            object.__setattr__(self, "student_layers", tuple(int(x) for x in self.student_layers))
        if self.mapping_pairs is not None:
            pairs = tuple(tuple(int(v) for v in p) for p in self.mapping_pairs)
            if not pairs or any(len(p) != 2 or min(p) < 0 for p in pairs):
                raise bad("mapping_pairs", self.mapping_pairs,
                          "expected a non-empty list of [student_layer, teacher_layer] pairs >= 0")
            object.__setattr__(self, "mapping_pairs", pairs)
        if self.mapping == "explicit" and self.mapping_pairs is None:
            raise bad("mapping_pairs", None, "mapping 'explicit' needs mapping_pairs")
        if self.mode == "distill":
            for key in ("cache", "train_corpus"):
                if not getattr(self, key):
                    raise bad(key, getattr(self, key), "mode 'distill' needs it (a cache "
                              "directory and the corpus name to train on)")
        else:
            if not self.train_file:
                raise bad("train_file", self.train_file, "mode 'finetune' needs a training file")
        if self.student is None:
            raise bad("student", None, "give a HF model name or path (the student, the teacher "
                      "to truncate, or the base config)")
        if self.student_init == "config" and not (self.student_num_layers or self.student_hidden
                                                  or self.student_heads):
            raise bad("student_init", "config", "needs student_num_layers/student_hidden/"
                      "student_heads to change the base config")
        if self.is_regression and self.pred_loss in ("kl", "soft_ce"):
            # Soft targets over one output make no sense: regression always uses logit MSE.
            object.__setattr__(self, "pred_loss", "mse")
        for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "max_length",
                    "log_every", "critic_dim", "critic_layers", "critic_heads", "critic_ff",
                    "doc_stride", "max_query_length", "n_best", "max_answer_length"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(key, value, "expected a positive integer")
        for key in ("early_stopping_patience", "save_every_steps", "limit_train", "max_steps",
                    "student_num_layers", "student_hidden", "student_heads",
                    "student_intermediate"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise bad(key, value, "expected a positive integer or null")
        if self.loader_workers is not None and (not isinstance(self.loader_workers, int)
                                                or isinstance(self.loader_workers, bool)
                                                or self.loader_workers < 0):
            raise bad("loader_workers", self.loader_workers, "expected an integer >= 0 or null")
        if self.mode == "distill" and self.pred_loss == "none" and self.inter_loss == "none" \
                and self.w_gold == 0:
            raise UsageError("config: pred_loss 'none', inter_loss 'none' and w_gold 0 leave "
                             "nothing to learn from; set one of them")

    def _resolve_task(self) -> None:
        """Resolve `task` into a taskdata.Task (kept apart from the fields). In distill mode a
        task left out, or named but not built in, is read from the cache's corpus by
        `distiller.distill_train.assemble.resolve_run_task` before training."""
        value = self.task
        if isinstance(value, Task):
            object.__setattr__(self, "task", value.to_dict())
        try:
            resolved = resolve_task(self.task)
        except ValueError:
            if self.mode != "distill" or not isinstance(value, str) or \
                    value.endswith((".yaml", ".yml")):
                raise
            resolved = None   # a name the cache's corpus must confirm
        if resolved is None and self.mode == "finetune":
            raise UsageError("config key 'task': fine-tuning needs a task (a built-in name, a "
                             "task file or the task flags --text-a/--label/--labels)")
        if resolved is not None and not resolved.resolved and self.mode == "finetune":
            raise UsageError(f"config key 'task': the labels of task {resolved.name} are not "
                             "known: give them (--labels) or let them be inferred from the "
                             "training file")
        object.__setattr__(self, "_task", resolved)

    # --- derived ----------------------------------------------------------------------------
    @property
    def task_def(self):
        """The resolved taskdata.Task; an error if it is still to be read from the cache."""
        if self._task is None:
            raise UsageError("the task is not resolved yet: distiller.distill_train.assemble."
                             "resolve_run_task reads it from the cache's training corpus")
        return self._task

    @property
    def is_regression(self) -> bool:
        return self._task is not None and self._task.is_regression

    @property
    def num_labels(self) -> int:
        return self.task_def.num_labels

    @property
    def problem_type(self) -> str:
        return self.task_def.problem_type

    @property
    def metric_name(self) -> str:
        return self.task_def.primary_metric

    @property
    def dev_corpora(self) -> Tuple[str, ...]:
        return _as_tuple(self.dev_corpus)

    @property
    def dev_files(self) -> Tuple[str, ...]:
        return _as_tuple(self.dev_file)

    # --- (de)serialisation ------------------------------------------------------------------
    @classmethod
    def keys(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> "TrainConfig":
        """Build from a mapping (e.g. parsed YAML); `overrides` (not None) win over `data`."""
        merged = dict(data or {})
        merged.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(merged) - set(cls.keys()))
        if unknown:
            import difflib

            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, cls.keys(), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise UsageError(f"unknown config keys: {', '.join(hints)}; allowed keys are "
                             f"{list(cls.keys())}")
        return cls(**merged)

    @classmethod
    def from_yaml(cls, path: str, **overrides: Any) -> "TrainConfig":
        data = load_yaml_file(path) or {}
        if not isinstance(data, dict):
            raise UsageError(f"config file {path!r} must hold a mapping of keys, got "
                             f"{type(data).__name__}")
        return cls.from_dict(data, **overrides)

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("student_layers", "mapping_pairs", "dev_corpus", "dev_file", "task"):
            if out[key] is not None:
                out[key] = json.loads(json.dumps(out[key]))  # tuples -> lists
        return out

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _names(key: str, value: Any) -> Any:
    """One name (kept as a str) or several (a tuple of two or more): the types are checked
    already (config_types)."""
    if isinstance(value, tuple):
        return value[0] if len(value) == 1 else value
    return value


def _as_tuple(value: Any) -> Tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
