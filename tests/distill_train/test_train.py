"""The loop end to end on a tiny teacher/student: every objective trains, resume equals an
uninterrupted run, fine-tuning from raw text saves a loadable model."""
from __future__ import annotations

import json
import math
import os
import shutil

import pytest

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train
from distiller.taskdata import builtin_task, read_records
from distiller.taskdata.paths import shared_data


def _cfg(tmp_path, teacher_dir, **kw):
    base = dict(task="sst2", cache="unused", train_corpus="train", student=teacher_dir,
                student_init="truncate", student_num_layers=2, epochs=2, batch_size=8,
                lr=1e-3, progress=False, log_every=1, run_dir=str(tmp_path / "run"), seed=3,
                # float32 on every device: on a GPU `auto` trains under bf16/fp16 autocast
                # (docs/gpu.md), whose rounding is coarser than the loss changes over three
                # epochs of a tiny model and the exact resume comparisons checked here
                amp="off")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("inter,mapping", [
    ("mse", "skip"), ("ce", "last"), ("cosine", "emd"), ("pkd", "skip"), ("att_mse", "skip"),
    ("att_kl", "last"), ("mi", "skip")])
def test_each_objective_trains(tmp_path, teacher_dir, teacher_outputs, inter, mapping):
    """Each objective learns: its loss falls over three epochs of the same batches (the student
    is cut from a different random teacher layer set, so it starts away from the targets), the
    weights move, and the reported best is the best epoch's dev metric."""
    import torch

    provider, train_rows, dev_rows = teacher_outputs
    cfg = _cfg(tmp_path, teacher_dir, inter_loss=inter, mapping=mapping, epochs=3,
               critic_heads=4, critic_ff=32, w_gold=0.5, warmup_ratio=0.0)
    steps = []
    res = train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
                on_step=lambda s, p: steps.append(p))
    per_epoch = math.ceil(len(train_rows) / 8)
    assert len(steps) == 3 * per_epoch
    assert all("inter" in p and "pred" in p and "gold" in p for p in steps)
    first = sum(p["loss"] for p in steps[:per_epoch]) / per_epoch
    last = sum(p["loss"] for p in steps[-per_epoch:]) / per_epoch
    assert last < first, (inter, first, last)
    from transformers import AutoModelForSequenceClassification

    trained = AutoModelForSequenceClassification.from_pretrained(
        os.path.join(res.run_dir, "best_model"))
    start = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    assert not torch.equal(trained.classifier.weight, start.classifier.weight)
    assert res.metric_name == "accuracy"
    assert res.best_metric == max(h["dev"]["accuracy"] for h in res.history)
    assert res.teacher_metric is not None


class _Kill(Exception):
    pass


# (5, 1): the resumed epoch checkpoints again before it ends, so its loss sums must carry the
# part before the kill through a second checkpoint
@pytest.mark.parametrize("kill_at,save_every", [(6, None), (5, 2), (5, 1)])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, teacher_dir, teacher_outputs,
                                                 kill_at, save_every):
    provider, train_rows, dev_rows = teacher_outputs
    kw = dict(inter_loss="mse", w_gold=0.3, epochs=3, grad_accum=2, save_every_steps=save_every)
    full_steps = []
    full = train(_cfg(tmp_path / "a", teacher_dir, **kw), provider=provider,
                 train_rows=train_rows, dev_rows=dev_rows,
                 on_step=lambda s, p: full_steps.append((s, p["loss"])))

    cfg = _cfg(tmp_path / "b", teacher_dir, **kw)

    def kill(step, parts):
        if step == kill_at:
            raise _Kill()

    with pytest.raises(_Kill):
        train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows, on_step=kill)
    # the killed run's directory moved elsewhere resumes from its new place
    shutil.move(cfg.run_dir, str(tmp_path / "moved"))
    cfg = cfg.replace(run_dir=str(tmp_path / "moved"))
    resumed_steps = []
    resumed = train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
                    on_step=lambda s, p: resumed_steps.append((s, p["loss"])))
    # The resumed run redoes only the steps after its last checkpoint, with the same losses.
    first = resumed_steps[0][0]
    assert first == (5 if save_every else 4)  # mid-epoch checkpoint at 4, epoch end at 3
    assert resumed_steps == full_steps[first - 1:]
    assert resumed.best_metric == full.best_metric and resumed.best_epoch == full.best_epoch
    for a, b in zip(resumed.history, full.history):
        assert a["dev"] == b["dev"]
        assert a["train"] == b["train"]  # the same sums, added in the same order
    events = [json.loads(l)["event"] for l in open(os.path.join(cfg.run_dir, "metrics.jsonl"))]
    assert "resume" in events and events.count("epoch") == 3


