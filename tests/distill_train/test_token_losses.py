"""The token-level losses (distill_train/token_losses.py) against dense references computed from
full logits on small vocabularies; the sampled estimator's unbiasedness, and top-k's bias."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from distiller.builders.cache.sparse_tokens import parse_token_spec, sample_tokens, topk_tokens
from distiller.builders.cache.token_columns import (decode_samples, decode_topk, encode_samples,
                                                    encode_topk)
from distiller.common.errors import UsageError
from distiller.distill_train.token_losses import (gold_lm_loss, mix_token_losses, pad_samples,
                                                  pad_topk, sampled_kd_loss, topk_kd_loss)


def _randn(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _dense(student, teacher, t=1.0, kind="kl", mask=None):
    """The dense loss per valid position, mean, x t^2, in float64."""
    lp = torch.log_softmax(teacher.double() / t, -1)
    lq = torch.log_softmax(student.double() / t, -1)
    term = lp.exp() * (lp - lq) if kind == "kl" else -(lp.exp() * lq)
    per = torch.where(lp > float("-inf"), term, torch.zeros_like(term)).sum(-1)   # 0 log 0 = 0
    if mask is not None:
        per = per[mask]
    return per.mean() * t * t


def _exact_topk(teacher, k):
    """ids, float32 log-probabilities and log tail of the top k, without float16 storage."""
    logp = torch.log_softmax(teacher.double(), -1)
    top, ids = logp.topk(k, dim=-1)
    tail = torch.logsumexp(logp.scatter(-1, ids, float("-inf")), -1)
    return ids, top.float(), tail.float()


# --- top-k -------------------------------------------------------------------------------------

@pytest.mark.parametrize("t", [1.0, 2.5])
@pytest.mark.parametrize("kind", ["kl", "soft_ce"])
def test_topk_with_k_equal_to_v_is_the_dense_loss_and_gradient(t, kind):
    teacher, V = _randn(2, 5, 11, seed=1, scale=2.0), 11
    student = _randn(2, 5, V, seed=2).requires_grad_()
    ids, lp, tail = _exact_topk(teacher, V)
    got = topk_kd_loss(student, ids, lp, tail, temperature=t, kind=kind)
    dense_student = student.detach().double().requires_grad_()
    want = _dense(dense_student, teacher, t, kind)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    got.backward()
    want.backward()
    torch.testing.assert_close(student.grad.double(), dense_student.grad, rtol=1e-4, atol=1e-6)
    stored = topk_tokens(teacher.reshape(-1, V), V)        # through float16 storage
    b = pad_topk([stored], V)
    near = topk_kd_loss(student.detach().reshape(1, -1, V), b.ids, b.logprobs, b.log_tail,
                        b.mask, temperature=t, kind=kind)
    assert near.item() == pytest.approx(want.item(), rel=2e-3)


def _bucket_reference(student, ids, logprobs, log_tail, t, kind):
    """The documented definition, position by position in float64: both sides' K + 1 buckets
    (the K ids, then the rest as one), each bucket's log-probability / t, renormalised."""
    out = []
    for z, i, lp, lt in zip(student.double().numpy(), ids.numpy(), logprobs.double().numpy(),
                            log_tail.double().numpy()):
        lse = np.log(np.exp(z - z.max()).sum()) + z.max()
        rest = np.delete(z, i)
        s = np.append(z[i] - lse, np.log(np.exp(rest - lse).sum()))
        u = np.append(lp, lt)
        p = np.exp(u / t) / np.exp(u / t).sum()
        q = np.exp(s / t) / np.exp(s / t).sum()
        out.append((p * np.log(p / q)).sum() if kind == "kl" else -(p * np.log(q)).sum())
    return float(np.mean(out)) * t * t


