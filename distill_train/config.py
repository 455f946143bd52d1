"""TrainConfig: every choice of a training run in one frozen, validated object.

A run is either ``mode="distill"`` (student learns from a teacher cache; the teacher never runs)
or ``mode="finetune"`` (plain training on gold labels over raw text files; makes the teacher and
the no-KD baseline). YAML files and CLI flags are parsed once, at the entry point, into this
object (`from_yaml`, `from_dict`); unknown keys and bad values are rejected with a message that
names the key, the value that arrived and what is allowed. Each field declares what it may hold
(distiller.common.config.setting) and the cross-field rules are declared below the class
(`RULES`); the named choices and numeric ranges (and their defaults) are declared once, in
choices.py, which the CLI and the search space read too.

Validation reads no file: a task given as a YAML task file is read by `read_task_file`, which
the command calls right after parsing and `assemble.resolve_run_task` before training.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any, Dict, Mapping, Optional, Tuple

from distiller.common.config import Allowed, Rule, Wording, check_fields, check_rules, \
    refuse_unknown, setting
from distiller.common.errors import UsageError
from distiller.taskdata.resolve import is_task_file, load_task_file, resolve_task
from distiller.taskdata.task import Task
from distiller.taskdata.yamlfile import load_yaml_file

from .choices import OPTIONS

__all__ = ["TrainConfig", "RULES"]

WORDING = Wording(field="config key {key!r}", whole="config")
# keys added after configs were first serialised, with the default that leaves them out of
# to_dict (and so out of config.json and the resume check)
ADDED_KEYS = {"batching": "random"}


def _table(key: str) -> Any:
    """A field of the choices table (choices.py): its default, choices or range; numbers are
    stored as floats (numeric strings too: PyYAML reads ``5e-5`` as text)."""
    option = OPTIONS[key]
    return setting(option.default, option.spec, kind="float" if option.numeric else "str")


def _task_value(value: Any) -> Any:
    """A task as the config keeps it: a name or task file (str) or a mapping of task keys."""
    if isinstance(value, Task):
        return value.to_dict()
    if not isinstance(value, (str, dict)):
        raise TypeError
    return value


def _is_pair(pair: Tuple[int, ...]) -> Optional[str]:
    return None if len(pair) == 2 else "expected a [student_layer, teacher_layer] pair"


POSITIVE = Allowed(kind="int", low=1)
POSITIVE_OR_NULL = Allowed(kind="int", low=1, optional=True)
PATH_OR_NULL = Allowed(kind="path", optional=True)
FLAG = Allowed(kind="bool")
PAIRS = Allowed(kind="list", optional=True, check=lambda v: None if v else "expected a non-"
                "empty list of [student_layer, teacher_layer] pairs",
                what="a list of [student_layer, teacher_layer] integer pairs",
                each=Allowed(kind="list", each=Allowed(kind="int", low=0), check=_is_pair,
                             what="a [student_layer, teacher_layer] pair of integers >= 0"))


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults follow the study's recipe (docs/method.md, "Training recipe");
    those of the named choices and numeric ranges come from their table (choices.py)."""

    # built-in name, YAML task file, Task dict; distill: None (or a name) = the task the cache
    # recorded
    task: Any = setting(None, kind="any", optional=True, convert=_task_value,
                        what="a task name, a task file or a mapping of task keys")
    mode: str = _table("mode")               # "distill" (from a cache) or "finetune" (gold labels)
    # outputs: config, metrics.jsonl, checkpoints, model
    run_dir: str = setting("runs/default", kind="path")
    # --- data -----------------------------------------------------------------------------
    cache: Optional[str] = setting(None, PATH_OR_NULL)  # teacher cache directory (distill)
    # corpus name in the cache, e.g. "sst2-train"
    train_corpus: Optional[str] = setting(None, kind="str", optional=True,
                                          what="a corpus name")
    # dev corpus name(s) in the cache, e.g. "sst2-dev"; several (MNLI): all reported, the first
    # selects
    dev_corpus: Any = setting(None, kind="str", optional=True, several=True,
                              what="a corpus name")
    # finetune: any input (file, glob, hf:NAME, ...)
    train_file: Optional[str] = setting(None, PATH_OR_NULL)
    dev_file: Any = setting(None, PATH_OR_NULL, several=True)  # finetune: dev input(s)
    # tokenisation length for raw text (finetune; question answering: tokens per context window)
    max_length: int = setting(128, POSITIVE)
    doc_stride: int = setting(128, POSITIVE)  # QA finetune: context tokens between window starts
    max_query_length: int = setting(64, POSITIVE)  # QA finetune: question tokens kept
    # use only the first N training examples
    limit_train: Optional[int] = setting(None, POSITIVE_OR_NULL)
    # --- student --------------------------------------------------------------------------
    # HF name/path: the model (pretrained), the teacher to cut down (truncate) or the base
    # config (config)
    student: Optional[str] = setting(None, PATH_OR_NULL)
    student_init: str = _table("student_init")  # "pretrained" | "truncate" | "config"
    # truncate: teacher layers kept (1-based)
    student_layers: Optional[Tuple[int, ...]] = setting(
        None, kind="list", optional=True, each=Allowed(kind="int"), what="a list of integers")
    # truncate (skip-chosen layers) / config
    student_num_layers: Optional[int] = setting(None, POSITIVE_OR_NULL)
    student_hidden: Optional[int] = setting(None, POSITIVE_OR_NULL)  # config: hidden size
    student_heads: Optional[int] = setting(None, POSITIVE_OR_NULL)   # config: attention heads
    # config: feed-forward size (default 4*hidden)
    student_intermediate: Optional[int] = setting(None, POSITIVE_OR_NULL)
    # start a new head even if the checkpoint has one that does not fit the task (else: an
    # error)
    reinit_head: bool = setting(False, FLAG)
    # --- objective (docs/method.md, "The objective") ---------------------------------
    pred_loss: str = _table("pred_loss")     # "kl" | "soft_ce" | "mse" | "none"; regression: mse
    temperature: float = _table("temperature")  # tau of the soft targets
    scale_by_t2: bool = setting(True, FLAG)  # multiply the soft loss by tau^2 (Hinton)
    inter_loss: str = _table("inter_loss")   # intermediate objective over mapped layer pairs
    mapping: str = _table("mapping")         # "skip" | "last" | "emd" | "explicit"
    # explicit (student, teacher)
    mapping_pairs: Optional[Tuple[Tuple[int, int], ...]] = setting(None, PAIRS)
    mi_alpha: float = _table("mi_alpha")     # MI-alpha interpolation, in [0, 1]
    critic: str = _table("critic")           # MI-alpha critic: "transformer" | "mlp" (on [CLS])
    critic_dim: int = setting(16, POSITIVE)  # size of the L2-normalised critic head
    critic_layers: int = setting(2, POSITIVE)
    critic_heads: int = setting(8, POSITIVE)
    critic_ff: int = setting(512, POSITIVE)
    w_kd: float = _table("w_kd")             # total = w_kd*L_pred + w_inter*sum L_inter
    w_inter: float = _table("w_inter")       # ... + w_gold*L_gold
    w_gold: float = _table("w_gold")
    # --- question answering (span tasks): decoding answers on the dev set --------------------
    n_best: int = setting(20, POSITIVE)      # start and end candidates per window
    max_answer_length: int = setting(30, POSITIVE)  # tokens per answer
    # SQuAD 2.0: answer "" when null odds exceed it; None = the best threshold on the dev set
    null_threshold: Optional[float] = setting(None, kind="number", optional=True)
    # --- optimisation ---------------------------------------------------------------------
    epochs: int = setting(3, POSITIVE)
    # stop after N optimizer steps (a budget that compares corpora of any size); epochs then
    # follow from it, evaluated at each epoch end and at the last step
    max_steps: Optional[int] = setting(None, POSITIVE_OR_NULL)
    batch_size: int = setting(32, POSITIVE)
    batching: str = _table("batching")       # "random" | "length" (length-grouped batches)
    eval_batch_size: int = setting(128, POSITIVE)
    lr: float = _table("lr")
    weight_decay: float = _table("weight_decay")  # none on bias and LayerNorm weights
    warmup_ratio: float = _table("warmup_ratio")  # linear warm-up share of all steps, then decay
    grad_accum: int = setting(1, POSITIVE)   # micro-batches per optimizer step
    max_grad_norm: Optional[float] = _table("max_grad_norm")  # clip; None = no clipping
    amp: str = _table("amp")                 # auto (AMP on CUDA, off on a CPU) | off | fp16 | bf16
    seed: int = setting(42, kind="int")
    # "auto" | "cpu" | "cuda" | "cuda:1" ...; several processes (torchrun): auto/cuda =
    # cuda:LOCAL_RANK
    device: str = setting("auto", kind="str")
    # DataLoader processes per rank (pinned memory); None: 2 on a GPU, 0 on a CPU (a prefetch
    # thread)
    loader_workers: Optional[int] = setting(None, kind="int", low=0, optional=True)
    # epochs without improvement before stopping
    early_stopping_patience: Optional[int] = setting(None, POSITIVE_OR_NULL)
    # also checkpoint mid-epoch every N optimizer steps
    save_every_steps: Optional[int] = setting(None, POSITIVE_OR_NULL)
    resume: bool = setting(True, FLAG)       # continue from run_dir's checkpoint when present
    log_every: int = setting(10, POSITIVE)   # optimizer steps between JSONL loss lines
    tensorboard: bool = setting(False, FLAG)  # also write TensorBoard scalars (if installed)
    progress: bool = setting(True, FLAG)     # tqdm progress bar

    def __post_init__(self) -> None:
        check_fields(self, WORDING)   # each field as declared (no file read)
        self._settle_task(_resolve_without_files(self))
        check_rules(self, RULES, WORDING)

    def _settle_task(self, resolved: Optional[Task]) -> None:
        """Keep the resolved task (apart from the fields); a regression task always trains on
        the logit MSE (soft targets over one output make no sense); the task's rules."""
        object.__setattr__(self, "_task", resolved)
        if resolved is not None and resolved.is_regression and \
                self.pred_loss in ("kl", "soft_ce"):
            object.__setattr__(self, "pred_loss", "mse")
        check_rules(self, TASK_RULES, WORDING)

    def read_task_file(self) -> "TrainConfig":
        """The config with its YAML task file read (`task: mytask.yaml`): the one setting whose
        resolution reads a file, so validation leaves it to this step (the command calls it
        right after parsing; `assemble.resolve_run_task` before training). Itself when there is
        no file to read or it was read already."""
        if self._task is not None or not is_task_file(self.task):
            return self
        out = copy.copy(self)
        out._settle_task(load_task_file(self.task))
        return out

    # --- derived ----------------------------------------------------------------------------
    def _resolved_task(self) -> Optional[Task]:
        """The resolved task; a task file is read here, at its first use, when the config was
        made without `read_task_file` (e.g. by dataclasses.replace of one that was)."""
        if self._task is None and is_task_file(self.task):
            object.__setattr__(self, "_task", self.read_task_file()._task)
        return self._task

    @property
    def task_def(self):
        """The resolved taskdata.Task; an error if it is still to be read from the cache."""
        if self._resolved_task() is None:
            raise UsageError("the task is not resolved yet: distiller.distill_train.assemble."
                             "resolve_run_task reads it from the cache's training corpus (or "
                             "its task file)")
        return self._task

    @property
    def is_regression(self) -> bool:
        task = self._resolved_task()
        return task is not None and task.is_regression

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
        refuse_unknown(merged, cls.keys(), what="config keys")
        return cls(**merged)

    @classmethod
    def from_yaml(cls, path: str, **overrides: Any) -> "TrainConfig":
        data = load_yaml_file(path) or {}
        if not isinstance(data, dict):
            raise UsageError(f"config file {path!r} must hold a mapping of keys, got "
                             f"{type(data).__name__}")
        return cls.from_dict(data, **overrides).read_task_file()

    def to_dict(self) -> Dict[str, Any]:
        """Every key (lists for tuples), but a key added after run directories were first
        written (`ADDED_KEYS`) only when it differs from its default: a config.json, sweep or
        ledger row written before reads as the same config, so such a run still resumes."""
        out = dataclasses.asdict(self)
        for key in ("student_layers", "mapping_pairs", "dev_corpus", "dev_file", "task"):
            if out[key] is not None:
                out[key] = json.loads(json.dumps(out[key]))  # tuples -> lists
        for key, default in ADDED_KEYS.items():
            if out[key] == default:
                del out[key]
        return out

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _resolve_without_files(config: TrainConfig) -> Optional[Task]:
    """The task of a config, resolved without reading a file: a built-in name, a mapping of task
    keys, or None (a task file, for `read_task_file`; in distill mode, none given or a name the
    cache's corpus must confirm: `assemble.resolve_run_task`)."""
    if is_task_file(config.task):
        return None
    try:
        return resolve_task(config.task)
    except UsageError:
        if config.mode != "distill" or not isinstance(config.task, str):
            raise
        return None   # a name the cache's corpus must confirm


