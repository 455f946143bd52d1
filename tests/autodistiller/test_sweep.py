"""Sweeps end to end through the real argv of the CLI, with a fake trainer standing in for
distiller.distill_train.train.train (same signature style: config -> result, per-epoch callback)."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from distiller.autodistiller.ledger import COLUMNS, Ledger
from distiller.cli import main
from distiller.distill_train.train import TrainResult
from distiller.taskdata.paths import shared_data

GLUE = shared_data("glue")
SPACE = """
name: tiny
params:
  augmentation: [none, "corpus:rte-train+eda"]
  inter_loss: [mse, mi]
  mi_alpha: [0.1, 0.9]
  temperature: {low: 1.0, high: 4.0}
  lr: {low: 1.0e-5, high: 1.0e-3, log: true}
  student: [tiny-student]
fixed: {epochs: 3, batch_size: 8}
"""
CALLS = []


def fake_train(config, *, on_epoch=None):
    """Checks the config is one the real trainer accepts; the metric grows with lr."""
    from distiller.distill_train.config import TrainConfig

    cfg = TrainConfig.from_dict(config)
    CALLS.append(cfg)
    if os.environ.get("FAKE_TRAIN_FAIL"):
        raise RuntimeError("CUDA out of memory (simulated)")
    history = []
    for epoch in range(cfg.epochs):
        value = 0.5 + 0.2 * (np.log10(cfg.lr) + 5) / 2 + 0.01 * epoch
        value += 0.02 * (cfg.inter_loss == "mi")
        entry = {"epoch": epoch, "dev": {"accuracy": value}}
        history.append(entry)
        if on_epoch is not None:
            on_epoch(epoch, entry)
    best = max(h["dev"]["accuracy"] for h in history)
    return TrainResult(best, "accuracy", cfg.epochs - 1, history, cfg.run_dir, 0.25,
                       teacher_metric=0.8)


@pytest.fixture()
def task_data(tmp_path):
    """A small real RTE directory: the first rows of GLUE RTE train and dev."""
    out = tmp_path / "rte"
    out.mkdir()
    for split, n in (("train", 60), ("dev", 30)):
        with open(f"{GLUE}/RTE/{split}.tsv", encoding="utf-8") as fh:
            lines = [next(fh) for _ in range(n + 1)]
        (out / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return str(out)


def sweep_argv(tmp_path, task_data, trials, *extra):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    (tmp_path / "cache").mkdir(exist_ok=True)
    return ["sweep", "--space", str(space), "--task", "rte", "--cache", str(tmp_path / "cache"),
            "--task-data", task_data, "--trials", str(trials), "--out", str(tmp_path / "out"),
            "--teacher", "minilm-rte", "--teacher-fingerprint", "fp0123",
            "--trainer", f"{__name__}:fake_train", "--encoder", "hashing",
            "--feature-cache", str(tmp_path / "emb"), "--no-build", *extra]


def test_three_trials_end_to_end_then_resume(tmp_path, task_data, capsys):
    CALLS.clear()
    assert main(sweep_argv(tmp_path, task_data, 3)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials_before"] == 0 and summary["trials_total"] == 3
    df = Ledger(str(tmp_path / "out" / "ledger")).read()
    assert len(df) == 3 == len(CALLS)
    assert list(df.columns) == list(COLUMNS)
    assert sorted(df["trial"]) == [0, 1, 2]
    for _, row in df.iterrows():
        assert row["status"] == "complete" and row["task"] == "rte"
        assert row["teacher_fingerprint"] == "fp0123" and row["student"] == "tiny-student"
        assert row["ratio"] == pytest.approx(row["dev_metric"] / 0.8)
        assert row["n_examples"] == 60 and row["n_labels"] == 2 and not row["is_regression"]
        assert 0.0 <= row["difficulty_prior"] <= 1.0 and len(row["embedding"]) == 16
        assert row["corpus"] in ("rte-train", "rte-train+eda")
        assert 1e-5 <= row["lr"] <= 1e-3 and row["epochs_run"] == 3
        assert np.isnan(row["mi_alpha"]) == (row["inter_loss"] != "mi")
        config = json.loads(row["config_json"])
        assert config["run_dir"].endswith(f"trials/{row['trial']:04d}")
        assert config["train_corpus"] == row["corpus"] and config["epochs"] == 3
    before = df.sort_values("trial").reset_index(drop=True)

    # resume: the study and the ledger grow, nothing is lost or repeated
    assert main(sweep_argv(tmp_path, task_data, 2)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials_before"] == 3 and summary["trials_total"] == 5
    after = Ledger(str(tmp_path / "out" / "ledger")).read().sort_values("trial")
    assert sorted(after["trial"]) == [0, 1, 2, 3, 4]
    assert set(after["status"]) <= {"complete", "pruned"}
    assert after["run_id"].is_unique
    pd.testing.assert_frame_equal(after.head(3).reset_index(drop=True), before)
    import optuna

    study = optuna.load_study(study_name="tiny-rte",
                              storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert len(study.trials) == 5
    lrs = [t.params["lr"] for t in study.trials]
    assert len(set(lrs)) == 5  # the resumed sampler does not replay the first trials

    # the report reads the same ledger
    assert main(["sweep-report", "--ledger", str(tmp_path / "out" / "ledger"),
                 "--out", str(tmp_path / "report")]) == 0
    for name in ("table.csv", "report.md", "best_configs.png", "factor_effects.png"):
        assert os.path.getsize(tmp_path / "report" / name) > 0
    table = pd.read_csv(tmp_path / "report" / "table.csv")
    assert len(table) == (after["status"] == "complete").sum() >= 3  # later ones may be pruned
    assert table["dev_metric"].is_monotonic_decreasing

    # a factor some runs did not sample (NaN in the ledger) is its own "-" group in the plots
    from distiller.autodistiller.cli import sweep_report

    mixed = after.assign(status="complete", inter_loss=["mse", "mi", "mse", "mi", "mi"],
                         mi_alpha=[np.nan, 0.1, np.nan, 0.9, 0.1])
    paths = sweep_report(mixed, str(tmp_path / "report-nan"))
    assert os.path.getsize(paths["effects"]) > 0


def test_bad_epochs_are_pruned_and_recorded(tmp_path, task_data):
    from distiller.autodistiller.features import HashingEncoder, compute_features, load_task_records
    from distiller.autodistiller.space import load_space
    from distiller.autodistiller.sweep import SweepOptions, run_sweep

    argv = sweep_argv(tmp_path, task_data, 1)
    train, dev, _ = load_task_records(task_data, "rte")
    feats = compute_features(train, dev, encoder=HashingEncoder())
    opts = SweepOptions(space=load_space(argv[2]), task="rte", cache=str(tmp_path / "cache"),
                        out_dir=str(tmp_path / "out"), trials=8, features=feats.to_row(),
                        teacher="t", teacher_fingerprint="fp", trainer=f"{__name__}:fake_train",
                        startup_trials=8, seed=3)
    summary = run_sweep(opts)
    assert summary["trials_total"] == 8
    df = Ledger(opts.ledger_path).read()
    pruned = df[df["status"] == "pruned"]
    assert summary["states"].get("pruned", 0) == len(pruned) >= 1
    assert (pruned["epochs_run"] < 3).all() and pruned["dev_metric"].notna().all()
    assert pruned["dev_metric"].max() < df.loc[df["status"] == "complete", "dev_metric"].max()


def test_failed_trials_are_ledger_rows_and_exit_nonzero(tmp_path, task_data, monkeypatch,
                                                        capsys):
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "1")
    assert main(sweep_argv(tmp_path, task_data, 2)) == 1
    df = Ledger(str(tmp_path / "out" / "ledger")).read()
    assert list(df["status"]) == ["failed", "failed"]
    assert df["dev_metric"].isna().all() and df["ratio"].isna().all()


def test_parallel_workers_share_the_study(tmp_path, task_data, capsys):
    assert main(sweep_argv(tmp_path, task_data, 2, "--jobs", "2")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["trials_total"] >= 2
    df = Ledger(str(tmp_path / "out" / "ledger")).read()
    assert len(df) == summary["trials_total"] and df["trial"].is_unique


def test_bad_space_file_is_a_clear_cli_error(tmp_path, task_data, capsys):
    argv = sweep_argv(tmp_path, task_data, 1)
    (tmp_path / "space.yaml").write_text("params: {inter_loss: [l1]}\n")
    shutil.copy(tmp_path / "space.yaml", tmp_path / "bad.yaml")
    argv[2] = str(tmp_path / "bad.yaml")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "distiller sweep: error:" in err and \
        "params.inter_loss: got 'l1'; expected one of" in err


def fake_train_no_hook(config):
    """A trainer with no per-epoch hook (like distiller.distill_train.train.train today)."""
    return fake_train(config)


def test_trainer_without_epoch_hook_reports_afterwards_and_never_prunes_finished(tmp_path,
                                                                                 task_data):
    import optuna

    from distiller.autodistiller.features import HashingEncoder, compute_features, load_task_records
    from distiller.autodistiller.space import load_space
    from distiller.autodistiller.sweep import SweepOptions, run_sweep

    argv = sweep_argv(tmp_path, task_data, 1)
    train, dev, _ = load_task_records(task_data, "rte")
    opts = SweepOptions(space=load_space(argv[2]), task="rte", cache=str(tmp_path / "cache"),
                        out_dir=str(tmp_path / "out"), trials=6,
                        features=compute_features(train, dev, encoder=HashingEncoder()).to_row(),
                        trainer=f"{__name__}:fake_train_no_hook", startup_trials=6, seed=3)
    summary = run_sweep(opts)
    assert summary["states"] == {"complete": 6}
    df = Ledger(opts.ledger_path).read()
    assert (df["status"] == "complete").all() and (df["epochs_run"] == 3).all()
    study = optuna.load_study(study_name=opts.name, storage=f"sqlite:///{opts.db_path}")
    assert all(sorted(t.intermediate_values) == [0, 1, 2] for t in study.trials)


def test_three_trials_with_the_real_trainer_and_a_real_cache(tmp_path, cache_f32, teacher_dir):
    """`distiller sweep` through argv with distiller.distill_train.train.train on a real teacher
    cache (tiny random BERT teacher, 48 SST-2 rows): every trial trains, every row is complete."""
    from distiller.builders.cache.store import TeacherCache

    data = tmp_path / "sst2"
    data.mkdir()
    for split, n in (("train", 48), ("dev", 24)):
        with open(f"{GLUE}/SST-2/{split}.tsv", encoding="utf-8") as fh:
            (data / f"{split}.tsv").write_text("".join(next(fh) for _ in range(n + 1)))
    space = tmp_path / "space.yaml"
    space.write_text(f"""
