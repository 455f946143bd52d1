"""The task model (docs/tasks.md): what a dataset's rows mean, in one frozen object.

A `Task` says where the texts and the label are (column names, or 0-based positions when the file
has no header row), what the labels are (names in class order, or a real-valued target), how rows
are identified, and which metrics score a model on it (the first is the primary one, used for
model selection). Every command reads input and scores models through it, and a build records it
with each corpus in the cache, so training and evaluation need no task flags.

A language-model task (kind ``masked_lm`` or ``causal_lm``: a token-level teacher) has a
text column and no label: its targets are the text's own tokens.

A span task (extractive question answering, SQuAD) has a question (text_a), a context (text_b)
and answers (the label column: texts with their character starts); with ``unanswerable`` some
questions have none (SQuAD 2.0). Its model predicts a start and an end position per token.

Label values in a file are matched to classes by name first (exactly, then ignoring case), then,
when no label name is itself a number, as a 0-based class index: GLUE's RTE ships
``entailment``/``not_entailment`` in one export and ``0``/``1`` in another, and both read the same.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from distiller.common.config import Allowed, Rule, Wording, check_fields, check_rules, \
    refuse_unknown, setting
from distiller.common.errors import UsageError

__all__ = ["Task", "Column", "KINDS", "METRICS", "LabelError", "default_metrics",
           "UNANSWERABLE_METRICS", "SPAN_PROBLEM_TYPE", "LM_KINDS"]

SPAN_PROBLEM_TYPE = "question_answering"   # what a cache spec records for span tasks

Column = Union[str, int]
LM_KINDS = ("masked_lm", "causal_lm")   # token-level: their kind is their problem type
KINDS = ("classification", "regression", "span") + LM_KINDS
# metric name -> task kinds it applies to (classification/regression: distiller.taskdata.metrics;
# span: distiller.taskdata.squad_metrics, where "f1" is SQuAD's token F1, not binary F1)
METRICS: Dict[str, Tuple[str, ...]] = {
    "accuracy": ("classification",), "f1": ("classification", "span"),
    "macro_f1": ("classification",), "matthews": ("classification",),
    "pearson": ("regression",), "spearman": ("regression",), "exact": ("span",),
    "HasAns_exact": ("span",), "HasAns_f1": ("span",), "NoAns_exact": ("span",),
    "NoAns_f1": ("span",), "best_exact": ("span",), "best_f1": ("span",),
}
# metrics only a task with unanswerable questions has (SQuAD 2.0's breakdown and threshold)
UNANSWERABLE_METRICS = ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact",
                        "best_f1")
_FORMATS = ("tsv", "csv", "jsonl", "parquet", "text", "hf", "squad")
TEXT_FIELDS = ("text_a", "text_b")


class LabelError(UsageError):
    """A label value that is not one of the task's classes (or not a number for regression)."""


def default_metrics(kind: str, num_labels: int, unanswerable: bool = False) -> Tuple[str, ...]:
    """Accuracy (+ F1 for two classes, macro F1 for more); Pearson + Spearman for regression;
    SQuAD's F1 and exact match for spans (+ the HasAns/NoAns breakdown and the best-threshold
    figures when questions may have no answer)."""
    if kind == "regression":
        return ("pearson", "spearman")
    if kind in LM_KINDS:   # scored on tokens (masked-token top-1, perplexity), not on labels
        return ()
    if kind == "span":
        breakdown = ("HasAns_f1", "HasAns_exact", "NoAns_f1", "NoAns_exact", "best_f1",
                     "best_exact")
        return ("f1", "exact") + (breakdown if unanswerable else ())
    return ("accuracy", "f1") if num_labels == 2 else ("accuracy", "macro_f1")