@pytest.mark.parametrize("t", [1.0, 3.0, 0.5])
@pytest.mark.parametrize("kind", ["kl", "soft_ce"])
def test_topk_with_k_below_v_is_the_bucketed_reference(t, kind):
    teacher, student = _randn(6, 12, seed=3, scale=2.0), _randn(6, 12, seed=4)
    ids, lp, tail = _exact_topk(teacher, 3)
    got = topk_kd_loss(student, ids, lp, tail, temperature=t, kind=kind)
    assert got.item() == pytest.approx(_bucket_reference(student, ids, lp, tail, t, kind),
                                       rel=1e-5)
    # and from the stored (float16) form: the same definition on the stored values
    st = topk_tokens(teacher, 3)
    got16 = topk_kd_loss(student, torch.from_numpy(st.ids.astype(np.int64)),
                         torch.from_numpy(st.logprobs), torch.from_numpy(st.log_tail),
                         temperature=t, kind=kind)
    ref16 = _bucket_reference(student, torch.from_numpy(st.ids.astype(np.int64)),
                              torch.from_numpy(st.logprobs.astype(np.float32)),
                              torch.from_numpy(st.log_tail), t, kind)
    assert got16.item() == pytest.approx(ref16, rel=1e-5)


def test_topk_masked_positions_reach_neither_loss_nor_gradient():
    teacher, V = _randn(2, 4, 9, seed=5, scale=2.0), 9
    student = _randn(2, 4, V, seed=6).requires_grad_()
    mask = torch.tensor([[True, True, False, False], [True, False, True, False]])
    ids, lp, tail = _exact_topk(teacher, 4)
    ids, lp, tail = ids.clone(), lp.clone(), tail.clone()
    ids[~mask], lp[~mask], tail[~mask] = -1, float("nan"), float("nan")   # padding garbage
    loss = topk_kd_loss(student, ids, lp, tail, mask, temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert torch.all(student.grad[~mask] == 0) and torch.all(student.grad[mask].abs().sum(-1) > 0)
    ids2, lp2, tail2 = _exact_topk(teacher[mask], 4)
    alone = topk_kd_loss(student.detach()[mask], ids2, lp2, tail2, temperature=2.0)
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)
    per = topk_kd_loss(student.detach(), ids, lp, tail, mask, temperature=2.0, reduction="none")
    assert per.shape == mask.shape and torch.all(per[~mask] == 0)
    assert per[mask].mean().item() == pytest.approx(loss.item(), rel=1e-6)
    none = topk_kd_loss(student, ids, lp, tail, torch.zeros_like(mask))
    none.backward()
    assert none.item() == 0.0


