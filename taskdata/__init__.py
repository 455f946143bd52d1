"""taskdata: the task model, the one reader of every input, and task metrics.

    Task, builtin_task        what a dataset's rows mean (columns, labels, metrics)
    read_records, plan_splits, read_split, to_record, check_input     the reader
    compute_metrics           every metric a task reports

Only the standard library at import time: pyarrow, fsspec and `datasets` load on use.
"""
from .builtin import BUILTIN_TASKS, builtin_names, builtin_task
from .reader import Split, check_input, plan_splits, read_records, read_split, to_record
from .records import DeadLetter, parse_row, record_id
from .sources import Input, resolve_inputs
from .task import KINDS, METRICS, LabelError, Task

__all__ = [
    "BUILTIN_TASKS", "builtin_names", "builtin_task", "Split", "check_input", "plan_splits",
    "read_records", "read_split", "to_record", "DeadLetter", "parse_row", "record_id", "Input",
    "resolve_inputs", "KINDS", "METRICS", "LabelError", "Task",
]