def _column(value: Any, alternatives: bool = True) -> Union[Column, Tuple[str, ...]]:
    """A column reference: a name, a 0-based position, or (where `alternatives`) the names of
    alternatives, 'a|b' or a list: the first present in a row is used."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a column position is >= 0")
        return value
    if isinstance(value, (list, tuple)):
        names = tuple(str(v) for v in value)
        if not names or not all(names):
            raise ValueError("alternatives are non-empty names")
        found: Any = names if len(names) > 1 else names[0]
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("an empty column name")
        if text.isdigit():
            return int(text)
        found = tuple(text.split("|")) if "|" in text else text
    else:
        raise TypeError(value)
    if isinstance(found, tuple) and not alternatives:
        raise ValueError("one column, not alternatives")
    return found


def _one_column(value: Any) -> Column:
    return _column(value, alternatives=False)


def _label_names(value: Any) -> Tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError(value)   # "a,b" is split by from_dict; here a list of names
    return tuple(str(x) for x in value)


def _label_problem(labels: Tuple[str, ...]) -> Optional[str]:
    if len(labels) < 2:
        return "expected at least 2 labels (a classification task)"
    if len(set(labels)) != len(labels):
        return "expected distinct names: label names repeat"
    return None


def _augment_fields(value: Any) -> Tuple[str, ...]:
    """A non-empty subset of TEXT_FIELDS (one name or a list), in TEXT_FIELDS' order."""
    fields = (value,) if isinstance(value, str) else tuple(value or ())
    if not fields or any(f not in TEXT_FIELDS for f in fields) or len(set(fields)) != \
            len(fields):
        raise ValueError(value)
    return tuple(f for f in TEXT_FIELDS if f in fields)


def _name_problem(name: str) -> Optional[str]:
    return None if name else "expected a non-empty name"


