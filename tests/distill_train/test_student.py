"""Student construction: truncation keeps the named teacher layers, config students, vocab check."""
from __future__ import annotations

import pytest
import torch

from distiller.distill_train.config import TrainConfig
from distiller.distill_train.student import build_student, check_vocab, truncate_layers


def _cfg(teacher_dir, **kw):
    return TrainConfig(task="sst2", cache="c", train_corpus="t", student=teacher_dir, **kw)


def test_truncated_copy_keeps_the_mapped_layers(teacher_dir):
    teacher, _ = build_student(_cfg(teacher_dir))
    student, tok = build_student(_cfg(teacher_dir, student_init="truncate",
                                      student_layers=(2, 4)))
    assert student.config.num_hidden_layers == 2 and tok is not None
    for mine, theirs in ((0, 1), (1, 3)):
        a = student.bert.encoder.layer[mine].state_dict()
        b = teacher.bert.encoder.layer[theirs].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(student.bert.embeddings.word_embeddings.weight,
                               teacher.bert.embeddings.word_embeddings.weight)
    # student_num_layers picks the layers by the skip mapping: 2 of 4 -> layers 2 and 4.
    skip, _ = build_student(_cfg(teacher_dir, student_init="truncate", student_num_layers=2))
    a, b = skip.state_dict(), student.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if "classifier" not in k)
    ids = torch.tensor([[2, 10, 11, 3]])
    assert student(input_ids=ids).logits.shape == (1, 2)
    with pytest.raises(ValueError, match="increasing, distinct and within 1..4"):
        truncate_layers(teacher, [3, 1])
    with pytest.raises(ValueError, match="within 1..4"):
        truncate_layers(teacher, [5])


def test_student_from_config_and_vocab_mismatch(teacher_dir):
    student, tok = build_student(_cfg(teacher_dir, student_init="config", student_num_layers=3,
                                      student_hidden=24, student_heads=3))
    c = student.config
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == \
        (3, 24, 3, 96)
    assert c.vocab_size == len(tok)
    check_vocab(student, tok, max_token_id=len(tok) - 1)
    with pytest.raises(ValueError, match="token id 600 .* embeds only 600 ids"):
        check_vocab(student, tok, max_token_id=len(tok))
    with pytest.raises(ValueError, match="not divisible"):
        build_student(_cfg(teacher_dir, student_init="config", student_hidden=25,
                           student_heads=4))