name: real
params:
  mapping: [skip, last]
  inter_loss: [none, mse]
  lr: {{low: 1.0e-4, high: 1.0e-3, log: true}}
  student: ["{teacher_dir}"]
fixed: {{student_init: truncate, student_num_layers: 2, epochs: 2, batch_size: 16,
        progress: false, device: cpu}}
""")
    out = tmp_path / "out"
    assert main(["sweep", "--space", str(space), "--task", "sst2", "--cache", cache_f32,
                 "--task-data", str(data), "--trials", "3", "--out", str(out),
                 "--encoder", "hashing"]) == 0
    df = Ledger(str(out / "ledger")).read()
    assert len(df) == 3 and list(df.columns) == list(COLUMNS)
    assert set(df["status"]) <= {"complete", "pruned"} and (df["status"] == "complete").sum() >= 2
    assert (df["teacher_fingerprint"] == TeacherCache.open(cache_f32).spec.fingerprint).all()
    done = df[df["status"] == "complete"]
    assert done["teacher_metric"].notna().all()
    assert np.allclose(done["ratio"], done["dev_metric"] / done["teacher_metric"])
    assert (done["epochs_run"] == 2).all() and (done["metric_name"] == "accuracy").all()
    for _, row in df.iterrows():
        assert os.path.exists(os.path.join(json.loads(row["config_json"])["run_dir"],
                                           "config.json"))


def test_python_m_distiller_reaches_the_sweep_commands(tmp_path, task_data):
    """`python -m distiller sweep` (what a script or a sweep runs as a subprocess) registers
    autodistiller's commands and reports a bad space in one line, exit 2."""
    import subprocess
    import sys

    argv = sweep_argv(tmp_path, task_data, 1)
    (tmp_path / "space.yaml").write_text("params: {student: [s]}\nfixed: {epoch: 3}\n")
    proc = subprocess.run([sys.executable, "-m", "distiller", *argv], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "distiller sweep: error:" in proc.stderr
    assert "unknown trainer settings under 'fixed': 'epoch' (did you mean 'epochs'?)" in \
        proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sweep_builds_the_corpus_variants_its_space_needs(tmp_path, task_data, teacher_dir):
    """augmentation x mixup choices the cache lacks are built through the pipeline, scoring
    only new texts; a second call finds nothing missing."""
    from distiller.autodistiller.space import SearchSpace
    from distiller.autodistiller.corpora import build_missing_corpora, needed_corpora
    from distiller.pipelines.build import BuildOptions, build_distill_set
    from distiller.builders.cache.store import TeacherCache

    cache = str(tmp_path / "cache")
    train = os.path.join(task_data, "train.tsv")
    first = build_distill_set(BuildOptions(input=train, task="rte", teacher=teacher_dir,
                                           cache=cache, max_length=64, workers=1,
                                           progress=False))
    space = SearchSpace.from_dict({"params": {"augmentation": ["none", "eda_swap:0.3"],
                                              "mixup": [False, True]}})
    wanted = [c for _, _, c in needed_corpora(space, "rte")]
    assert wanted[0] == "rte-train" and len(set(wanted)) == 4
    built = build_missing_corpora(space, task="rte", cache=cache, train_file=train,
                                  teacher=teacher_dir)
    assert len(built) == 2  # one build per augmentation choice, with its mixup pairs
    assert set(wanted) <= set(TeacherCache.open(cache).corpora())
    assert all(b["cache_hits"] >= first["unique_keys"] for b in built)
    assert built[0]["newly_scored"] == (built[0]["unique_keys"] - first["unique_keys"]
                                        + built[0]["mixup_unique_keys"])
    assert build_missing_corpora(space, task="rte", cache=cache, train_file=train,
                                 teacher=teacher_dir) == []
    named = SearchSpace.from_dict({"params": {"augmentation": ["corpus:nowhere"]}})
    with pytest.raises(ValueError, match="nowhere"):
        build_missing_corpora(named, task="rte", cache=cache, train_file=train,
                              teacher=teacher_dir)
