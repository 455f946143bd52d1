"""Layer mappings: skip, last, explicit, EMD flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from distiller.distill_train.mapping import (emd_flow, explicit_mapping, last_mapping, layer_pairs,
                                   skip_mapping)


def test_skip_4_from_12():
    assert [t for _, t in skip_mapping(4, 12)] == [0, 3, 6, 9, 12]
    assert [s for s, _ in skip_mapping(4, 12)] == [0, 1, 2, 3, 4]
    assert skip_mapping(2, 6) == [(0, 0), (1, 3), (2, 6)]


def test_last_and_explicit():
    assert last_mapping(4, 12) == [(0, 0), (1, 9), (2, 10), (3, 11), (4, 12)]
    assert explicit_mapping([[1, 2], [2, 12]], 2, 12) == [(1, 2), (2, 12)]
    with pytest.raises(ValueError, match="out of range"):
        explicit_mapping([[3, 1]], 2, 12)
    with pytest.raises(ValueError, match="student layers <= teacher"):
        skip_mapping(6, 4)
    assert len(layer_pairs("emd", 2, 3)) == 1 + 6


def test_emd_flow_sums_and_optimality():
    rng = np.random.default_rng(0)
    cost = rng.random((4, 12))
    flow = emd_flow(cost)
    assert flow.shape == (4, 12) and (flow >= 0).all()
    np.testing.assert_allclose(flow.sum(1), 1 / 4, atol=1e-9)
    np.testing.assert_allclose(flow.sum(0), 1 / 12, atol=1e-9)
    # the optimum of the transport linear programme, solved independently, costs the same
    from scipy.optimize import linprog

    n, m = cost.shape
    rows = np.kron(np.eye(n), np.ones(m))            # sum over j of flow[i, j] = 1/n
    cols = np.kron(np.ones(n), np.eye(m))            # sum over i of flow[i, j] = 1/m
    lp = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]),
                 b_eq=np.concatenate([np.full(n, 1 / n), np.full(m, 1 / m)]), bounds=(0, None))
    assert lp.success
    assert (flow * cost).sum() == pytest.approx(lp.fun, abs=1e-9)
    # a known optimum: 2 rows, 2 columns, the cheap diagonal takes all the flow
    np.testing.assert_allclose(emd_flow(np.array([[0.0, 5.0], [4.0, 1.0]])),
                               [[0.5, 0.0], [0.0, 0.5]], atol=1e-9)
    # A cost that is zero on a matching sends all flow there.
    cost = np.ones((3, 3)) - np.eye(3)
    np.testing.assert_allclose(emd_flow(cost), np.eye(3) / 3, atol=1e-9)


def test_emd_objective_gradient_flows_through_cost_only(teacher_dir):
    from distiller.distill_train.config import TrainConfig
    from distiller.distill_train.objective import DistillObjective

    cfg = TrainConfig(task="sst2", cache="c", train_corpus="t", student="s", inter_loss="mse",
                      mapping="emd")
    obj = DistillObjective(cfg, n_student=2, n_teacher=3, student_width=4, teacher_width=4)
    g = torch.Generator().manual_seed(0)
    student = [torch.randn(2, 3, 4, generator=g, requires_grad=True) for _ in range(3)]
    teacher = {j: torch.randn(2, 3, 4, generator=g) for j in range(4)}
    mask = torch.ones(2, 3)
    emb, layers = obj.intermediate(student, teacher, mask)

    def mse(a, b):
        return ((a - b) ** 2).mean().item()

    assert emb.item() == pytest.approx(mse(student[0], teacher[0]), rel=1e-5)
    cost = np.array([[mse(student[i], teacher[j]) for j in range(1, 4)] for i in (1, 2)])
    assert layers.item() == pytest.approx((emd_flow(cost) * cost).sum(), rel=1e-5)
    layers.backward()
    assert student[1].grad is not None and student[0].grad is None
