"""The task model: built-in tasks, labels by name or class index, validation, flags and files."""
import argparse

import pytest

from distiller.common.errors import UsageError
from distiller.taskdata import LabelError, Task, builtin_names, builtin_task
from distiller.taskdata.resolve import (add_task_arguments, default_task_name, load_task_file,
                              resolve_task, task_from_args)


def parse(argv, labels_optional=False):
    parser = argparse.ArgumentParser()
    add_task_arguments(parser, labels_optional=labels_optional)
    return parser.parse_args(argv)


def test_builtin_tasks_cover_glue_boolq_and_squad_with_the_studys_metrics():
    assert builtin_names() == ["boolq", "cola", "mnli", "mrpc", "qnli", "qqp", "rte", "squad",
                               "squad2", "sst2", "stsb", "wnli"]
    assert builtin_task("CoLA").metrics == ("matthews", "accuracy")
    assert builtin_task("cola").header is False and builtin_task("cola").text_a == 3
    assert builtin_task("MRPC").metrics == ("f1", "accuracy")
    assert builtin_task("qqp").metrics == ("f1", "accuracy")
    assert builtin_task("sts-b").metrics == ("pearson", "spearman")
    assert builtin_task("stsb").num_labels == 1 and builtin_task("stsb").is_regression
    mnli = builtin_task("mnli")
    assert mnli.num_labels == 3 and mnli.dev_splits == ("dev_matched", "dev_mismatched")
    assert builtin_task("boolq").format == "jsonl" and builtin_task("boolq").label == (
        "label", "answer")
    assert builtin_task("nope") is None


def test_labels_match_by_name_then_case_then_class_index():
    rte = builtin_task("rte")
    assert rte.label_index("entailment") == 0 and rte.label_index("not_entailment") == 1
    assert rte.label_index("Entailment") == 0
    assert rte.label_index("1") == 1 and rte.label_index(1) == 1 and rte.label_index(1.0) == 1
    with pytest.raises(LabelError, match=r"unknown label '2' \(expected one of "
                                         r"\['entailment', 'not_entailment'\] or a class index"):
        rte.label_index("2")
    boolq = builtin_task("boolq")
    assert boolq.label_index(True) == 1 and boolq.label_index("False") == 0
    # names that are numbers are matched as names, never as indices
    stars = Task(name="stars", text_a="t", labels=("1", "2", "3", "4", "5"))
    assert stars.label_index("1") == 0 and stars.label_index("5") == 4
    with pytest.raises(LabelError, match="unknown label '0'"):
        stars.label_index("0")
    assert builtin_task("stsb").label_index(" 3.8 ") == 3.8
    with pytest.raises(LabelError, match="'high' is not a number"):
        builtin_task("stsb").label_index("high")
    assert rte.label_name(1) == "not_entailment" and builtin_task("stsb").label_name(2.5) == 2.5


def test_task_validation_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"^task t: key 'metrics': got 'auc'; expected one of "
                                         r"\['accuracy', 'f1', "):
        Task(name="t", text_a="x", labels=("a", "b"), metrics=("auc",))
    with pytest.raises(ValueError, match="'pearson' does not apply to a classification"):
        Task(name="t", text_a="x", labels=("a", "b"), metrics=("pearson",))
    with pytest.raises(ValueError, match="'f1' is binary F1.*3 labels: use macro_f1"):
        Task(name="t", text_a="x", labels=("a", "b", "c"), metrics=("f1",))
    with pytest.raises(ValueError, match="label names repeat"):
        Task(name="t", text_a="x", labels=("a", "a"))
    with pytest.raises(ValueError, match="at least 2 labels"):
        Task(name="t", text_a="x", labels=("a",))
    with pytest.raises(ValueError, match="regression task has no label names"):
        Task(name="t", text_a="x", kind="regression", labels=("a", "b"))
    with pytest.raises(ValueError, match=r"^task t: key 'kind': got 'span2'; expected one of "):
        Task(name="t", text_a="x", kind="span2")
    with pytest.raises(ValueError, match=r"^task t: key 'text_b': got None; a span task needs "):
        Task(name="t", text_a="x", kind="span")
    with pytest.raises(ValueError, match=r"^task t: key 'text_a': got -1; expected a column "):
        Task(name="t", text_a=-1)
    with pytest.raises(ValueError, match=r"^task t: key 'text_a': got 'a\|b'; expected a column"):
        Task(name="t", text_a="a|b")
    with pytest.raises(ValueError, match=r"^task key 'name': got ' '; expected a non-empty name"):
        Task(name=" ", text_a="x")
    with pytest.raises(ValueError, match="labels are not known yet"):
        Task(name="t", text_a="x").num_labels
    assert Task(name="t", text_a="x", labels=("a", "b", "c")).metrics == ("accuracy",
                                                                          "macro_f1")
    with pytest.raises(ValueError, match=r"unknown task keys: 'lables' \(did you mean "
                                         r"'labels'\?\)"):
        Task.from_dict({"name": "t", "text_a": "x", "lables": ["a"]})


