"""Where a task comes from: a built-in name, a YAML task file, command-line flags, or a training
file whose labels it infers (and says so). Every command that reads data takes the same flags
(`add_task_arguments`) and turns them into a `Task` the same way (`task_from_args`).

    --task sst2                                   built-in (GLUE's files as shipped)
    --task-file trec.yaml                         keys of `Task` (name, text_a, label, labels, ...)
    --task trec --text-a 1 --label 0              your own: a header-less TSV, label first
    --task trec --text-a text --label coarse --labels ABBR,DESC,ENTY,HUM,LOC,NUM --metric accuracy
    --task wiki --kind masked_lm --text-a text    a language-model task: texts only, no label
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from distiller.common.errors import UsageError

from .builtin import builtin_names, builtin_task
from .reader import _dataset, plan_splits, read_split
from .rows import MISSING, column_value
from .sources import resolve_inputs
from .task import KINDS, Task, _is_int, names_in_class_order
from .yamlfile import load_yaml_file

__all__ = ["add_task_arguments", "task_from_args", "resolve_task", "load_task_file",
           "infer_labels", "default_task_name", "FORMATS", "TASK_FILE", "save_task",
           "task_of_model", "is_task_file"]

FORMATS = ("tsv", "csv", "jsonl", "parquet", "text", "squad")
TASK_FILE = "distiller_task.json"   # saved next to a trained model: its task travels with it


def save_task(task: Task, directory: str) -> str:
    """Write the task beside a saved model (``distiller_task.json``); returns the path."""
    path = os.path.join(directory, TASK_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(task.to_dict(), fh, indent=1, sort_keys=True)
    return path


def task_of_model(directory: str) -> Optional[Task]:
    """The task saved beside a model by `save_task`, or None."""
    path = os.path.join(directory, TASK_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return Task.from_dict(json.load(fh))


def add_task_arguments(parser, *, labels_optional: bool = False) -> None:
    """The task flags every data-reading command shares. labels_optional adds --unlabelled."""
    g = parser.add_argument_group(
        "task", "a built-in task (--task NAME), a YAML task file, or your own columns; "
        "columns are header names, or 0-based positions in a file without a header row")
    g.add_argument("--task", help=f"built-in task ({', '.join(builtin_names())}) or the name "
                   "of your own task (then give --text-a, --label, ...)")
    g.add_argument("--task-file", help="YAML file with the keys of a task (name, text_a, "
                   "text_b, label, labels, kind, metrics, header, id, format)")
    g.add_argument("--text-a", help="column of the (first) text")
    g.add_argument("--text-b", help="column of the second text of a pair")
    g.add_argument("--label", help="label column ('a|b': the first present)")
    g.add_argument("--labels", help="label names in class order, comma-separated (default: "
                   "inferred from the training file, and said)")
    g.add_argument("--regression", action="store_true", default=None,
                   help="the label is a real number")
    g.add_argument("--kind", choices=KINDS, default=None,
                   help="what the task predicts (default: classification, or the built-in "
                   "task's); masked_lm / causal_lm: a language-model task of texts only, "
                   "scored by a token-level teacher (--tokens)")
    g.add_argument("--metric", help="metrics, comma-separated; the first selects models "
                   "(accuracy, f1, macro_f1, matthews, pearson, spearman; spans: f1, exact, "
                   "HasAns_f1, NoAns_f1, best_f1, ...)")
    g.add_argument("--id-column", help="column holding a stable record id")
    hdr = g.add_mutually_exclusive_group()
    hdr.add_argument("--no-header", dest="header", action="store_false", default=None,
                     help="TSV/CSV without a header row (default when columns are positions)")
    hdr.add_argument("--header", dest="header", action="store_true",
                     help="TSV/CSV whose first row is a header (default with column names)")
    g.add_argument("--format", dest="fmt", choices=FORMATS, default=None,
                   help="input format (default: the task's, else from the file name; .txt: "
                   "TSV if it has tabs, else one text per line; squad: the official SQuAD JSON)")
    if labels_optional:
        g.add_argument("--unlabelled", action="store_true",
                       help="read texts only: an unlabelled corpus (the teacher labels it)")


def _column(text: Optional[str]) -> Any:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isdigit() else text


def default_task_name(path: Optional[str]) -> str:
    """A task name from a data path: the folder for train/dev/test files, else the file stem."""
    if not path or path.startswith("hf:"):
        return (path or "task")[3:].split("@")[0].replace("/", "-") or "task"
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    stem = os.path.splitext(stem)[0] if stem.endswith((".tsv", ".csv", ".jsonl")) else stem
    generic = stem.lower().split("_")[0].split("-")[0] in ("train", "dev", "test", "valid",
                                                          "validation", "data")
    if generic:
        parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
        return (parent or stem).lower()
    return stem.lower()


def load_task_file(path: str) -> Task:
    """A task from a YAML file of `Task` keys (name defaults to the file's stem)."""
    try:
        data = load_yaml_file(path, "task file")
    except FileNotFoundError:
        raise FileNotFoundError(f"task file {path!r} does not exist") from None
    if not isinstance(data, dict):
        raise UsageError(f"task file {path!r} must hold a mapping of task keys, got "
                         f"{type(data).__name__}")
    data.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    return Task.from_dict(data)


def is_task_file(value: Any) -> bool:
    """Whether a config's task value names a YAML task file (read by `load_task_file`, the
    one task value whose resolution reads a file) rather than a built-in task."""
    return isinstance(value, str) and builtin_task(value) is None and \
        value.endswith((".yaml", ".yml"))


def resolve_task(value: Union[str, Mapping[str, Any], Task, None]) -> Optional[Task]:
    """A Task from what a config holds: a built-in name, a YAML path, a dict or a Task."""
    if value is None or isinstance(value, Task):
        return value
    if isinstance(value, Mapping):
        return Task.from_dict(value)
    if isinstance(value, str):
        found = builtin_task(value)
        if found is not None:
            return found
        if value.endswith((".yaml", ".yml")):
            return load_task_file(value)
        raise UsageError(f"unknown task {value!r}: built-in tasks are {builtin_names()}; for "
                         "your own data give the columns (--text-a, --label, --labels ...) or a "
                         "task file (--task-file)")
    raise UsageError(f"a task is a name, a task file or a mapping, got {type(value).__name__}")


def task_from_args(args, *, data: Optional[str] = None, required: bool = True
                   ) -> Tuple[Optional[Task], List[str]]:
    """(task, notes) from the shared flags. `data` is a training input to infer the labels from
    (and to name the task after) when they are not given; notes are lines to show the user."""
    notes: List[str] = []
    given: Dict[str, Any] = {}
    for flag, key in (("text_a", "text_a"), ("text_b", "text_b"), ("label", "label"),
                      ("id_column", "id")):
        if getattr(args, flag, None) is not None:
            given[key] = _column(getattr(args, flag))
    if getattr(args, "labels", None):
        given["labels"] = tuple(x.strip() for x in args.labels.split(",") if x.strip())
    if getattr(args, "regression", None):
        given["kind"] = "regression"
        given["labels"] = None
    if getattr(args, "kind", None):
        given["kind"] = args.kind
        if args.kind != "classification":
            given["labels"] = None
    if getattr(args, "metric", None):
        given["metrics"] = tuple(x.strip() for x in args.metric.split(",") if x.strip())
    if getattr(args, "fmt", None):
        given["format"] = args.fmt
    header = getattr(args, "header", None)
    if header is None and isinstance(given.get("text_a"), int):
        header = False   # columns by position: a file without a header row
    if header is not None:
        given["header"] = header
    name = getattr(args, "task", None)
    base: Optional[Task] = None
    if getattr(args, "task_file", None):
        base = load_task_file(args.task_file)
    elif name:
        base = builtin_task(name)
    if base is None:
        if "text_a" not in given:
            if not required and not name:
                return None, notes
            if name:
                raise UsageError(f"unknown task {name!r}: built-in tasks are {builtin_names()}; "
                                 "for your own data give its columns (--text-a, --label, "
                                 "--labels ...) or a task file (--task-file)")
            raise UsageError("no task: give --task NAME (a built-in task, or a name with "
                             "--text-a/--label for your own data) or --task-file")
        name = name or default_task_name(data)
        base = Task(name=name, text_a=given.pop("text_a"), labels=given.get("labels"),
                    kind=given.get("kind", "classification"))
    if name and base.name != name and getattr(args, "task_file", None):
        given["name"] = name
    changes_outputs = given.get("kind", base.kind) != base.kind or (
        "labels" in given and len(given["labels"] or ()) != len(base.labels or ()))
    if changes_outputs and "metrics" not in given:
        given["metrics"] = ()   # the default metrics of the new label set
    task = base.replace(**given) if given else base
    if task.label is not None and not task.resolved and data is not None:
        task, note = infer_labels(task, data)
        notes.append(note)
    return task, notes


def infer_labels(task: Task, data: str, *, limit: Optional[int] = None) -> Tuple[Task, str]:
    """The task with its labels read from a training input: class names from a dataset's
    ClassLabel feature, else the distinct values of the label column (numeric order when all are
    integers, else sorted); real-valued labels make it a regression task. Returns (task, note)."""
    names = _classlabel_names(task, data)
    if names:
        task = task.replace(labels=tuple(names))
        return task, (f"task {task.name}: {len(names)} labels from the dataset's features, in "
                      f"class order: {', '.join(names)}")
    values = set()
    for split in plan_splits(data, task, limit=limit):
        for _, row, _, _ in read_split(split, task):
            if row is None:
                continue
            value = column_value(row, task.label)
            if value is MISSING or value is None:
                continue
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            text = str(value).strip()
            if text:
                values.add(text)
    where = os.path.basename(data.rstrip("/")) or data
    if not values:
        raise UsageError(f"task {task.name}: the label column {task.label!r} of {where} holds no "
                         "values to infer the labels from: give --labels (or --regression)")
    if all(_is_number(v) for v in values) and not all(_is_int(v) for v in values):
        task = task.replace(kind="regression", labels=None, metrics=())
        return task, (f"task {task.name}: the labels of {where} are real numbers "
                      f"({len(values)} distinct): a regression task (pass --labels to make it "
                      "a classification)")
    if len(values) > 1000:
        raise UsageError(f"task {task.name}: {len(values)} distinct labels in {where}: is "
                         f"{task.label!r} the label column? Give --labels or --regression")
    order = names_in_class_order(values)
    task = task.replace(labels=order, metrics=task.metrics if task.metrics else ())
    shown = ", ".join(order[:20]) + (" ..." if len(order) > 20 else "")
    return task, (f"task {task.name}: {len(order)} labels inferred from {where}, in class order: "
                  f"{shown} (--labels sets names and order)")


def _classlabel_names(task: Task, data: str) -> Optional[List[str]]:
    if not (data.startswith("hf:") or os.path.isdir(data)) or isinstance(task.label, int):
        return None
    try:
        (inp,) = resolve_inputs(data, task.format)
        feature = _dataset(inp).features.get(task.label if isinstance(task.label, str)
                                             else next(iter(task.label)))
    except (ValueError, TypeError, StopIteration):
        return None
    return list(getattr(feature, "names", None) or []) or None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
