"""Data-parallel training on CPU with the gloo backend (torch.distributed, 2 processes started by
PyTorch's elastic launcher, as `distiller train --nproc 2` and torchrun start them).

The same global batch (1 process x 8 rows, 2 processes x 4 rows) gives the same loss curve within
a tolerance, not bit for bit: each rank pads its own 4 rows (other matrix shapes, other summation
order inside the kernels) and the gradients of the two halves are summed by an all-reduce, not
inside one backward pass, so the last bits differ (measured: at most ~1e-7 relative). To make the
comparison meaningful the student has no dropout (ranks draw their own masks, so with dropout the
curves differ by sampling, not by error) and the losses are means over examples (KL, gold CE),
which the rank weights make exact for the uneven last batch (43 rows: 8, ..., 3 = 1 + 2).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
from distiller.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-4   # relative, per logged step loss (measured differences ~1e-7)


@pytest.fixture(scope="module")
def no_dropout_student(tmp_path_factory, teacher_dir):
    path = str(tmp_path_factory.mktemp("student"))
    for name in os.listdir(teacher_dir):
        shutil.copy(os.path.join(teacher_dir, name), path)
    with open(os.path.join(path, "config.json")) as fh:
        cfg = json.load(fh)
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    return path


def _config(run_dir, cache, student, batch_size):
    return TrainConfig(task="sst2", cache=cache, train_corpus="sst2-train", dev_corpus="sst2-dev",
                       student=student, student_init="truncate", student_num_layers=2,
                       pred_loss="kl", w_gold=0.5, epochs=2, batch_size=batch_size, lr=1e-3,
                       limit_train=43, save_every_steps=3, log_every=1, device="cpu",
                       progress=False, seed=5, run_dir=str(run_dir))


def _curve(run_dir):
    """step -> loss from metrics.jsonl (a step logged again after a resume: the later one)."""
    out, events = {}, []
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        for line in fh:
            record = json.loads(line)
            events.append(record["event"])
            if record["event"] == "step":
                out[record["global_step"]] = record["loss"]
    return out, events


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, cache_f32, no_dropout_student):
    """The reference: 1 process, batches of 8 (result, step -> loss)."""
    one = train(_config(tmp_path_factory.mktemp("one"), cache_f32, no_dropout_student, 8))
    return one, _curve(one.run_dir)[0]


def _argv(cfg, cache, student):
    """`distiller train` arguments for a config (cache, corpora, student and task as flags)."""
    argv = ["train", "--cache", cache, "--train-corpus", "sst2-train", "--dev-corpus",
            "sst2-dev", "--student", student, "--task", "sst2"]
    for key, value in cfg.to_dict().items():
        if key not in ("task", "cache", "train_corpus", "dev_corpus", "student", "dev_file",
                       "mode") and value is not None:
            argv += ["--set", f"{key}={json.dumps(value)}"]
    return argv


@pytest.mark.slow
def test_two_gloo_ranks_follow_one_process_and_resume(tmp_path, cache_f32, no_dropout_student,
                                                      one_process, capsys):
    from distiller.distill_train.distributed import RankFailed, run_ranks
    from tests.distill_train.ddp_entry import killed_run

    one, curve_one = one_process
    two_cfg = _config(tmp_path / "two", cache_f32, no_dropout_student, 4)
    # 2 ranks, stopped at step 10 (mid epoch 2, after the checkpoint of step 9); the failure
    # is reported as one line naming a rank and its error ...
    with pytest.raises(RankFailed, match=r"^rank [01] of 2 failed: Killed: killed at step 10$"):
        run_ranks(killed_run, (two_cfg.to_dict(), 10), 2)
    # ... then resumed through the command line, as a user would
    assert main(_argv(two_cfg, cache_f32, no_dropout_student) + ["--nproc", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)

    curve_two, events = _curve(two_cfg.run_dir)
    assert sorted(curve_one) == sorted(curve_two) == list(range(1, 13))  # 6 global batches x 2
    for step, loss in curve_one.items():
        assert curve_two[step] == pytest.approx(loss, rel=TOLERANCE), step
    # rank 0 alone wrote the log: one start, one resume, two epochs
    assert events.count("start") == 1 and events.count("resume") == 1
    assert events.count("epoch") == 2
    assert printed["best_epoch"] == one.best_epoch
    assert printed["best_dev"]["accuracy"] == pytest.approx(one.best_dev["accuracy"])
    for name in ("result.json", "best_model/config.json", "checkpoint.pt"):
        assert os.path.exists(os.path.join(two_cfg.run_dir, name)), name


@pytest.mark.slow
def test_torchrun_starts_the_same_run(tmp_path, cache_f32, no_dropout_student, one_process):
    """The real torchrun (every process a rank already): the same curve, one result printed."""
    one, curve_one = one_process
    cfg = _config(tmp_path / "torchrun", cache_f32, no_dropout_student, 4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "distiller"] + _argv(cfg, cache_f32, no_dropout_student)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get(
        "PYTHONPATH")])), OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["best_epoch"] == one.best_epoch   # printed once, by rank 0
    curve, events = _curve(cfg.run_dir)
    assert sorted(curve) == sorted(curve_one) and events.count("start") == 1
    worst = max(abs(curve[k] - v) / abs(v) for k, v in curve_one.items())
    assert worst <= TOLERANCE
    print(f"largest relative step-loss difference, 2 ranks vs 1 process: {worst:.1e}")


def test_rank_slices_cover_each_global_batch_once_with_weights_that_average_to_its_mean():
    from distiller.distill_train.distributed import DistContext, rank_slice

    for n in (8, 3, 1):  # a full global batch of 2 x 4, an uneven last one, one row for two
        chunk = list(range(n))
        parts = [rank_slice(chunk, DistContext(rank=r, world_size=2)) for r in range(2)]
        real = [rows for rows, weight in parts if weight > 0]
        assert sum(real, []) == chunk
        # DDP averages (weight x rank mean); the weights make that the global batch's mean
        per_example = [float(i * i) for i in chunk]
        mean = sum(sum(per_example[r] for r in rows) / len(rows) * w for rows, w in parts) / 2
        assert mean == pytest.approx(sum(per_example) / n)


def test_loader_workers_leave_the_global_rng_alone():
    """A DataLoader draws its workers' seed from the global RNG unless given a generator: with
    loader workers (a GPU's default) dropout would shift and a resumed run differ."""
    import torch

    from distiller.distill_train.data import Batches
    from distiller.distill_train.distributed import DistContext, RankBatches

    batches = Batches([{"i": i} for i in range(20)], lambda rows: [r["i"] for r in rows],
                      batch_size=4, shuffle=True, seed=1)
    for workers in (0, 2):
        state = torch.get_rng_state()
        got = list(RankBatches(batches, DistContext(), torch.device("cpu"),
                               workers=workers).epoch(0, skip=1))
        assert len(got) == 4 and torch.equal(torch.get_rng_state(), state), workers


def test_loader_workers_give_the_batches_of_the_prefetch_path(cache_f32, tmp_path):
    """The DataLoader path (worker processes forked with the cache reader; pinned memory on a
    GPU) yields the same padded batches, in the same order, as the trainer's own path."""
    import torch

    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.reader import CacheReader
    from distiller.distill_train.data import Batches, cache_fetcher
    from distiller.distill_train.distributed import DistContext, RankBatches

    rows = TeacherCache.open(cache_f32).read_corpus("sst2-train")
    fetch = cache_fetcher(CacheReader(cache_f32, layers=[0, 2]), layers=[0, 2])
    batches = Batches(rows, fetch, batch_size=5, shuffle=True, seed=1, prefetch=True)
    plain = list(RankBatches(batches, DistContext(), torch.device("cpu")).epoch(1, skip=2))
    loader = list(RankBatches(batches, DistContext(), torch.device("cpu"), workers=2).epoch(
        1, skip=2))
    assert len(plain) == len(loader) == len(batches) - 2
    for (rows_a, a, wa), (rows_b, b, wb) in zip(plain, loader):
        assert rows_a == rows_b and wa == wb == 1.0 and sorted(a) == sorted(b)
        for key in a:
            if isinstance(a[key], dict):
                assert all(torch.equal(a[key][l], b[key][l]) for l in a[key])
            else:
                assert torch.equal(a[key], b[key])
