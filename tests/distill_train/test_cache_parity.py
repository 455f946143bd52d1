"""Training from a real cache (builders' Teacher -> TeacherCache -> CacheReader) equals training
with the teacher run online on the same batches, step by step."""
from __future__ import annotations

import pytest

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.train import train


def _online(teacher_dir, cache_path, corpora):
    from distiller.builders.cache.store import TeacherCache
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distiller.distill_train.data import OnlineTeacherProvider
    from .conftest import sst2_records

    cache = TeacherCache.open(cache_path)
    rows = {name: cache.read_corpus(name) for name in corpora}
    records = {r["id"]: r for r in sst2_records("train", 48) + sst2_records("dev", 24)}
    texts = {row["key"]: (records[row["id"]]["text_a"], records[row["id"]]["text_b"])
             for name in corpora for row in rows[name]}
    model = AutoModelForSequenceClassification.from_pretrained(teacher_dir,
                                                               attn_implementation="eager")
    provider = OnlineTeacherProvider(model, AutoTokenizer.from_pretrained(teacher_dir), texts,
                                     max_length=64, attentions=True)
    return provider, rows


@pytest.mark.parametrize("inter,mapping", [("mse", "skip"), ("att_kl", "last")])
def test_cache_equals_online_teacher_step_by_step(tmp_path, teacher_dir, cache_f32, inter,
                                                  mapping):
    cfg = TrainConfig(task="sst2", cache=cache_f32, train_corpus="sst2-train",
                      dev_corpus="sst2-dev", student=teacher_dir, student_init="truncate",
                      student_num_layers=2, inter_loss=inter, mapping=mapping, w_gold=0.5,
                      temperature=2.0, epochs=2, batch_size=8, lr=1e-3, progress=False,
                      run_dir=str(tmp_path / "cached"))
    cached, online = [], []
    res_c = train(cfg, on_step=lambda s, p: cached.append(p))
    provider, rows = _online(teacher_dir, cache_f32, ["sst2-train", "sst2-dev"])
    res_o = train(cfg.replace(run_dir=str(tmp_path / "online")), provider=provider,
                  train_rows=rows["sst2-train"], dev_rows=rows["sst2-dev"],
                  on_step=lambda s, p: online.append(p))
    assert len(cached) == len(online) == 12
    for a, b in zip(cached, online):
        assert a.keys() == b.keys() == {"loss", "pred", "inter", "gold"}
        for k in a:
            assert abs(a[k] - b[k]) <= 1e-5 * max(1.0, abs(b[k])), (k, a[k], b[k])
    assert res_c.best_metric == res_o.best_metric
    assert res_c.teacher_metric == pytest.approx(res_o.teacher_metric)
    assert len(res_c.history) == 2 and "dev" in res_c.history[0]


def test_cache_missing_layers_and_vocab_mismatch_are_clear_errors(tmp_path, teacher_dir,
                                                                  sst2_small):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    train_recs, _ = sst2_small
    path = tmp_path / "nolayers"

    teacher = Teacher(TeacherConfig(model=teacher_dir, max_length=64, device="cpu",
                                    layers=(4,), num_threads=1)).load()
    cache = TeacherCache.create(str(path), teacher.spec("float16"))
    cache.add(teacher.score(train_recs[:8]))
    cache.write_corpus("t", [{"id": r["id"], "key": teacher.cache_key(r["text_a"], None),
                              "label": r["label"]} for r in train_recs[:8]])
    base = dict(task="sst2", cache=str(path), train_corpus="t", student=teacher_dir,
                student_init="truncate", student_num_layers=2, progress=False,
                run_dir=str(tmp_path / "r"))
    with pytest.raises(ValueError, match=r"needs \[0, 2\]"):
        train(TrainConfig(inter_loss="mse", mapping="skip", **base))
    with pytest.raises(ValueError, match="attention maps"):
        train(TrainConfig(inter_loss="att_mse", **base))
    # A student whose vocabulary cannot hold the cache's token ids.
    from transformers import BertConfig, BertForSequenceClassification

    small = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=32,
                                                     num_hidden_layers=1, num_attention_heads=2,
                                                     intermediate_size=32))
    small.save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match="teacher's tokenizer"):
        train(TrainConfig(**dict(base, student=str(tmp_path / "small"),
                                 student_init="pretrained")))


def test_float16_cache_tracks_the_online_run(tmp_path, teacher_dir, cache_f32, sst2_small):
    """A float16 cache stores hidden states to ~1e-3: losses stay within 1% step by step and the
    final dev metric is the float32 (= online) run's within one dev example."""
    from .conftest import build_cache

    train_recs, dev_recs = sst2_small
    cache_f16 = build_cache(tmp_path / "c16", teacher_dir, train_recs, dev_recs,
                            dtype="float16", attentions=False)
    cfg = TrainConfig(task="sst2", cache=cache_f32, train_corpus="sst2-train",
                      dev_corpus="sst2-dev", student=teacher_dir, student_init="truncate",
                      student_num_layers=2, inter_loss="mse", w_gold=0.5, epochs=3,
                      batch_size=8, lr=1e-3, progress=False, run_dir=str(tmp_path / "f32"))
    s32, s16 = [], []
    r32 = train(cfg, on_step=lambda s, p: s32.append(p))
    r16 = train(cfg.replace(cache=cache_f16, run_dir=str(tmp_path / "f16")),
                on_step=lambda s, p: s16.append(p))
    assert len(s32) == len(s16) == 18
    worst = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-3) for a, b in zip(s32, s16) for k in a)
    assert 0 < worst < 1e-2
    one_example = 100.0 / len(dev_recs)
    assert abs(r32.best_metric - r16.best_metric) <= one_example + 1e-9
    print(f"float16 vs float32 cache: worst step loss rel. diff {worst:.2e}, dev accuracy "
          f"{r16.best_metric:.1f} vs {r32.best_metric:.1f}")
