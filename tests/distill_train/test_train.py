"""The loop end to end on a tiny teacher/student: every objective trains, resume equals an
uninterrupted run, fine-tuning from raw text saves a loadable model."""
from __future__ import annotations

import json
import math
import os

import pytest

from distill_train.config import TrainConfig
from distill_train.train import train


def _cfg(tmp_path, teacher_dir, **kw):
    base = dict(task="sst2", cache="unused", train_corpus="train", student=teacher_dir,
                student_init="truncate", student_num_layers=2, epochs=2, batch_size=8,
                lr=1e-3, progress=False, log_every=1, run_dir=str(tmp_path / "run"), seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("inter,mapping", [
    ("mse", "skip"), ("ce", "last"), ("cosine", "emd"), ("pkd", "skip"), ("att_mse", "skip"),
    ("att_kl", "last"), ("mi", "skip")])
def test_each_objective_trains(tmp_path, teacher_dir, teacher_outputs, inter, mapping):
    provider, train_rows, dev_rows = teacher_outputs
    cfg = _cfg(tmp_path, teacher_dir, inter_loss=inter, mapping=mapping, epochs=1,
               critic_heads=4, critic_ff=32, w_gold=0.5)
    steps = []
    res = train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
                on_step=lambda s, p: steps.append(p))
    assert len(steps) == math.ceil(len(train_rows) / 8)
    assert all(math.isfinite(p["loss"]) and "inter" in p and "pred" in p and "gold" in p
               for p in steps)
    assert res.metric_name == "accuracy" and 0 <= res.best_metric <= 100
    assert res.teacher_metric is not None
    assert os.path.exists(os.path.join(res.run_dir, "best_model", "config.json"))
