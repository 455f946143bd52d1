"""The declarative config layer (distiller.common.config): declarations say what a field may
hold, one validator normalises and checks them and then the named rules, and every problem is
one line naming the field, the value found and what is allowed. Validation reads no file: the
configs that name a task file leave it to an explicit step of the command."""
from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any, Optional

import pytest

from distiller.common.config import Allowed, Rule, Wording, check_rules, refuse_unknown, \
    setting, take, validate
from distiller.common.errors import UsageError


@pytest.mark.parametrize("allowed, text", [
    (Allowed(kind="int", low=1), "expected a positive integer"),
    (Allowed(kind="int", low=0, optional=True), "expected an integer >= 0 or null"),
    (Allowed(kind="float", low=0, low_open=True), "expected a positive number"),
    (Allowed(kind="number", low=0, high=1, low_open=True), "expected a number in (0, 1]"),
    (Allowed(kind="number", low=0, high=1, high_open=True), "expected a number in [0, 1)"),
    (Allowed(kind="number", high=4), "expected a number <= 4"),
    (Allowed(kind="number", low=0.5), "expected a number >= 0.5"),
    (Allowed(kind="str", choices=("a", "b")), "expected one of ['a', 'b']"),
    (Allowed(kind="path", several=True, optional=True), "expected a path or a list of them or "
                                                        "null"),
    (Allowed(kind="bool"), "expected true or false"),
    (Allowed(kind="list", what="a list of layers"), "expected a list of layers"),
])
def test_what_is_allowed_is_said_from_the_declaration(allowed, text):
    assert allowed.describe() == text


def test_values_are_normalised_as_declared():
    assert take(Allowed(kind="float"), "5e-5", "x") == 5e-5
    assert take(Allowed(kind="number"), 2, "x") == 2 and isinstance(
        take(Allowed(kind="number"), 2, "x"), int)      # kept as given: JSON keeps "2"
    assert take(Allowed(kind="path"), pathlib.Path("a/b"), "x") == "a/b"
    several = Allowed(kind="str", several=True)
    assert take(several, ["one"], "x") == "one" and take(several, ["a", "b"], "x") == ("a", "b")
    assert take(Allowed(kind="list", each=Allowed(kind="int")), [1, 2], "x") == (1, 2)
    assert take(Allowed(kind="int", optional=True, low=5), None, "x") is None
    assert take(Allowed(convert=str.strip), " a ", "x") == "a"


@pytest.mark.parametrize("allowed, value, message", [
    (Allowed(kind="float", low=0, high=1, low_open=True), "abc",
     "k 'lr': got 'abc'; expected a number in (0, 1]"),
    (Allowed(kind="float", low=0, high=1, low_open=True), "2",   # shown as its number
     "k 'lr': got 2.0; expected a number in (0, 1]"),
    (Allowed(kind="float"), math.nan, "k 'lr': got nan; expected a number"),
    (Allowed(kind="int", low=1), True, "k 'lr': got True; expected a positive integer"),
    (Allowed(kind="str", several=True), [], "k 'lr': got []; expected a string or a list of "
                                            "them"),
    (Allowed(kind="list", each=Allowed(kind="str", choices=("a",))), ["a", "z"],
     "k 'lr': got 'z'; expected one of ['a']"),          # the item that is wrong
    (Allowed(kind="list", each=Allowed(kind="int"), what="a list of integers"), ["a"],
     "k 'lr': got ['a']; expected a list of integers"),  # a list described whole
    (Allowed(kind="str", check=lambda v: None if v else "expected a non-empty name"), "",
     "k 'lr': got ''; expected a non-empty name"),
    (Allowed(convert=int, what="a whole number"), "x", "k 'lr': got 'x'; expected a whole "
                                                       "number"),
])
def test_a_refused_value_is_one_line_naming_field_value_and_what_is_allowed(allowed, value,
                                                                            message):
    with pytest.raises(UsageError) as err:
        take(allowed, value, "k 'lr'")
    assert str(err.value) == message and "\n" not in str(err.value)


def test_a_normaliser_that_knows_better_speaks_for_itself():
    def resolve(value):
        raise UsageError(f"unknown task {value!r}: built-in tasks are [...]")

    with pytest.raises(UsageError, match="^unknown task 'x': built-in"):
        take(Allowed(convert=resolve), "x", "k 'task'")


@dataclasses.dataclass(frozen=True)
class Toy:
    name: str = setting(kind="str", convert=str.strip)
    size: int = setting(1, kind="int", low=1)
    rate: float = setting(0.5, kind="float", low=0, high=1)
    extra: Optional[Any] = None
    mode: str = setting("a", kind="str", choices=("a", "b"))

    def __post_init__(self):
        validate(self, TOY_RULES, Wording(field=lambda t, key: f"toy {t.name}: {key!r}",
                                          whole="toy {self.name}", error=ToyError))


