"""A run directory's checkpoint.pt is loaded as data only: a crafted one (a pickle payload that
would create a file) is refused before anything in it runs, a truncated one is one line saying
how to start over, and what the trainer saves holds plain data only."""
from __future__ import annotations

import os

import numpy as np
import pytest

from distiller.cli import main
from distiller.common.checkpoints import load_checkpoint_file, plain_data, save_checkpoint_file
from tests.crafted import MARKER, Payload, assert_live

BASE = ["--task", "sst2", "--train-corpus", "sst2-train", "--epochs", "1", "--batch-size", "8",
        "--no-progress", "--student-init", "truncate", "--student-num-layers", "1",
        "--limit-train", "8"]


@pytest.fixture
def finished_run(tmp_path, cache_f32, teacher_dir):
    """A finished one-epoch run directory (its checkpoint.pt kept) and the argv that made it."""
    run_dir = tmp_path / "run"
    argv = ["train", "--cache", cache_f32, "--student", teacher_dir, "--run-dir", str(run_dir),
            *BASE]
    assert main(argv) == 0
    assert os.path.exists(run_dir / "checkpoint.pt")
    return run_dir, argv


def _error_line(err: str) -> str:
    lines = err.splitlines()  # "resuming from ..." then the error, nothing else
    assert len(lines) == 2 and lines[0].startswith("distiller train: resuming from"), err
    return lines[1]


def test_a_crafted_checkpoint_runs_nothing(finished_run, tmp_path, capsys, monkeypatch):
    import torch

    run_dir, argv = finished_run
    ckpt = str(run_dir / "checkpoint.pt")
    real = torch.load(ckpt, weights_only=True)
    torch.save(dict(real, state=dict(real["state"], note=Payload())), ckpt)
    assert_live(lambda p: torch.load(p, weights_only=False), ckpt, str(tmp_path / "probe"))

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    assert not (tmp_path / MARKER).exists()
    assert line.startswith(f"distiller train: error: {ckpt} is not a checkpoint that loads as "
                           "data only (the unpickler refused: Unsupported global: GLOBAL io.open")
    assert "nothing in it was run" in line and "--set resume=false" in line


def test_a_truncated_checkpoint_is_one_line_and_starting_over_works(finished_run, tmp_path,
                                                                     capsys):
    run_dir, argv = finished_run
    ckpt = run_dir / "checkpoint.pt"
    data = ckpt.read_bytes()
    capsys.readouterr()
    for cut in (len(data) // 2, 0):
        ckpt.write_bytes(data[:cut])
        assert main(argv) == 2
        line = _error_line(capsys.readouterr().err)
        assert line.startswith(f"distiller train: error: {ckpt} is damaged or truncated and "
                               "cannot be resumed (")
        assert line.endswith(f"start the run over with `--set resume=false` (or delete "
                             f"{str(run_dir)!r} or use another run directory)")
    assert main(argv + ["--set", "resume=false"]) == 0  # what the message says works


def test_a_checkpoint_from_another_model_does_not_fit(finished_run, tmp_path, capsys):
    import torch

    run_dir, argv = finished_run
    ckpt = str(run_dir / "checkpoint.pt")
    real = torch.load(ckpt, weights_only=True)
    model = {k: torch.zeros(3) for k in real["model"]}
    torch.save(dict(real, model=model), ckpt)
    capsys.readouterr()
    assert main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"distiller train: error: {ckpt} does not fit this run (")
    assert "size mismatch" in line and line.endswith("or use another run directory)")


def test_the_saved_checkpoint_is_plain_data(tmp_path):
    import torch

    payload = {"state": {"best": np.float64(0.25), "epoch": np.int64(2), "history": [
        {"dev": {"pearson": np.float32(0.5)}}], "pair": (1, None)},
        "rng": torch.get_rng_state(), "table": np.arange(3)}
    plain = plain_data(payload)
    assert type(plain["state"]["best"]) is float and plain["state"]["best"] == 0.25
    assert type(plain["state"]["epoch"]) is int and plain["state"]["pair"] == (1, None)
    assert torch.equal(plain["table"], torch.arange(3))
    path = str(tmp_path / "c.pt")
    save_checkpoint_file(path, payload)
    loaded = load_checkpoint_file(path, keys=["state", "rng"], fix="x")
    assert loaded["state"]["history"][0]["dev"]["pearson"] == 0.5
    assert torch.equal(loaded["rng"], payload["rng"])
    with pytest.raises(ValueError, match=r"lacks \['model'\]\); start over"):
        load_checkpoint_file(path, keys=["state", "model"], fix="start over")
    with pytest.raises(TypeError, match=r"checkpoint\['state'\]\['when'\] is a object"):
        save_checkpoint_file(path, {"state": {"when": object()}})