_COLUMN = "a column name or a 0-based position"
_COLUMNS = _COLUMN + " (or alternatives: 'a|b' or a list)"
WORDING = Wording(field=lambda t, key: "task key 'name'" if key == "name" else
                  f"task {t.name}: key {key!r}", whole=lambda t: f"task {t.name}")


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: columns, labels, metrics. Validated on construction: each field as declared
    (distiller.common.config), then the rules (`RULES`, below the class).

    name: used in corpus names and reports. kind: "classification", "regression", "span", or a
    language model's "masked_lm" / "causal_lm" (no label column: `label` is cleared; no metric
    of METRICS: a language model is scored on tokens, top-1 and perplexity).
    text_a / text_b: the text column(s) (text_b None for single-sentence tasks).
    label: the label column (None: an unlabelled corpus); "label|answer" lists alternatives, the
    first present in a row is used. labels: class names in class order (classification); None
    means "not known yet" (`distiller.taskdata.resolve.infer_labels` fills it from a training file).
    id: a column holding a stable record id (rows without one get ``file:row``).
    header: whether line formats (TSV/CSV) start with a header row; without one, columns are
    0-based positions. format: tsv | csv | jsonl | parquet | text | hf, None = from the path.
    metrics: what is reported, the first one selects models. dev_splits: file stems of the dev
    sets in a task directory (MNLI: dev_matched, dev_mismatched).
    kind "span": text_a is the question, text_b the context, label the answers column (a list
    of {"text", "answer_start"}, or the `datasets` layout {"text": [...], "answer_start": [...]});
    unanswerable: questions may have no answer (SQuAD 2.0: ``is_impossible``).
    augment_fields: the texts augmentation changes (both sides of a pair by default; a span task
    changes the question only, so that the context and its answer spans stay as they are).
    """

    name: str = setting(kind="str", convert=str.strip, check=_name_problem)
    text_a: Column = setting(convert=_one_column, what=_COLUMN)
    text_b: Optional[Column] = setting(None, convert=_one_column, optional=True, what=_COLUMN)
    label: Optional[Union[Column, Tuple[str, ...]]] = setting(
        "label", convert=_column, optional=True, what=_COLUMNS)
    kind: str = setting("classification", kind="str", choices=KINDS)
    labels: Optional[Tuple[str, ...]] = setting(None, convert=_label_names, optional=True,
                                                check=_label_problem, what="a list of names")
    id: Optional[Union[Column, Tuple[str, ...]]] = setting(None, convert=_column, optional=True,
                                                           what=_COLUMNS)
    header: bool = setting(True, convert=bool)
    format: Optional[str] = setting(None, kind="str", choices=_FORMATS, optional=True)
    metrics: Tuple[str, ...] = setting((), kind="list", each=Allowed(kind="str",
                                                                     choices=tuple(METRICS)))
    dev_splits: Tuple[str, ...] = setting(("dev",), kind="list",
                                          convert=lambda v: v or ("dev",))
    description: str = ""
    unanswerable: bool = setting(False, convert=bool)
    augment_fields: Tuple[str, ...] = setting(
        TEXT_FIELDS, convert=_augment_fields, what=f"a non-empty subset of {list(TEXT_FIELDS)}")

    def __post_init__(self) -> None:
        check_fields(self, WORDING)   # each field as declared
        if self.kind in LM_KINDS:   # a language model's targets are its text's tokens: no label
            object.__setattr__(self, "label", None)
        if not self.metrics and (self.kind != "classification" or self.labels):
            object.__setattr__(self, "metrics", default_metrics(
                self.kind, len(self.labels or ()), self.unanswerable))
        check_rules(self, RULES, WORDING)

    # ------------------------------------------------------------------ derived
    @property
    def is_regression(self) -> bool:
        return self.kind == "regression"

    @property
    def is_lm(self) -> bool:
        """A language-model task (masked_lm, causal_lm): a token-level teacher's."""
        return self.kind in LM_KINDS

    @property
    def is_span(self) -> bool:
        """Extractive question answering: a start and an end position per token."""
        return self.kind == "span"

    @property
    def resolved(self) -> bool:
        """Whether the label set is known (regression, spans, or class names given)."""
        return self.kind != "classification" or self.labels is not None

    @property
    def num_labels(self) -> int:
        """Outputs of a model for this task: 1 for regression, 2 (start, end) per token for
        spans, else the number of classes."""
        if self.is_regression:
            return 1
        if self.is_span:
            return 2
        if self.is_lm:
            raise UsageError(f"task {self.name}: a {self.kind} task's outputs are the teacher's "
                             "vocabulary, not labels")
        if self.labels is None:
            raise UsageError(f"task {self.name}: its labels are not known yet: give --labels or "
                             "let them be inferred from the training file")
        return len(self.labels)

    @property
    def problem_type(self) -> str:
        """The Hugging Face `problem_type` of a model head for this task (spans: ours, recorded
        in cache specs; Hugging Face's QA heads have none)."""
        if self.is_span:
            return SPAN_PROBLEM_TYPE
        if self.is_lm:
            return self.kind
        return "regression" if self.is_regression else "single_label_classification"

    @property
    def primary_metric(self) -> str:
        if not self.metrics:
            raise UsageError(f"task {self.name}: no metric (labels unknown)")
        return self.metrics[0]

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    def id2label(self) -> Dict[int, str]:
        """What a model's config.id2label should say (regression: {0: name})."""
        if self.is_span:
            return {0: "start", 1: "end"}
        if self.is_lm:
            return {}
        if self.is_regression:
            return {0: self.name}
        return dict(enumerate(self.labels or ()))

    # ------------------------------------------------------------------ labels
    def label_index(self, value: Any) -> Union[int, float]:
        """The class index (classification) or float target (regression) of a label value as
        it appears in a file; LabelError says what was wrong."""
        if isinstance(value, bool):
            value = "true" if value else "false"
        if self.is_span:
            raise LabelError(f"task {self.name}: a span task's labels are answers, not classes")
        if self.is_lm:
            raise LabelError(f"task {self.name}: a {self.kind} task has no labels")
        if isinstance(value, float) and value.is_integer() and not self.is_regression:
            value = int(value)
        text = str(value).strip()
        if self.is_regression:
            try:
                return float(text)
            except ValueError:
                raise LabelError(f"label {text!r} is not a number") from None
        if self.labels is None:
            raise LabelError(f"task {self.name}: labels are not known")
        if text in self.labels:
            return self.labels.index(text)
        folded = [i for i, name in enumerate(self.labels) if name.lower() == text.lower()]
        if len(folded) == 1:
            return folded[0]
        numeric_names = any(_is_int(name) for name in self.labels)
        if not numeric_names and _is_int(text) and 0 <= int(text) < len(self.labels):
            return int(text)
        index = "" if numeric_names else f" or a class index 0..{len(self.labels) - 1}"
        raise LabelError(f"unknown label {text!r} (expected one of {list(self.labels)}{index})")

    def label_name(self, index: Union[int, float, None]) -> Any:
        """Inverse of `label_index` for outputs: the class name, or the float for regression."""
        if index is None or self.is_regression or self.is_span or self.is_lm:
            return index
        return (self.labels or ())[int(index)]

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("labels", "metrics", "dev_splits", "label", "id", "augment_fields"):
            if isinstance(out[key], tuple):
                out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Task":
        refuse_unknown(data, [f.name for f in dataclasses.fields(cls)], what="task keys")
        data = dict(data)
        for key in ("labels", "metrics", "dev_splits", "augment_fields"):
            if isinstance(data.get(key), str):
                data[key] = [x.strip() for x in data[key].split(",") if x.strip()]
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        for key in ("label", "id"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)

    def replace(self, **changes: Any) -> "Task":
        return dataclasses.replace(self, **changes)

    def same_labels(self, other: "Task") -> bool:
        """Whether two tasks define the same outputs (kind, class names in order; for spans
        whether questions may have no answer)."""
        return self.kind == other.kind and self.labels == other.labels and \
            self.unanswerable == other.unanswerable

    def describe(self) -> str:
        """One line for logs: name, kind, columns, labels."""
        cols = f"text {self.text_a!r}" + (f" + {self.text_b!r}" if self.is_pair else "")
        what = ("spans" + (" (questions may have no answer)" if self.unanswerable else "")
                if self.is_span else f"{self.kind} (tokens)" if self.is_lm else
                "regression" if self.is_regression else
                f"{len(self.labels)} labels {list(self.labels)}" if self.labels else
                "labels not known")
        label = f", label {self.label!r}" if self.label is not None else ", no label column"
        header = "" if self.header else ", no header row"
        return f"task {self.name}: {cols}{label}, {what}{header}, metrics {list(self.metrics)}"


