"""Each loss against a direct (loop-by-loop) reference computation, and total-loss mixing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distiller.distill_train.inter_losses import (AttentionLoss, CosineLoss, HiddenCELoss,
                                                  HiddenMSELoss, PKDLoss)
from distiller.distill_train.objective import combine_losses
from distiller.distill_train.pred_losses import GoldLoss, LogitMSELoss, SoftTargetLoss


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.fixture
def hidden():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, 4, generator=g)
    t = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    return s, t, mask


def _tokens(s, t, mask):
    for b in range(s.shape[0]):
        for i in range(s.shape[1]):
            if mask[b, i]:
                yield s[b, i].double().numpy(), t[b, i].double().numpy()


@pytest.mark.parametrize("kind", ["kl", "soft_ce"])
@pytest.mark.parametrize("tau,t2", [(1.0, True), (2.0, True), (3.0, False)])
def test_soft_target_loss(kind, tau, t2):
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    got = SoftTargetLoss(tau, kind=kind, scale_by_t2=t2)(s, t).item()
    ref = 0.0
    for b in range(4):
        ps, pt = _softmax(s[b].double().numpy() / tau), _softmax(t[b].double().numpy() / tau)
        ref += sum(pt[c] * ((math.log(pt[c]) if kind == "kl" else 0) - math.log(ps[c]))
                   for c in range(3))
    ref = ref / 4 * (tau * tau if t2 else 1)
    assert got == pytest.approx(ref, rel=1e-5)


def test_soft_target_is_zero_for_equal_logits_and_validates():
    x = torch.randn(5, 3)
    assert SoftTargetLoss(2.0)(x, x).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        SoftTargetLoss(0.0)
    with pytest.raises(ValueError, match="kind"):
        SoftTargetLoss(1.0, kind="js")
    with pytest.raises(ValueError, match="shapes differ"):
        SoftTargetLoss()(torch.zeros(2, 3), torch.zeros(2, 2))


def test_logit_mse_and_gold():
    s, t = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    assert LogitMSELoss()(s, t).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
    y = torch.tensor([1, 0])
    ref = -(math.log(_softmax(np.array([1.0, 2.0]))[1]) + math.log(_softmax(np.array([0, -1.]))[0]))
    gold = GoldLoss("single_label_classification")
    assert gold(s, y).item() == pytest.approx(ref / 2, rel=1e-6)
    soft = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # one-hot as soft targets: same value
    assert gold(s, soft).item() == pytest.approx(ref / 2, rel=1e-6)
    reg = GoldLoss("regression")
    assert reg(torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 2.0])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="problem_type"):
        GoldLoss("multi")


def test_hidden_ce(hidden):
    s, t, mask = hidden
    ref = [-(_softmax(tt) * np.log(_softmax(ss))).sum() for ss, tt in _tokens(s, t, mask)]
    assert HiddenCELoss()(s, t, mask).item() == pytest.approx(np.mean(ref), rel=1e-5)


def test_hidden_mse_ignores_padding(hidden):
    s, t, mask = hidden
    ref = [((ss - tt) ** 2).mean() for ss, tt in _tokens(s, t, mask)]
    assert HiddenMSELoss()(s, t, mask).item() == pytest.approx(np.mean(ref), rel=1e-5)
    t2 = t.clone()
    t2[1, 3:] = 1e6  # padding may hold anything
    assert HiddenMSELoss()(s, t2, mask).item() == pytest.approx(np.mean(ref), rel=1e-5)


def test_cosine(hidden):
    s, t, mask = hidden
    ref = [1 - ss @ tt / np.linalg.norm(ss) / np.linalg.norm(tt) for ss, tt in _tokens(s, t, mask)]
    assert CosineLoss()(s, t, mask).item() == pytest.approx(np.mean(ref), rel=1e-5)


def test_pkd(hidden):
    s, t, mask = hidden
    ref = []
    for b in range(3):
        a, c = s[b, 0].double().numpy(), t[b, 0].double().numpy()
        ref.append(((a / np.linalg.norm(a) - c / np.linalg.norm(c)) ** 2).sum())
    assert PKDLoss()(s, t, mask).item() == pytest.approx(np.mean(ref), rel=1e-5)


@pytest.mark.parametrize("kind", ["mse", "kl"])
def test_attention_losses(kind, hidden):
    _, _, mask = hidden
    g = torch.Generator().manual_seed(2)
    s = torch.randn(3, 2, 5, 5, generator=g).softmax(-1)
    t = torch.randn(3, 2, 5, 5, generator=g).softmax(-1)
    vals = []
    for b in range(3):
        n = int(mask[b].sum())
        for h in range(2):
            for q in range(n):
                ss, tt = s[b, h, q, :n].double().numpy(), t[b, h, q, :n].double().numpy()
                if kind == "mse":
                    vals.extend(((ss - tt) ** 2).tolist())
                else:
                    vals.append((tt * (np.log(tt) - np.log(ss))).sum())
    assert AttentionLoss(kind)(s, t, mask).item() == pytest.approx(np.mean(vals), rel=1e-5)
    with pytest.raises(ValueError, match="heads"):
        AttentionLoss(kind)(s[:, :1], t, mask)


def test_combine_losses_is_the_weighted_sum():
    p, g = torch.tensor(2.0), torch.tensor(3.0)
    inter = [torch.tensor(1.0), torch.tensor(0.5)]
    assert combine_losses(pred=p, inter=inter, gold=g).item() == pytest.approx(2 + 1.5)
    got = combine_losses(pred=p, inter=inter, gold=g, w_kd=0.5, w_inter=2.0, w_gold=0.1)
    assert got.item() == pytest.approx(0.5 * 2 + 2 * 1.5 + 0.1 * 3)
    nan = torch.tensor(float("nan"))
    assert combine_losses(pred=p, inter=[], gold=nan, w_gold=0.0).item() == 2.0
    with pytest.raises(ValueError, match="no loss term"):
        combine_losses(pred=None, inter=[], gold=None)
