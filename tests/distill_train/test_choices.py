"""The choices table (distill_train/choices.py) is the one place of the trainer's named choices
and numeric ranges: the config (YAML, --set), the command's flags and the search space accept
what it allows and refuse the rest, each with one line saying what is allowed."""
from __future__ import annotations

import dataclasses
import math

import pytest

from distiller.autodistiller.space import FACTORS, SearchSpace, SpaceError
from distiller.distill_train.choices import OPTIONS
from distiller.distill_train.cli import _TABLE_FLAGS
from distiller.distill_train.config import TrainConfig
from distiller.cli import build_parser, main

BASE = dict(task="sst2", cache="c", train_corpus="t", student="s")
FLAG = {key: flag for flag, key in _TABLE_FLAGS.items()}


def _outside(option):
    """Values the option refuses: an unknown name, or numbers just past each end."""
    if not option.numeric:
        return ["bogus", "KL", ""]
    out = [option.low if option.low_open else option.low - 1]
    if option.high != math.inf:
        out.append(option.high if option.high_open else option.high + 1)
    return out


def _inside(option):
    """Values the option accepts: every name, or each closed end and a point between."""
    if not option.numeric:
        return list(option.values)
    high = option.high if option.high != math.inf else option.low + 10
    out = [(option.low + high) / 2]
    out += [] if option.low_open else [option.low]
    out += [] if option.high_open or option.high == math.inf else [option.high]
    return out


def _space(key, values):
    return SearchSpace.from_dict({"params": {key: list(values)}}, source="space.yaml")


def test_the_config_takes_its_defaults_from_the_table():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for key, option in OPTIONS.items():
        assert fields[key] == option.default, key
        assert option.problem(option.default) is None, key


def test_flags_and_space_factors_are_the_tables_settings():
    assert set(FLAG) == set(OPTIONS) - {"mode", "max_grad_norm"}
    trainer_factors = [k for k in FACTORS if k in OPTIONS]
    assert trainer_factors == ["mapping", "inter_loss", "mi_alpha", "pred_loss", "temperature",
                               "w_kd", "w_inter", "w_gold", "lr"]
    for key in trainer_factors:
        if key != "mapping":   # the space writes "explicit" as "pairs:..." (checked below)
            assert FACTORS[key] == OPTIONS[key].spec, key
    named = [v for v in OPTIONS["mapping"].values if v != "explicit"]
    assert _space("mapping", named + ["pairs:0-0,2-6"]).params[0].choices[:len(named)] == \
        tuple(named)
    with pytest.raises(SpaceError, match="params.mapping: got 'explicit'; expected skip, "):
        _space("mapping", ["explicit"])


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_what_the_table_allows_passes_everywhere(key):
    option = OPTIONS[key]
    parser = build_parser()
    for value in _inside(option):
        assert option.problem(value) is None
        if key in FLAG:
            args = parser.parse_args(["train", FLAG[key], str(value)])
            assert getattr(args, key) == value
        if key in FACTORS and key != "mapping":
            assert _space(key, [value]).params[0].choices == (value,)
        if option.numeric:  # names need their companions (mapping_pairs, a train_file ...)
            assert getattr(TrainConfig.from_dict(dict(BASE, **{key: value})), key) == value
    if key in FACTORS and option.numeric:  # a range up to a closed end
        low, high = (option.low, 0.5) if option.high == math.inf or option.high_open else \
            (0.5, option.high)
        low = low if not option.low_open else low + 0.25
        spec = SearchSpace.from_dict({"params": {key: {"low": low, "high": high}}})
        assert (spec.params[0].low, spec.params[0].high) == (low, high)


@pytest.mark.parametrize("key", sorted(OPTIONS))
def test_a_value_outside_the_table_fails_everywhere_in_one_line(key, capsys):
    option = OPTIONS[key]
    for value in _outside(option):
        with pytest.raises(ValueError) as err:
            TrainConfig.from_dict(dict(BASE, **{key: value}))
        message = str(err.value)
        assert "\n" not in message
        assert message == f"config key {key!r}: got {value!r}; {option.allowed()}"

        if key in FLAG:
            with pytest.raises(SystemExit) as done:
                main(["train", FLAG[key], str(value)])
            assert done.value.code == 2
            err_text = capsys.readouterr().err
            assert err_text.count("\n") == 1 and err_text.startswith("distiller train: error: ")
            assert FLAG[key] in err_text
            assert (option.allowed() if option.numeric else "invalid choice") in err_text

        if key in FACTORS:
            with pytest.raises(SpaceError) as err:
                _space(key, [value])
            assert "\n" not in str(err.value)
            if key != "mapping":
                assert str(err.value).endswith(option.allowed())
            if option.numeric:   # a range reaching past the bound too
                with pytest.raises(SpaceError, match=rf"params\.{key}\.(low|high): got "):
                    SearchSpace.from_dict({"params": {key: {"low": min(value, 0.5),
                                                            "high": max(value, 0.5) + 1}}})


def test_numbers_the_flags_cannot_read_are_one_line_too(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--temperature", "warm"])
    err = capsys.readouterr().err
    assert err == ("distiller train: error: argument --temperature: expected a positive number, "
                   "got 'warm' (`distiller train --help` lists the options)\n")