def _unfit_metrics(task: Task) -> List[str]:
    return [m for m in task.metrics if task.kind not in METRICS[m]]


# The cross-field rules, checked in this order after every field's own declaration.
RULES = (
    Rule("unanswerable questions are spans", key="unanswerable",
         holds=lambda t: not t.unanswerable or t.kind == "span",
         says="unanswerable is for span tasks (SQuAD 2.0), not {self.kind}"),
    Rule("a span task has a context", key="text_b",
         holds=lambda t: t.kind != "span" or t.text_b is not None,
         says="a span task needs text_b, the context column (text_a is the question)"),
    Rule("label names are classes", key="labels",
         holds=lambda t: t.labels is None or t.kind == "classification",
         says="a {self.kind} task has no label names"),
    Rule("metrics fit the kind", key="metrics", holds=lambda t: not _unfit_metrics(t),
         says=lambda t: f"metric {_unfit_metrics(t)[0]!r} does not apply to a {t.kind} task"),
    Rule("breakdown metrics need unanswerable questions", key="metrics",
         holds=lambda t: t.unanswerable or not set(t.metrics) & set(UNANSWERABLE_METRICS),
         says=lambda t: f"metrics {[m for m in t.metrics if m in UNANSWERABLE_METRICS]} need "
                        "questions without an answer (unanswerable: true, SQuAD 2.0)"),
    Rule("f1 is binary", key="metrics",
         holds=lambda t: "f1" not in t.metrics or t.labels is None or len(t.labels) == 2,
         says=lambda t: f"metric 'f1' is binary F1 (positive class = label 1) but the task has "
                        f"{len(t.labels)} labels: use macro_f1"),
)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except (TypeError, ValueError):
        return False
    return True


def names_in_class_order(values: Sequence[str]) -> Tuple[str, ...]:
    """Distinct label values in class order: numerically when all are integers, else sorted."""
    distinct = sorted(set(values))
    if all(_is_int(v) for v in distinct):
        return tuple(sorted(distinct, key=int))
    return tuple(distinct)
