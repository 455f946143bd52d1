"""Token-level rows -> padded batches (distill_train/token_data.py) and the inputs made from text
(token_inputs.py): padding, masks, the forms a row may hold its distribution in, refusals."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from distiller.builders.cache.sparse_tokens import SampledTokens, TopKTokens
from distiller.common.errors import UsageError
from distiller.distill_train.token_data import TokenRows, collate_tokens, token_item
from distiller.distill_train.token_inputs import causal_input, masked_input


def _topk_row(key, ids, positions, k=3, seed=0):
    rng = np.random.default_rng(seed)
    P = len(positions)
    top = TopKTokens(ids=rng.integers(0, 50, (P, k)).astype(np.uint16),
                     logprobs=np.sort(-rng.random((P, k)), axis=1)[:, ::-1].astype(np.float16),
                     log_tail=-rng.random(P).astype(np.float32) - 1)
    return {"key": key, "input_ids": np.array(ids, np.int32),
            "positions": np.array(positions, np.int32),
            "targets": np.array([ids[p] + 100 for p in positions], np.int32),
            "token_topk": top}


def test_collate_pads_inputs_positions_targets_and_top_k_with_a_mask():
    rows = [_topk_row("a", [2, 5, 6, 7, 3], [1, 3]), _topk_row("b", [2, 9, 3], [2], seed=1)]
    b = collate_tokens([token_item(r) for r in rows], spec="topk:3", pad_id=0)
    assert b["input_ids"].tolist() == [[2, 5, 6, 7, 3], [2, 9, 3, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert b["token_type_ids"].tolist() == [[0] * 5] * 2
    assert b["positions"].tolist() == [[1, 3], [2, 0]]
    assert b["position_mask"].tolist() == [[True, True], [True, False]]
    assert b["targets"].tolist() == [[105, 107], [103, -100]]
    assert b["teacher_ids"].shape == (2, 2, 3) and b["teacher_ids"].dtype == torch.long
    for i, r in enumerate(rows):
        P = len(r["positions"])
        top = r["token_topk"]
        assert b["teacher_ids"][i, :P].tolist() == top.ids.astype(int).tolist()
        np.testing.assert_array_equal(b["teacher_logprobs"][i, :P].numpy(),
                                      top.logprobs.astype(np.float32))
        np.testing.assert_array_equal(b["teacher_log_tail"][i, :P].numpy(), top.log_tail)
    assert b["teacher_ids"][1, 1].tolist() == [0, 0, 0] and float(b["teacher_log_tail"][1, 1]) == 0
    # inputs only: no teacher fields
    assert "teacher_ids" not in collate_tokens([token_item(r) for r in rows])


def test_collate_pads_sampled_rows_given_per_position():
    row = {"key": "s", "input_ids": [4, 5, 6, 7], "positions": [0, 1, 2], "targets": [5, 6, 7],
           "ids": [[3, 9], [4], [1, 2, 8]], "counts": [[4, 2], [6], [1, 1, 4]],
           "logprobs": [[-0.5, -1.5], [-0.1], [-2.0, -2.5, -0.3]]}
    other = {"key": "t", "input_ids": [4, 5], "positions": [0], "targets": [5],
             "token_sample": SampledTokens(sizes=np.array([1]), ids=np.array([7], np.uint16),
                                           counts=np.array([6], np.uint16),
                                           logprobs=np.array([-0.2], np.float16))}
    b = collate_tokens([token_item(row), token_item(other)], spec="sample:6", pad_id=0)
    assert b["teacher_ids"].shape == (2, 3, 3)
    assert b["teacher_ids"][0].tolist() == [[3, 9, 0], [4, 0, 0], [1, 2, 8]]
    assert b["teacher_counts"][0].sum(-1).tolist() == [6, 6, 6]
    assert b["teacher_counts"][1].sum(-1).tolist() == [6, 0, 0]
    assert b["position_mask"].tolist() == [[True] * 3, [True, False, False]]
    assert float(b["teacher_logprobs"][0, 2, 2]) == pytest.approx(-0.3)


def test_token_item_reads_flat_top_k_fields_like_the_decoded_form():
    row = _topk_row("a", [2, 5, 6, 7, 3], [1, 3])
    top = row.pop("token_topk")
    flat = dict(row, ids=top.ids, logprobs=top.logprobs, log_tail=top.log_tail)
    a = collate_tokens([token_item(dict(row, token_topk=top))], spec="topk:3")
    b = collate_tokens([token_item(flat)], spec="topk:3")
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("change,match", [
    (dict(positions=[1, 5]), "do not fit"),
    (dict(targets=[1]), "do not fit"),
    (dict(token_type_ids=[0, 0]), "do not fit"),
    (dict(targets=None), "has no 'targets'"),
])
def test_token_item_refuses_rows_that_do_not_fit_together(change, match):
    row = _topk_row("bad", [2, 5, 6, 7, 3], [1, 3])
    with pytest.raises(UsageError, match=match):
        token_item(dict(row, **change))


def test_a_distribution_over_other_positions_or_of_the_other_form_is_refused():
    row = _topk_row("x", [2, 5, 6, 7, 3], [1, 3])
    short = _topk_row("y", [2, 5, 6], [1])["token_topk"]
    with pytest.raises(UsageError, match="covers 1 positions, the row has 2"):
        token_item(dict(row, token_topk=short))
    with pytest.raises(UsageError, match="not a sample cache"):
        collate_tokens([token_item(row)], spec="sample:4")
    with pytest.raises(UsageError, match="another K"):
        collate_tokens([token_item(row)], spec="topk:4")


def test_token_rows_is_a_dataset_a_data_loader_batches():
    rows = [_topk_row(str(i), list(range(2, 4 + i)), [1], seed=i) for i in range(5)]
    loader = torch.utils.data.DataLoader(TokenRows(rows), batch_size=2,
                                         collate_fn=functools.partial(collate_tokens,
                                                                      spec="topk:3"))
    batches = list(loader)
    assert [b["input_ids"].shape for b in batches] == [(2, 3), (2, 5), (1, 6)]
    assert all(b["position_mask"].all() for b in batches)


def test_masked_input_is_seeded_never_masks_specials_and_keeps_the_originals():
    ids = list(range(10, 40))
    special = [1] + [0] * 28 + [1]
    a = masked_input(ids, special, mask_id=4, mask_prob=0.3, seed=7)
    assert [x.tolist() for x in a.values()] == \
        [x.tolist() for x in masked_input(ids, special, mask_id=4, mask_prob=0.3,
                                          seed=7).values()]
    assert a["positions"].tolist() != masked_input(ids, special, mask_id=4, mask_prob=0.3,
                                                   seed=8)["positions"].tolist()
    pos = a["positions"]
    assert 0 < len(pos) < 28 and 0 not in pos and 29 not in pos
    assert (a["input_ids"][pos] == 4).all() and a["targets"].tolist() == [ids[p] for p in pos]
    untouched = np.setdiff1d(np.arange(30), pos)
    assert a["input_ids"][untouched].tolist() == [ids[p] for p in untouched]


def test_causal_input_predicts_each_next_token():
    c = causal_input([5, 6, 7, 8])
    assert c["positions"].tolist() == [0, 1, 2] and c["targets"].tolist() == [6, 7, 8]
    assert causal_input([5])["positions"].tolist() == []