def test_topk_with_a_teacher_tail_of_no_mass_has_no_nan():
    teacher = _randn(3, 8, seed=7)
    teacher[:, 3:] = float("-inf")                  # all of the teacher's mass in 3 tokens
    st = topk_tokens(teacher, 5)                    # 2 kept tokens of log-probability -inf
    assert np.all(st.log_tail == -np.inf)
    student = _randn(3, 8, seed=8).requires_grad_()
    b = pad_topk([st], 5)
    loss = topk_kd_loss(student[None], b.ids, b.logprobs, b.log_tail, b.mask, temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    at1 = topk_kd_loss(student[None], b.ids, b.logprobs, b.log_tail, b.mask)
    assert at1.item() == pytest.approx(_dense(student.detach(), teacher).item(), rel=2e-3)


def test_a_padded_batch_from_the_arrow_column_gives_the_dense_loss():
    V, spec = 10, parse_token_spec("topk:10")
    lengths = [3, 1, 0, 2]
    teachers = [_randn(n, V, seed=10 + i, scale=2.0) for i, n in enumerate(lengths)]
    records = decode_topk(encode_topk([topk_tokens(t, V) for t in teachers], spec, V), spec, V)
    b = pad_topk(records, V, length=4)
    assert b.ids.shape == (4, 4, V) and b.mask.sum().item() == 6
    student = _randn(4, 4, V, seed=20)
    got = topk_kd_loss(student, b.ids, b.logprobs, b.log_tail, b.mask)
    padded_teacher = torch.zeros(4, 4, V)
    for i, t in enumerate(teachers):
        padded_teacher[i, :len(t)] = t
    assert got.item() == pytest.approx(_dense(student, padded_teacher, mask=b.mask).item(),
                                       rel=2e-3)
    with pytest.raises(UsageError, match="padded length"):
        pad_topk(records, V, length=2)


def test_bad_shapes_and_settings_are_refused():
    s = _randn(2, 6)
    ids, lp, tail = _exact_topk(_randn(2, 6, seed=1), 2)
    with pytest.raises(UsageError, match="do not fit"):
        topk_kd_loss(s, ids, lp, tail[:1])
    with pytest.raises(UsageError, match="temperature"):
        topk_kd_loss(s, ids, lp, tail, temperature=0.0)
    with pytest.raises(UsageError, match="kind"):
        sampled_kd_loss(s, ids, torch.ones(2, 2), lp, kind="mse")
    with pytest.raises(UsageError, match="reduction"):
        topk_kd_loss(s, ids, lp, tail, reduction="sum")
    with pytest.raises(UsageError, match="mask"):
        topk_kd_loss(s, ids, lp, tail, torch.ones(3, dtype=torch.bool))


# --- sampled -----------------------------------------------------------------------------------

def _estimate(student, teacher, n, seed, kind="kl", t=1.0, naive=False):
    b = pad_samples([sample_tokens(teacher, n, seed)])
    counts = (b.counts > 0).float() if naive else b.counts   # naive: counts ignored (biased)
    return sampled_kd_loss(student[None], b.ids, counts, b.logprobs, b.mask, kind=kind,
                           temperature=t).item()


def test_sampled_loss_at_t1_is_the_written_formula():
    teacher, student = _randn(2, 7, seed=30, scale=2.0), _randn(2, 7, seed=31)
    rec = sample_tokens(teacher, 5, 3)
    b = pad_samples([rec])
    got = sampled_kd_loss(student[None], b.ids, b.counts, b.logprobs, b.mask)
    lq = torch.log_softmax(student.double(), -1).numpy()
    off, want = rec.offsets(), []
    for p in range(2):
        ids = rec.ids[off[p]:off[p + 1]].astype(int)
        w = rec.counts[off[p]:off[p + 1]] / 5.0
        want.append((w * (rec.logprobs[off[p]:off[p + 1]].astype(float) - lq[p, ids])).sum())
    assert got.item() == pytest.approx(np.mean(want), rel=1e-5)


def test_the_mean_of_sampled_estimates_approaches_the_dense_loss_and_top_k_does_not():
    """2000 records (seeds) of 12 draws per position: the mean of their estimates lies within 4
    standard errors (observed) of the dense loss, KL and cross-entropy, so an estimator biased
    by more would fail; a deliberately biased estimate (counts ignored) does fail on the same
    draws, and top-2 on the same example is off by far more than that."""
    teacher, student = _randn(3, 25, seed=40, scale=2.5), _randn(3, 25, seed=41)
    b = pad_samples([sample_tokens(teacher, 12, seed) for seed in range(2000)])
    many = student.expand(2000, 3, 25)
    for kind in ("kl", "soft_ce"):
        dense = _dense(student, teacher, kind=kind).item()

        def mean_and_se(counts):
            est = sampled_kd_loss(many, b.ids, counts, b.logprobs, b.mask, kind=kind,
                                  reduction="none").double().mean(-1).numpy()  # one per record
            return est.mean(), est.std(ddof=1) / np.sqrt(len(est))

        mean, se = mean_and_se(b.counts)
        assert abs(mean - dense) < 4 * se, (kind, mean, dense, se)
        naive, naive_se = mean_and_se((b.counts > 0).float())
        assert abs(naive - dense) > 4 * naive_se, (kind, naive, dense, naive_se)
        ids, lp, tail = _exact_topk(teacher, 2)
        top2 = topk_kd_loss(student, ids, lp, tail, kind=kind).item()
        assert abs(top2 - dense) > 10 * se, (kind, top2, dense, se)


@pytest.mark.parametrize("t", [2.0, 0.7])
def test_sampled_loss_at_another_temperature_is_consistent(t):
    teacher, student = _randn(2, 15, seed=50, scale=1.5), _randn(2, 15, seed=51)
    dense = _dense(student, teacher, t).item()
    assert _estimate(student, teacher, 40000, 9, t=t) == pytest.approx(dense, rel=0.03)
    assert _estimate(student, teacher, 40000, 9, "soft_ce", t=t) == pytest.approx(
        _dense(student, teacher, t, "soft_ce").item(), rel=0.03)


def test_sampled_loss_respects_the_mask_and_gives_gradients():
    V, spec = 12, parse_token_spec("sample:6")
    teachers = [_randn(n, V, seed=60 + n, scale=2.0) for n in (3, 1)]
    records = decode_samples(encode_samples([sample_tokens(t, 6, i) for i, t in
                                             enumerate(teachers)], spec, V), spec, V)
    b = pad_samples(records)
    assert b.ids.shape[:2] == (2, 3) and b.mask.tolist() == [[True] * 3, [True, False, False]]
    student = _randn(2, 3, V, seed=70).requires_grad_()
    ids, counts, lps = b.ids.clone(), b.counts.clone(), b.logprobs.clone()
    ids[1, 1:], counts[1, 1:], lps[1, 1:] = -5, 3.0, float("nan")        # padding garbage
    loss = sampled_kd_loss(student, ids, counts, lps, b.mask, temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    assert torch.all(student.grad[1, 1:] == 0) and student.grad[b.mask].abs().sum() > 0
    alone = [sampled_kd_loss(student.detach()[i:i + 1, :n], b.ids[i:i + 1, :n],
                             b.counts[i:i + 1, :n], b.logprobs[i:i + 1, :n], temperature=2.0)
             for i, n in ((0, 3), (1, 1))]
    assert loss.item() == pytest.approx((3 * alone[0].item() + alone[1].item()) / 4, rel=1e-5)


# --- gold LM loss and the mix ------------------------------------------------------------------

def test_gold_lm_loss_ignores_minus_100_and_shifts_for_a_causal_lm():
    logits = _randn(2, 5, 7, seed=80).requires_grad_()
    labels = torch.tensor([[1, -100, 3, 6, -100], [-100, -100, 0, 2, 2]])
    keep = labels != -100
    want = -torch.log_softmax(logits.detach(), -1)[keep].gather(-1, labels[keep][:, None]).mean()
    assert gold_lm_loss(logits, labels).item() == pytest.approx(want.item(), rel=1e-6)
    shifted = gold_lm_loss(logits, labels, shift=True)
    assert shifted.item() == pytest.approx(F.cross_entropy(
        logits.detach()[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1)).item(), rel=1e-6)
    none = gold_lm_loss(logits, torch.full_like(labels, -100))
    none.backward()
    assert none.item() == 0.0 and torch.all(logits.grad == 0)
    with pytest.raises(UsageError, match="labels"):
        gold_lm_loss(logits, labels[:, :3])


def test_mixing_weights():
    kd, gold = torch.tensor(2.0), torch.tensor(5.0)
    assert mix_token_losses(kd, gold, w_kd=0.5, w_gold=2.0).item() == 11.0
    assert mix_token_losses(kd, None, w_kd=1.0, w_gold=0.0).item() == 2.0
    assert mix_token_losses(None, gold, w_kd=0.0, w_gold=1.0).item() == 5.0
    for kw in ({"w_kd": 0.0, "w_gold": 0.0}, {"w_kd": -1.0}, {"w_kd": float("nan")}):
        with pytest.raises(UsageError, match="w_"):
            mix_token_losses(kd, gold, **kw)
    with pytest.raises(UsageError, match="not computed"):
        mix_token_losses(kd, None, w_kd=1.0, w_gold=1.0)
