"""Config validation messages, and `distiller train|evaluate|finetune` through their real argv."""
from __future__ import annotations

import json
import os

import pytest

from distiller.distill_train.config import TrainConfig

BASE = dict(task="sst2", cache="c", train_corpus="t", student="s")


@pytest.mark.parametrize("change,message", [
    ({"inter_loss": "l2"}, r"'inter_loss': got 'l2'; expected one of"),
    ({"mi_alpha": 1.5}, r"'mi_alpha': got 1.5; expected a number in \[0, 1\]"),
    ({"task": "squad9", "mode": "finetune", "train_file": "x"}, "unknown task 'squad9'"),
    ({"batch_size": 0}, "'batch_size': got 0; expected a positive integer"),
    ({"mapping": "explicit"}, "mapping 'explicit' needs mapping_pairs"),
    ({"mapping_pairs": [[1]]}, "'mapping_pairs'"),
    ({"cache": None}, "'cache'.*needs it"),
    ({"temperature": 0}, "'temperature'"),
    ({"pred_loss": "none", "inter_loss": "none"}, "nothing to learn"),
    ({"student_init": "config"}, "student_num_layers"),
    ({"mode": "finetune"}, "'train_file'"),
])
def test_bad_values_name_key_value_and_fix(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(dict(BASE, **change))


def test_unknown_keys_suggest_the_right_one_and_overrides_win(tmp_path):
    with pytest.raises(ValueError, match=r"unknown config keys: 'temprature' \(did you mean "
                                         r"'temperature'\?\)"):
        TrainConfig.from_dict(dict(BASE, temprature=2.0))
    path = tmp_path / "kd.yaml"
    path.write_text("task: stsb\ncache: c\ntrain_corpus: t\nstudent: s\npred_loss: kl\n"
                    "epochs: 7\nmapping_pairs: [[1, 3], [2, 6]]\nmapping: explicit\n")
    cfg = TrainConfig.from_yaml(str(path), epochs=2, lr=None)
    assert cfg.epochs == 2 and cfg.lr == 5e-5
    assert cfg.pred_loss == "mse"  # regression always distils logits with MSE
    assert cfg.mapping_pairs == ((1, 3), (2, 6)) and cfg.problem_type == "regression"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_train_evaluate_finetune_through_real_argv(tmp_path, teacher_dir, cache_f32, capsys):
    from distiller.cli import main

    from .conftest import SST2

    kd = tmp_path / "kd.yaml"
    kd.write_text("inter_loss: mse\nmapping: skip\nstudent_init: truncate\n"
                  "student_num_layers: 2\nbatch_size: 8\nepochs: 3\nlr: 0.001\n")
    run = tmp_path / "run"
    code = main(["train", "--cache", cache_f32, "--task", "sst2", "--train-corpus", "sst2-train",
                 "--dev-corpus", "sst2-dev", "--student", teacher_dir, "--config", str(kd),
                 "--epochs", "1", "--run-dir", str(run), "--set", "w_gold=0.5", "--no-progress"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric_name"] == "accuracy" and len(result["history"]) == 1
    saved = json.load(open(run / "config.json"))
    assert saved["epochs"] == 1 and saved["w_gold"] == 0.5 and saved["inter_loss"] == "mse"

    code = main(["evaluate", "--model", str(run / "best_model"), "--task", "sst2",
                 "--cache", cache_f32, "--corpus", "sst2-dev"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["student"]["accuracy"] == pytest.approx(result["best_metric"])
    assert metrics["teacher"]["accuracy"] == pytest.approx(result["teacher_metric"])

    out = tmp_path / "ft"
    code = main(["finetune", "--task", "sst2", "--train", os.path.join(SST2, "train.tsv"),
                 "--dev", os.path.join(SST2, "dev.tsv"), "--model", teacher_dir, "--out",
                 str(out), "--epochs", "1", "--limit-train", "32", "--max-length", "32",
                 "--no-progress"])
    assert code == 0 and (out / "best_model" / "config.json").exists()
    capsys.readouterr()
    code = main(["evaluate", "--model", str(out / "best_model"), "--task", "sst2", "--file",
                 os.path.join(SST2, "dev.tsv"), "--max-length", "32"])
    assert code == 0 and json.loads(capsys.readouterr().out)["examples"] == 872


def test_cli_reports_config_errors(tmp_path, capsys):
    from distiller.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("inter_los: mse\n")
    code = main(["train", "--cache", "c", "--task", "sst2", "--train-corpus", "t", "--student",
                 "s", "--config", str(bad)])
    assert code == 2
    assert "unknown config keys: 'inter_los' (did you mean 'inter_loss'?)" in \
        capsys.readouterr().err
    code = main(["train", "--cache", "c", "--task", "sst2", "--train-corpus", "t", "--student",
                 "s", "--set", "mi_alpha=2"])
    assert code == 2 and "'mi_alpha': got 2.0; expected a number in [0, 1]" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as done:   # a flag's range is checked as it is parsed
        main(["train", "--cache", "c", "--task", "sst2", "--train-corpus", "t", "--student",
              "s", "--mi-alpha", "2"])
    assert done.value.code == 2
    assert "argument --mi-alpha: expected a number in [0, 1], got '2'" in capsys.readouterr().err