class ToyError(UsageError):
    pass


TOY_RULES = (
    Rule("b needs a size", key="mode", holds=lambda t: t.mode != "b" or t.size > 1,
         says="mode 'b' needs size > 1 (size is {self.size})"),
    Rule("nothing big", holds=lambda t: t.size * t.rate < 10, says="size * rate must stay "
                                                                  "below 10"),
)


def test_a_dataclass_declares_fields_and_rules():
    toy = Toy(name=" t ", rate="0.25")
    assert (toy.name, toy.size, toy.rate) == ("t", 1, 0.25)     # normalised in place (frozen)
    assert dataclasses.replace(toy, size=3).size == 3            # replace validates again
    with pytest.raises(ToyError, match=r"^toy t: 'size': got 0; expected a positive integer$"):
        Toy(name="t", size=0)
    with pytest.raises(ToyError, match=r"^toy t: 'mode': got 'b'; mode 'b' needs size > 1 "
                                       r"\(size is 1\)$"):
        Toy(name="t", mode="b")
    with pytest.raises(ToyError, match=r"^toy t: size \* rate must stay below 10$"):
        Toy(name="t", size=40)
    # the fields first, in order, then the rules in order
    with pytest.raises(ToyError, match="'rate'"):
        Toy(name="t", size=40, mode="b", rate=2)


def test_rules_read_mappings_too_and_may_keep_a_long_value_out():
    rule = Rule("short", key="fixed", holds=lambda s: not s.fixed, says="fix nothing",
                shows_value=False)
    with pytest.raises(UsageError, match=r"^space: 'fixed': fix nothing$"):
        check_rules({"fixed": {"a": 1}}, [rule], Wording(field="space: {key!r}"))
    check_rules({"fixed": {}}, [rule])


def test_unknown_keys_are_refused_with_a_close_match():
    refuse_unknown({"lr": 1}, ["lr", "seed"])
    with pytest.raises(UsageError) as err:
        refuse_unknown({"lrr": 1, "zzz": 2}, ["lr", "seed"], where="kd.yaml")
    assert str(err.value) == ("kd.yaml: unknown config keys: 'lrr' (did you mean 'lr'?), 'zzz'; "
                              "allowed keys are ['lr', 'seed']")


def test_task_files_are_read_by_the_command_not_by_validation(tmp_path, monkeypatch, capsys):
    from distiller.cli import main
    from distiller.distill_train.config import TrainConfig
    from distiller.pipelines.build import BuildOptions

    monkeypatch.chdir(tmp_path)
    base = dict(task="nope.yaml", mode="finetune", train_file="x.tsv", student="s")
    config = TrainConfig(**base)              # no file is read to validate
    assert config._task is None
    with pytest.raises(FileNotFoundError, match="task file 'nope.yaml' does not exist"):
        config.read_task_file()
    (tmp_path / "nope.yaml").write_text("text_a: 0\nlabel: 1\nkind: regression\n")
    read = config.read_task_file()
    assert read.task_def.is_regression and read.pred_loss == "mse" and config.pred_loss == "kl"
    assert read.read_task_file() is read and read.task == "nope.yaml"
    again = dataclasses.replace(read, epochs=1)   # made anew: the file is read at first use
    assert again._task is None and again.is_regression and again.task_def == read.task_def
    (tmp_path / "labels.yaml").write_text("text_a: 0\nlabel: 1\n")
    with pytest.raises(UsageError, match="^config key 'task': the labels of task labels are "
                                         "not known"):
        TrainConfig(**dict(base, task="labels.yaml")).read_task_file()
    # the command reads it where it parses its flags: one line, before any work
    (tmp_path / "kd.yaml").write_text("task: missing.yaml\n")
    assert main(["finetune", "--config", "kd.yaml", "--train", "x.tsv", "--model", "s",
                 "--out", "r"]) == 2
    assert main(["train", "--task", "missing.yaml", "--cache", "c", "--student", "s",
                 "--train-corpus", "t"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["distiller finetune: error: task file 'missing.yaml' does not exist",
                   "distiller train: error: task file 'missing.yaml' does not exist"]
    with pytest.raises(UsageError, match=r"^build option 'task': got 'nope.yaml'; expected a "
                                         r"Task, .*--task-file\)$"):
        BuildOptions(input="x.tsv", task="nope.yaml", teacher="t", cache="c")
