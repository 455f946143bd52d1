"""Teacher.score_mixed follows the interpolation contract (docs/cache.md, "Mixup rows")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distiller.builders import CacheReader, TeacherCache, mixup_key


def _by_length(teacher, rows):
    toks = teacher.tokenize(rows)
    order = sorted(range(len(rows)), key=lambda i: len(toks[i][0]))
    return [rows[i] for i in order], [toks[i] for i in order]


def test_lambda_one_equals_plain_forward_of_the_longer(tiny_teacher, sst2_rows):
    rows, _ = _by_length(tiny_teacher, sst2_rows[:20])
    short, long_ = rows[0], rows[-1]
    mixed = tiny_teacher.score_mixed([(long_, short, 1.0)])[0]
    plain = tiny_teacher.score([long_])[0]
    np.testing.assert_allclose(mixed["logits"], plain["logits"], atol=1e-5)
    for l in plain["hidden"]:
        np.testing.assert_allclose(mixed["hidden"][l], plain["hidden"][l], atol=1e-4)
    assert mixed["key"] == mixup_key(plain["key"], tiny_teacher.score([short])[0]["key"], 1.0)


def test_interpolation_matches_a_manual_forward(tiny_teacher, sst2_rows, rte_rows):
    rows, toks = _by_length(tiny_teacher, sst2_rows[:20])
    (a, ta), (b, tb) = (rows[2], toks[2]), (rows[-2], toks[-2])
    lam = 0.3
    out = tiny_teacher.score_mixed([(a, b, lam), (b, a, 0.7), (rte_rows[0], a, 0.5)])
    length = max(len(ta[0]), len(tb[0]))
    ids_a = torch.zeros(1, length, dtype=torch.long)
    ids_b = torch.zeros(1, length, dtype=torch.long)
    ids_a[0, :len(ta[0])] = torch.from_numpy(ta[0].astype(np.int64))
    ids_b[0, :len(tb[0])] = torch.from_numpy(tb[0].astype(np.int64))
    model = tiny_teacher.model
    with torch.no_grad():
        emb = model.get_input_embeddings()
        x = lam * emb(ids_a) + (1 - lam) * emb(ids_b)
        ref = model(inputs_embeds=x, attention_mask=torch.ones(1, length, dtype=torch.long),
                    token_type_ids=torch.zeros(1, length, dtype=torch.long))
    np.testing.assert_allclose(out[0]["logits"], ref.logits[0].numpy(), atol=1e-5)
    assert out[0]["hidden"][2].shape == (length, tiny_teacher.hidden_size)
    assert out[0]["key"] != out[1]["key"]                    # order and lambda matter
    assert out[0]["mix"]["lam"] == 0.3 and len(out[0]["mix"]["input_ids_j"]) == length
    pair_types = out[2]["token_type_ids"]
    assert pair_types.max() == 1 and len(pair_types) == len(out[2]["input_ids"])


def test_mixed_outputs_are_cacheable(tmp_path, tiny_teacher, sst2_rows):
    rows = sst2_rows[:6]
    out = tiny_teacher.score_mixed([(rows[i], rows[i + 1], 0.25) for i in range(5)])
    cache = TeacherCache.create(str(tmp_path / "mix"), tiny_teacher.spec("float32"))
    cache.add(out)
    got = CacheReader(cache.path).get(out[3]["key"])
    np.testing.assert_array_equal(got["hidden"][1].numpy(), out[3]["hidden"][1])
    with pytest.raises(ValueError, match="lambda"):
        tiny_teacher.score_mixed([(rows[0], rows[1], 1.5)])
