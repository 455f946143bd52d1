"""A step budget (max_steps): the run stops after that many optimizer steps whatever the corpus
size, evaluating at each epoch end and at the last step."""
from __future__ import annotations

import os

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train


def _finetune(tmp_path, teacher_dir, name, **kw):
    from .conftest import SST2

    return train(TrainConfig(task="sst2", mode="finetune",
                             train_file=os.path.join(SST2, "train.tsv"),
                             dev_file=os.path.join(SST2, "dev.tsv"), student=teacher_dir,
                             student_init="truncate", student_num_layers=2, limit_train=32,
                             batch_size=8, max_length=32, progress=False,
                             run_dir=str(tmp_path / name), **kw))


def test_max_steps_cuts_the_last_epoch_short(tmp_path, teacher_dir):
    # 32 rows at batch 8: 4 steps per epoch; 6 steps = one whole epoch and half of a second
    res = _finetune(tmp_path, teacher_dir, "budget", epochs=1, max_steps=6)
    assert [h["global_step"] for h in res.history] == [4, 6]
    assert all("dev" in h for h in res.history)


def test_without_max_steps_epochs_decide(tmp_path, teacher_dir):
    res = _finetune(tmp_path, teacher_dir, "epochs", epochs=2)
    assert [h["global_step"] for h in res.history] == [4, 8]
