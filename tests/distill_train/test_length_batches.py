"""Length-grouped batches (batching=length): every row once per epoch, reproducible from (seed,
epoch), batches of near-equal length in random order, and runs that train with them."""
from __future__ import annotations

import random

import pytest

from distiller.common.errors import UsageError
from distiller.distill_train.config import TrainConfig
from distiller.distill_train.data import Batches, batch_lengths


def _batches(n=1000, size=16, seed=0, lengths=True):
    rng = random.Random(7)
    rows = [{"i": i, "key": f"k{i}"} for i in range(n)]
    lens = [rng.randint(3, 120) for _ in rows]
    return Batches(rows, lambda chunk: [r["i"] for r in chunk], batch_size=size, shuffle=True,
                   seed=seed, lengths=lens if lengths else None), lens


def _padded(order, lens, size):
    """Tokens a batch sequence computes on (each batch padded to its longest row)."""
    return sum(max(lens[i] for i in order[s:s + size]) * len(order[s:s + size])
               for s in range(0, len(order), size))


def test_each_row_once_per_epoch_reproducible_and_reshuffled():
    grouped, _ = _batches()
    first = grouped.order(0)
    assert sorted(first) == list(range(1000))
    assert grouped.order(0) == first                       # a resume sees the same epoch
    assert grouped.order(1) != first                       # each epoch draws anew
    assert _batches(seed=1)[0].order(0) != first


def test_batches_pad_little_come_in_random_order_longest_first_short_one_last():
    grouped, lens = _batches()
    plain, _ = _batches(lengths=False)
    order, size = grouped.order(0), 16
    real = sum(lens)
    assert _padded(order, lens, size) < 1.1 * real
    assert _padded(plain.order(0), lens, size) > 1.5 * real
    batches = [order[s:s + size] for s in range(0, len(order), size)]
    assert [len(b) for b in batches[:-1]] == [size] * (len(batches) - 1)
    assert len(batches[-1]) == 1000 % size                 # the short batch comes last
    tops = [max(lens[i] for i in b) for b in batches[:-1]]
    assert tops[0] == max(lens)                            # the longest batch first
    assert tops[1:] != sorted(tops[1:]) and tops[1:] != sorted(tops[1:], reverse=True)


def test_skip_resumes_inside_the_same_grouped_epoch():
    grouped, _ = _batches(n=100, size=8)
    whole = list(grouped.epoch(2))
    assert list(grouped.epoch(2, skip=5)) == whole[5:]


def test_lengths_come_from_rows_or_the_provider_and_a_source_without_them_is_refused():
    assert batch_lengths("random", [{"key": "a"}]) is None
    assert batch_lengths("length", [{"input_ids": [1, 2, 3]}, {"input_ids": [4]}]) == [3, 1]

    class Lengths:
        def lengths(self, keys):
            return [len(k) for k in keys]

    assert batch_lengths("length", [{"key": "ab"}, {"key": "c"}], Lengths()) == [2, 1]
    with pytest.raises(UsageError, match="batching=random"):
        batch_lengths("length", [{"key": "a"}], object())
    with pytest.raises(ValueError):
        Batches([{"i": 0}], list, batch_size=2, shuffle=True, lengths=[1, 2])


def test_the_setting_is_checked_and_on_the_command_line():
    assert TrainConfig(task="sst2", cache="c", train_corpus="t", student="s").batching == "random"
    with pytest.raises(UsageError, match="batching"):
        TrainConfig(task="sst2", cache="c", train_corpus="t", student="s",
                    batching="sorted")
    from distiller.cli import build_parser

    args = build_parser().parse_args(["train", "--cache", "c", "--batching", "length"])
    assert args.batching == "length"


def test_a_distillation_run_trains_on_length_grouped_batches(tmp_path, teacher_dir,
                                                             teacher_outputs):
    from distiller.distill_train.train import train

    provider, train_rows, dev_rows = teacher_outputs
    seen = []
    cfg = TrainConfig(task="sst2", cache="unused", train_corpus="train", student=teacher_dir,
                      student_init="truncate", student_num_layers=2, epochs=2, batch_size=8,
                      lr=1e-3, progress=False, log_every=1, run_dir=str(tmp_path / "run"),
                      seed=3, amp="off", batching="length", inter_loss="mse")
    res = train(cfg, provider=provider, train_rows=train_rows, dev_rows=dev_rows,
                on_step=lambda s, p: seen.append(p["loss"]))
    assert len(seen) == 2 * -(-len(train_rows) // 8)
    assert res.best_metric is not None and res.history


def test_a_fine_tuning_run_groups_its_tokenized_rows(teacher_dir):
    import os

    from distiller.distill_train.assemble import assemble

    from .conftest import SST2

    cfg = TrainConfig(task="sst2", mode="finetune", train_file=os.path.join(SST2, "train.tsv"),
                      student=teacher_dir, limit_train=40, batch_size=16, max_length=32,
                      progress=False, batching="length")
    train = assemble(cfg).train
    assert train.lengths == [len(r["input_ids"]) for r in train.rows]
    order = train.order(0)
    assert sorted(order) == list(range(40))


def test_each_rank_reads_one_length_grouped_batch_per_global_batch():
    import torch

    from distiller.distill_train.distributed import DistContext, RankBatches

    grouped, lens = _batches(n=203, size=8)
    single = grouped.order(1)
    ranks = [list(RankBatches(grouped, DistContext(rank=r, world_size=2),
                              torch.device("cpu")).epoch(1)) for r in (0, 1)]
    for g, (mine0, mine1) in enumerate(zip(*ranks)):
        rows0, rows1 = [r["i"] for r in mine0[0]], [r["i"] for r in mine1[0]]
        if len(rows0) + len(rows1) == 16:                  # a full global batch
            assert rows0 == single[16 * g:16 * g + 8] and rows1 == single[16 * g + 8:16 * g + 16]
            for rows in (rows0, rows1):                    # one sorted window's slice
                assert max(lens[i] for i in rows) - min(lens[i] for i in rows) < 20


def test_the_key_is_left_out_at_its_default_and_a_changed_batching_is_not_resumed(tmp_path):
    """config.json written before `batching` existed reads as batching=random (such runs still
    resume); a run's batching cannot change on resume, either way."""
    import json

    from distiller.common.errors import UsageError as Refused
    from distiller.distill_train.runlog import check_resumable

    base = dict(task="sst2", cache="c", train_corpus="t", student="s")
    plain, grouped = TrainConfig(**base), TrainConfig(**base, batching="length")
    assert "batching" not in plain.to_dict() and grouped.to_dict()["batching"] == "length"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(plain.to_dict()))   # as written before the key
    check_resumable(str(run), plain.to_dict())
    with pytest.raises(Refused, match="batching"):
        check_resumable(str(run), grouped.to_dict())
    (run / "config.json").write_text(json.dumps(grouped.to_dict()))
    with pytest.raises(Refused, match="batching"):
        check_resumable(str(run), plain.to_dict())