def test_resume_refuses_a_different_config(tmp_path, teacher_dir, teacher_outputs):
    provider, train_rows, dev_rows = teacher_outputs
    cfg = _cfg(tmp_path, teacher_dir, epochs=1)
    train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows)
    with pytest.raises(ValueError, match="different config.*'lr'"):
        train(cfg.replace(lr=5e-4), provider=provider, train_rows=train_rows, dev_rows=dev_rows)
    # resume=False starts over in the same run_dir: fresh log, the new config saved.
    train(cfg.replace(lr=5e-4, resume=False), provider=provider, train_rows=train_rows,
          dev_rows=dev_rows)
    events = [json.loads(l)["event"] for l in open(os.path.join(cfg.run_dir, "metrics.jsonl"))]
    assert events.count("start") == 1 and events.count("epoch") == 1
    assert json.load(open(os.path.join(cfg.run_dir, "config.json")))["lr"] == 5e-4


def test_same_seed_same_run_and_early_stopping(tmp_path, teacher_dir, teacher_outputs):
    provider, train_rows, dev_rows = teacher_outputs
    runs = []
    for name in ("x", "y"):
        steps = []
        cfg = _cfg(tmp_path / name, teacher_dir, epochs=1, inter_loss="cosine")
        train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
              on_step=lambda s, p: steps.append(p))
        runs.append(steps)
    assert runs[0] == runs[1]
    # lr 0 never improves after the first epoch: patience 1 stops after epoch 2 of 5.
    res = train(_cfg(tmp_path / "es", teacher_dir, epochs=5, lr=1e-12, early_stopping_patience=1),
                provider=provider, train_rows=train_rows, dev_rows=dev_rows)
    assert len(res.history) == 2 and res.best_epoch == 0


def test_student_from_config_and_mixup_rows(tmp_path, teacher_dir, teacher_outputs):
    """A config-built student (other width: learned projection) and rows that are mixup pairs."""
    import torch

    from distiller.distill_train.data import InMemoryProvider

    provider, train_rows, dev_rows = teacher_outputs
    outputs = dict(provider.outputs)
    mixed_rows = []
    for i in range(0, 16, 2):
        a, b = train_rows[i], train_rows[i + 1]
        oa, ob = outputs[a["key"]], outputs[b["key"]]
        n = max(len(oa["input_ids"]), len(ob["input_ids"]))
        key = f"mix-{i}"
        # Stand-in teacher outputs for the interpolated input (only shapes matter here).
        outputs[key] = {"input_ids": oa["input_ids"], "token_type_ids": oa["token_type_ids"],
                        "logits": 0.3 * oa["logits"] + 0.7 * ob["logits"],
                        "hidden": {l: torch.zeros(n, h.shape[-1]) for l, h in oa["hidden"].items()}}
        mixed_rows.append({"id": key, "key": key, "label": a["label"], "mix_key_a": a["key"],
                           "mix_key_b": b["key"], "mix_lam": 0.3, "mix_label_b": b["label"]})
    cfg = _cfg(tmp_path, teacher_dir, student_init="config", student_num_layers=2,
               student_hidden=16, student_heads=2, inter_loss="mse", w_gold=1.0, epochs=1)
    steps = []
    res = train(cfg, provider=InMemoryProvider(outputs), train_rows=train_rows + mixed_rows,
                dev_rows=dev_rows, on_step=lambda s, p: steps.append(p))
    assert len(steps) == math.ceil((len(train_rows) + 8) / 8)
    assert all(math.isfinite(p["loss"]) for p in steps)
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(os.path.join(res.run_dir, "best_model"))
    assert (saved.num_hidden_layers, saved.hidden_size) == (2, 16)


def test_finetune_from_raw_text(tmp_path, teacher_dir):
    from .conftest import SST2

    cfg = TrainConfig(task="sst2", mode="finetune", train_file=os.path.join(SST2, "train.tsv"),
                      dev_file=os.path.join(SST2, "dev.tsv"), student=teacher_dir,
                      limit_train=40, epochs=1, batch_size=16, max_length=32, progress=False,
                      run_dir=str(tmp_path / "ft"))
    res = train(cfg)
    assert res.teacher_metric is None and res.metric_name == "accuracy"
    assert "dev" in res.history[0] and set(res.history[0]["train"]) == {"loss", "gold"}
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(os.path.join(res.run_dir,
                                                                            "best_model"))
    AutoTokenizer.from_pretrained(os.path.join(res.run_dir, "best_model"))
    assert model.config.num_hidden_layers == 4
    saved = json.load(open(os.path.join(res.run_dir, "config.json")))
    assert saved["mode"] == "finetune" and saved["limit_train"] == 40