def _pending(config: TrainConfig) -> bool:
    """Whether the task is still to be read (a task file) or taken from the cache."""
    return config._task is None


# The cross-field rules, in the order they are checked (after every field's own declaration).
RULES = (
    Rule("explicit mapping needs pairs", key="mapping_pairs",
         holds=lambda c: c.mapping != "explicit" or c.mapping_pairs is not None,
         says="mapping 'explicit' needs mapping_pairs"),
    Rule("distill needs a cache", key="cache", holds=lambda c: c.mode != "distill" or c.cache,
         says="mode 'distill' needs it (a cache directory and the corpus name to train on)"),
    Rule("distill needs a corpus", key="train_corpus",
         holds=lambda c: c.mode != "distill" or c.train_corpus,
         says="mode 'distill' needs it (a cache directory and the corpus name to train on)"),
    Rule("finetune needs a file", key="train_file",
         holds=lambda c: c.mode != "finetune" or c.train_file,
         says="mode 'finetune' needs a training file"),
    Rule("a student", key="student", holds=lambda c: c.student is not None,
         says="give a HF model name or path (the student, the teacher to truncate, or the base "
              "config)"),
    Rule("config init changes the config", key="student_init",
         holds=lambda c: c.student_init != "config" or bool(
             c.student_num_layers or c.student_hidden or c.student_heads),
         says="needs student_num_layers/student_hidden/student_heads to change the base "
              "config"),
    Rule("something to learn from",
         holds=lambda c: not (c.mode == "distill" and c.pred_loss == "none"
                              and c.inter_loss == "none" and c.w_gold == 0),
         says="pred_loss 'none', inter_loss 'none' and w_gold 0 leave nothing to learn from; "
              "set one of them"),
)
# Rules on the resolved task: checked when it is resolved (at validation, or when
# `read_task_file` reads it).
TASK_RULES = (
    Rule("finetune needs a task", key="task", shows_value=False,
         holds=lambda c: c.mode != "finetune" or c.task is not None,
         says="fine-tuning needs a task (a built-in name, a task file or the task flags "
              "--text-a/--label/--labels)"),
    Rule("finetune needs the labels", key="task", shows_value=False,
         holds=lambda c: c.mode != "finetune" or _pending(c) or c._task.resolved,
         says=lambda c: f"the labels of task {c._task.name} are not known: give them "
                        "(--labels) or let them be inferred from the training file"),
)


def _as_tuple(value: Any) -> Tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
