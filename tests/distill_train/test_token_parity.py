"""Token-level KD from cached sparse rows equals KD against the teacher run online, step by step:
the rows a token-level cache would return (the teacher's distribution at each position in the
top-k or sampled form, through an Arrow column written to Parquet and decoded back) give the
same losses and dev metrics as the same sparse form computed from the live teacher on each
batch (distill_train/token_online.py) — as test_cache_parity.py checks for sentence-level KD."""
from __future__ import annotations

import pytest

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train

from .lm_rows import cached_source


@pytest.mark.parametrize("problem,spec,kind", [("masked_lm", "topk:8", "kl"),
                                               ("masked_lm", "sample:6", "soft_ce"),
                                               ("causal_lm", "topk:8", "soft_ce"),
                                               ("causal_lm", "sample:6", "kl")])
def test_cached_sparse_rows_train_as_the_teacher_online_step_by_step(
        tmp_path, lm_records, mlm_teacher_dir, clm_teacher_dir, problem, spec, kind):
    teacher = mlm_teacher_dir if problem == "masked_lm" else clm_teacher_dir
    train_recs, dev_recs = lm_records
    cached, online, rows = cached_source(teacher, problem, spec, train_recs[:24] + dev_recs[:8])
    cfg = TrainConfig(cache="in-memory", train_corpus="train", dev_corpus="dev", student=teacher,
                      student_init="truncate", student_num_layers=2, pred_loss=kind,
                      temperature=2.0, w_gold=0.5, epochs=2, batch_size=8, lr=1e-3,
                      progress=False, run_dir=str(tmp_path / "cached"))
    from_cache, from_teacher = [], []
    res_c = train(cfg, provider=cached, train_rows=rows[:24], dev_rows=rows[24:],
                  on_step=lambda s, p: from_cache.append(p))
    res_o = train(cfg.replace(run_dir=str(tmp_path / "online")), provider=online,
                  train_rows=rows[:24], dev_rows=rows[24:],
                  on_step=lambda s, p: from_teacher.append(p))
    assert len(from_cache) == len(from_teacher) == 6
    for a, b in zip(from_cache, from_teacher):
        assert a.keys() == b.keys() == {"loss", "pred", "gold"}
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])), (k, a[k], b[k])
    assert len({round(p["loss"], 4) for p in from_cache}) > 1     # the student did move
    assert res_c.history == res_o.history and res_c.best_metric == res_o.best_metric
    assert res_c.teacher_dev == res_o.teacher_dev
