"""Mixup, student side (issue 8): the student's interpolation of its own word embeddings matches
the teacher's cached scoring of the same pair, lam = 1 reproduces the plain record, and the gold
term uses mixed one-hot labels."""
from __future__ import annotations

import pytest
import torch

from distiller.distill_train.data import cache_fetcher
from distiller.distill_train.forward import mixed_targets, student_forward


@pytest.fixture(scope="module")
def mixed_cache(tmp_path_factory, teacher_dir, sst2_small):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    train, _ = sst2_small
    teacher = Teacher(TeacherConfig(model=teacher_dir, max_length=64, device="cpu",
                                    num_threads=1)).load()
    path = tmp_path_factory.mktemp("mix") / "cache"
    cache = TeacherCache.create(str(path), teacher.spec("float32"))
    recs = train[:8]
    # Pair 2 (lam = 1) has a partner no longer than itself (checked in the lam = 1 test).
    pairs = [(recs[i], recs[i + 1], lam) for i, lam in zip(range(0, 8, 2), (0.3, 0.8, 1.0, 0.0))]
    mixed = teacher.score_mixed(pairs)
    cache.add(teacher.score(recs))
    cache.add([{k: v for k, v in m.items() if k != "mix"} for m in mixed])
    rows = []
    for (a, b, lam), m in zip(pairs, mixed):
        rows.append({"id": f"{a['id']}#mixup#0", "key": m["key"], "label": a["label"],
                     "mix_key_a": m["mix"]["key_i"], "mix_key_b": m["mix"]["key_j"],
                     "mix_lam": lam, "mix_label_b": b["label"]})
    plain = [{"id": r["id"], "key": teacher.cache_key(r["text_a"], None), "label": r["label"]}
             for r in recs]
    return str(path), rows, plain


def _model(teacher_dir):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()


def test_student_interpolation_matches_cached_teacher_scoring(teacher_dir, mixed_cache):
    """With the teacher itself as the student, the student-side mixed forward must reproduce the
    teacher's cached outputs on the mixed pairs (same interpolation, masks, token types)."""
    from distiller.builders.cache.reader import CacheReader

    path, rows, plain = mixed_cache
    reader = CacheReader(path)
    layers = sorted(reader.spec.layers)
    batch = cache_fetcher(reader, pad_id=0, layers=layers)(rows + plain[:2])
    assert "mix_ids_b" in batch
    with torch.no_grad():
        out = student_forward(_model(teacher_dir), batch, hidden=True)
    torch.testing.assert_close(out.logits, batch["teacher_logits"], atol=1e-5, rtol=1e-5)
    mask = batch["attention_mask"].bool()
    for layer in layers:
        torch.testing.assert_close(out.hidden_states[layer][mask],
                                   batch["teacher_hidden"][layer][mask], atol=1e-4, rtol=1e-4)


def test_lam_one_reproduces_the_plain_record(teacher_dir, mixed_cache):
    from distiller.builders.cache.reader import CacheReader

    path, rows, plain = mixed_cache
    reader = CacheReader(path)
    fetch = cache_fetcher(reader, pad_id=0)
    row = rows[2]                       # lam = 1.0
    a, b = reader.get(row["mix_key_a"]), reader.get(row["mix_key_b"])
    # The fixture's pair has a partner no longer than i, so the mixed mask is i's own mask.
    assert len(b["input_ids"]) <= len(a["input_ids"])
    model = _model(teacher_dir)
    with torch.no_grad():
        mixed = student_forward(model, fetch([row])).logits
        alone = student_forward(model, fetch([{"key": row["mix_key_a"], "label": 0}])).logits
    torch.testing.assert_close(mixed, alone, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(reader.get(row["key"])["logits"], a["logits"], atol=1e-5, rtol=0)


def test_mixed_gold_targets_and_training_on_mixup_rows(tmp_path, teacher_dir, mixed_cache):
    y = mixed_targets(torch.tensor([0, 1]), torch.tensor([1, 1]), torch.tensor([0.3, 0.5]), 2)
    torch.testing.assert_close(y, torch.tensor([[0.3, 0.7], [0.0, 1.0]]))
    r = mixed_targets(torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([0.25]), 1)
    torch.testing.assert_close(r, torch.tensor([2.5]))

    from distiller.builders.cache.reader import CacheReader

    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.train import train

    path, rows, plain = mixed_cache
    cfg = TrainConfig(task="sst2", cache=path, train_corpus="unused", student=teacher_dir,
                      student_init="truncate", student_num_layers=2, inter_loss="mse",
                      w_gold=1.0, epochs=1, batch_size=4, progress=False,
                      run_dir=str(tmp_path / "r"))
    steps = []
    train(cfg, provider=CacheReader(path), train_rows=plain + rows, dev_rows=plain,
          on_step=lambda s, p: steps.append(p))
    assert len(steps) == 3 and all(p["gold"] > 0 and p["inter"] > 0 for p in steps)