def test_to_dict_round_trips():
    for name in builtin_names():
        task = builtin_task(name)
        assert Task.from_dict(task.to_dict()) == task


def test_a_users_task_from_flags_with_labels_inferred_and_said(tmp_path):
    data = tmp_path / "train.txt"
    data.write_text("HUM\twho was the first president\nLOC\twhere is the louvre\n"
                    "NUM\thow many legs does a spider have\nHUM\twho wrote hamlet\n",
                    encoding="utf-8")
    task, notes = task_from_args(parse(["--task", "trec", "--text-a", "1", "--label", "0"]),
                                 data=str(data))
    assert task.name == "trec" and task.header is False and task.text_a == 1
    assert task.labels == ("HUM", "LOC", "NUM") and task.metrics == ("accuracy", "macro_f1")
    assert notes == ["task trec: 3 labels inferred from train.txt, in class order: HUM, LOC, "
                     "NUM (--labels sets names and order)"]
    # labels given: nothing inferred; a name is derived from the folder of a train file
    task, notes = task_from_args(parse(["--text-a", "1", "--label", "0", "--labels",
                                        "NUM,LOC,HUM", "--metric", "macro_f1"]), data=str(data))
    assert task.labels == ("NUM", "LOC", "HUM") and notes == []
    assert task.name == default_task_name(str(data)) == tmp_path.name.lower()
    assert task.metrics == ("macro_f1",)


def test_real_valued_labels_make_a_regression_task(tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("text,score\ngreat,4.5\nbad,1.25\nok,3\n", encoding="utf-8")
    task, notes = task_from_args(parse(["--task", "reviews", "--text-a", "text", "--label",
                                        "score"]), data=str(data))
    assert task.is_regression and task.metrics == ("pearson", "spearman")
    assert "real numbers" in notes[0]


def test_builtin_task_with_overrides_and_task_files(tmp_path):
    task, _ = task_from_args(parse(["--task", "sst2", "--text-a", "review"]))
    assert task.name == "sst2" and task.text_a == "review" and task.labels == (
        "negative", "positive") and task.metrics == ("accuracy",)
    task, _ = task_from_args(parse(["--task", "mrpc", "--regression"]))
    assert task.is_regression and task.metrics == ("pearson", "spearman")
    path = tmp_path / "trec.yaml"
    path.write_text("text_a: 1\nlabel: 0\nheader: false\nlabels: [ABBR, DESC, ENTY, HUM, LOC, "
                    "NUM]\nmetrics: macro_f1,accuracy\n")
    task = load_task_file(str(path))
    assert task.name == "trec" and task.num_labels == 6 and task.primary_metric == "macro_f1"
    assert resolve_task(str(path)) == task
    assert task_from_args(parse(["--task-file", str(path)]))[0] == task
    bad = tmp_path / "bad.yaml"
    bad.write_text("text_a: [1\n")
    with pytest.raises(ValueError, match=r"task file .*bad.yaml' is not valid YAML at line 2, "
                                         r"column 1: "):
        load_task_file(str(bad))


def test_missing_task_information_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown task 'mytask': built-in tasks are"):
        task_from_args(parse(["--task", "mytask"]))
    with pytest.raises(ValueError, match="no task: give --task NAME"):
        task_from_args(parse([]))
    assert task_from_args(parse([]), required=False) == (None, [])
    with pytest.raises(ValueError, match="unknown task 'mnli2'"):
        resolve_task("mnli2")


def test_language_model_tasks_have_texts_and_no_label(tmp_path):
    task, notes = task_from_args(parse(["--task", "wiki", "--kind", "masked_lm", "--text-a",
                                        "text"]), data=str(tmp_path / "wiki.txt"))
    assert notes == [] and task.kind == "masked_lm" and task.is_lm and task.resolved
    assert task.label is None and task.labels is None and task.metrics == ()
    assert task.problem_type == "masked_lm" and task.id2label() == {}
    assert Task(name="c", text_a="t", kind="causal_lm").problem_type == "causal_lm"
    assert Task.from_dict(task.to_dict()) == task
    with pytest.raises(UsageError, match="vocabulary, not labels"):
        task.num_labels
    with pytest.raises(LabelError, match="has no labels"):
        task.label_index("x")
    with pytest.raises(UsageError, match="does not apply"):
        Task(name="c", text_a="t", kind="causal_lm", metrics=("accuracy",))
    rte_lm, _ = task_from_args(parse(["--task", "rte", "--kind", "causal_lm"]))
    assert rte_lm.kind == "causal_lm" and rte_lm.label is None and rte_lm.is_pair
    with pytest.raises(SystemExit):
        parse(["--task", "wiki", "--kind", "lm"])
