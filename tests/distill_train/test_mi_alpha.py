"""MI-alpha: the bound against a direct reference, its two ends, and a Gaussian with known MI."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distiller.distill_train.mi_alpha import (MIAlphaLoss, MLPCritic, TransformerCritic,
                                              interpolated_bound)


def _reference(scores, log_q, alpha):
    """Direct loops over Poole et al.'s I_alpha with in-batch negatives
    (scores[i, j] = f(x_j, y_i))."""
    f = scores.double().numpy()
    q = np.exp(log_q.double().numpy())
    b = f.shape[0]

    def d(i, left_out):  # alpha * leave-one-out mean + (1 - alpha) * q(y_i)
        m = np.mean([math.exp(f[i, k]) for k in range(b) if k != left_out])
        return alpha * m + (1 - alpha) * q[i]

    joint = np.mean([f[i, i] - math.log(d(i, j)) for i in range(b) for j in range(b) if i != j])
    marg = np.mean([math.exp(f[i, j]) / d(i, i) for i in range(b) for j in range(b) if i != j])
    return 1 + joint - marg


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_bound_matches_direct_computation(alpha):
    g = torch.Generator().manual_seed(0)
    scores = 2 * torch.randn(6, 6, generator=g)
    log_q = torch.randn(6, generator=g)
    got = interpolated_bound(scores, log_q, alpha).item()
    assert got == pytest.approx(_reference(scores, log_q, alpha), rel=1e-5, abs=1e-5)


def test_ends_alpha_0_is_tuba_and_alpha_1_ignores_the_baseline():
    g = torch.Generator().manual_seed(1)
    scores = torch.randn(5, 5, generator=g)
    log_q = torch.randn(5, generator=g, requires_grad=True)
    # alpha = 0: NWJ/TUBA with baseline q: 1 + E[f(x,y) - log q(y)] - E[e^f(x',y) / q(y)].
    f, q = scores.double(), log_q.detach().double().exp()
    off = ~torch.eye(5, dtype=torch.bool)
    tuba = 1 + (f.diagonal() - q.log()).mean() - (f.exp() / q[:, None])[off].mean()
    assert interpolated_bound(scores, log_q, 0.0).item() == pytest.approx(tuba.item(), rel=1e-6)
    # alpha = 1: the baseline has no effect at all (no 0 * inf, no NaN gradients).
    scores.requires_grad_(True)
    val = interpolated_bound(scores, log_q, 1.0)
    val.backward()
    assert torch.isfinite(val) and torch.isfinite(scores.grad).all()
    assert log_q.grad is None or torch.all(log_q.grad == 0)
    other = interpolated_bound(scores, log_q.detach() + 100.0, 1.0)
    assert other.item() == pytest.approx(val.item())
    # alpha = 1 never exceeds log of the batch size by more than the finite-sample slack.
    big = interpolated_bound(50 * torch.eye(5), torch.zeros(5), 1.0).item()
    assert big <= math.log(5) + 1.0


def test_validation():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MIAlphaLoss(MLPCritic(4, 4), alpha=1.5)
    with pytest.raises(ValueError, match="square"):
        interpolated_bound(torch.zeros(3, 2), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="divisible"):
        TransformerCritic(30, 32, heads=8)


def test_transformer_critic_scores_batch_by_batch_and_ignores_padding():
    torch.manual_seed(0)
    critic = TransformerCritic(16, 24, heads=8, ff=32)
    x, y = torch.randn(3, 5, 16), torch.randn(3, 5, 24)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    scores, log_q = critic(x, y, mask)
    assert scores.shape == (3, 3) and log_q.shape == (3,)
    x2, y2 = x.clone(), y.clone()
    x2[0, 3:] = 99.0
    y2[2, 2:] = -99.0
    s2, q2 = critic(x2, y2, mask)
    torch.testing.assert_close(scores, s2)
    torch.testing.assert_close(log_q, q2)


def _gaussian(batch, dim, rho, gen):
    x = torch.randn(batch, dim, generator=gen)
    y = rho * x + math.sqrt(1 - rho * rho) * torch.randn(batch, dim, generator=gen)
    return x[:, None], y[:, None]                    # [B, 1, dim]: one "token", the [CLS]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_estimate_rises_towards_true_mi_and_stays_below(alpha):
    dim, rho, batch = 2, 0.8, 64
    true_mi = -dim / 2 * math.log(1 - rho * rho)     # 1.02 nats
    torch.manual_seed(0)
    loss_fn = MIAlphaLoss(MLPCritic(dim, dim, hidden=32), alpha)
    opt = torch.optim.Adam(loss_fn.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, 1)

    def estimate():
        eval_gen = torch.Generator().manual_seed(123)
        with torch.no_grad():
            return float(np.mean([-loss_fn(*_gaussian(batch, dim, rho, eval_gen), mask).item()
                                  for _ in range(20)]))

    history = [estimate()]
    for step in range(1, 401):
        loss = loss_fn(*_gaussian(batch, dim, rho, gen), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            history.append(estimate())
    assert history[0] < 0.3 * true_mi
    assert history[-1] > 0.6 * true_mi, history
    assert history[-1] > history[1] - 0.1, history            # rises (within noise)
    assert max(history) < true_mi + 0.1, (history, true_mi)   # a lower bound within noise