def test_on_epoch_reports_dev_metric_and_can_stop_the_run(tmp_path, teacher_dir, teacher_outputs):
    provider, train_rows, dev_rows = teacher_outputs
    cfg = _cfg(tmp_path, teacher_dir, epochs=2)
    seen = []

    def prune(epoch, entry):
        seen.append((epoch, entry["dev"]["accuracy"]))
        raise _Kill()

    with pytest.raises(_Kill):
        train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows, on_epoch=prune)
    assert len(seen) == 1 and seen[0][0] == 0
    rest = train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
                 on_epoch=lambda e, entry: seen.append((e, entry["dev"]["accuracy"])))
    assert [e for e, _ in seen] == [0, 1] and len(rest.history) == 2
    assert rest.history[0]["dev"]["accuracy"] == seen[0][1]


def test_regression_task_on_sentence_pairs(tmp_path, tokenizer_dir):
    """STS-B: a 1-output teacher, logit MSE forced, Pearson/Spearman on dev, pairs typed."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .conftest import make_bert
    from distiller.distill_train.data import InMemoryProvider, OnlineTeacherProvider

    stsb = shared_data("glue", "STS-B")
    recs = {split: [r for r in read_records(os.path.join(stsb, f"{split}.tsv"),
                                            builtin_task("stsb"), limit=n)
                    if isinstance(r, dict)] for split, n in (("train", 32), ("dev", 16))}
    tdir = make_bert(str(tmp_path / "teacher"), tokenizer_dir, layers=2, num_labels=1)
    texts = {r["id"]: (r["text_a"], r["text_b"]) for rs in recs.values() for r in rs}
    online = OnlineTeacherProvider(AutoModelForSequenceClassification.from_pretrained(tdir),
                                   AutoTokenizer.from_pretrained(tdir), texts, max_length=64)
    provider = InMemoryProvider(dict(zip(texts, online.get_many(list(texts)))))
    assert any(1 in o["token_type_ids"].tolist() for o in provider.outputs.values())
    rows = {k: [{"id": r["id"], "key": r["id"], "label": r["label"]} for r in v]
            for k, v in recs.items()}
    cfg = TrainConfig(task="stsb", cache="unused", train_corpus="t", student=tdir,
                      student_init="truncate", student_num_layers=1, inter_loss="mse",
                      w_gold=1.0, epochs=1, batch_size=8, progress=False,
                      run_dir=str(tmp_path / "run"))
    assert cfg.pred_loss == "mse"
    res = train(cfg, provider=provider, train_rows=rows["train"], dev_rows=rows["dev"])
    assert res.metric_name == "pearson" and set(res.history[0]["dev"]) == {"pearson", "spearman"}
    assert res.best_metric == res.history[0]["dev"]["pearson"]
    assert res.teacher_metric == res.teacher_dev["pearson"] != res.best_metric


def test_prefetched_batches_equal_plain_ones_and_no_fetch_outlives_the_loop():
    import threading

    from distiller.distill_train.data import Batches

    rows = [{"i": i} for i in range(23)]
    calls = []

    def fetch(chunk):
        calls.append(threading.current_thread().name)
        return [r["i"] for r in chunk]

    plain = Batches(rows, fetch, batch_size=5, shuffle=True, seed=1)
    ahead = Batches(rows, fetch, batch_size=5, shuffle=True, seed=1, prefetch=True)
    assert list(ahead.epoch(2, skip=1)) == list(plain.epoch(2, skip=1))
    assert any(name.startswith("distiller-prefetch") for name in calls)
    it = ahead.epoch(0)
    next(it)
    it.close()  # leaving early: the pool is shut down, its thread gone
    assert not any(t.name.startswith("distiller-prefetch") for t in threading.enumerate())


def test_objective_gradients_are_clipped_apart_from_the_students():
    """A critic with huge gradients must not shrink the student's step (the MI-alpha collapse)."""
    import torch

    from distiller.distill_train.optim import clip_apart

    student, critic = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    for p in student.parameters():
        p.grad = torch.full_like(p, 0.1)   # norm 0.1 * sqrt(10) < 1: left as it is
    for p in critic.parameters():
        p.grad = torch.full_like(p, 50.0)  # far over 1
    before = [p.grad.clone() for p in student.parameters()]
    clip_apart((list(student.parameters()), list(critic.parameters())), 1.0)
    assert all(torch.equal(a, p.grad) for a, p in zip(before, student.parameters()))
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in critic.parameters()))
    assert abs(float(norm) - 1.0) < 1e-4
    clip_apart(([torch.nn.Parameter(torch.zeros(2))], []), 1.0)  # no gradients, empty group: fine
