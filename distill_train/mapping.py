"""Layer mappings: which student hidden state is distilled towards which teacher hidden state.

Index 0 is the embeddings output and index i the output of layer i (HF ``hidden_states`` order),
for the student (N layers) and the teacher (M layers) alike. A mapping is a list of
(student_index, teacher_index) pairs. EMD has no fixed pairs: `emd_flow` weights all pairs
(student 1..N x teacher 1..M) by the optimal transport over a detached cost matrix, and the
embeddings pair (0, 0) is added as its own term.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

from distiller.common.errors import UsageError

__all__ = ["skip_mapping", "last_mapping", "explicit_mapping", "layer_pairs", "emd_flow"]

Pairs = List[Tuple[int, int]]


def _check(n_student: int, n_teacher: int) -> None:
    if n_student < 1 or n_teacher < 1 or n_student > n_teacher:
        raise UsageError(f"layer mapping needs 1 <= student layers <= teacher layers, got "
                         f"student {n_student}, teacher {n_teacher}")


def skip_mapping(n_student: int, n_teacher: int) -> Pairs:
    """i <-> floor(i*M/N) for i = 0..N: 4 layers from 12 gives 0,3,6,9,12."""
    _check(n_student, n_teacher)
    return [(i, (i * n_teacher) // n_student) for i in range(n_student + 1)]


def last_mapping(n_student: int, n_teacher: int) -> Pairs:
    """Layers 1..N <-> the last N teacher layers (M-N+i), embeddings 0 <-> 0: 4 from 12 gives
    0,9,10,11,12 (mapping the student's embeddings to a teacher layer would make no sense)."""
    _check(n_student, n_teacher)
    return [(0, 0)] + [(i, n_teacher - n_student + i) for i in range(1, n_student + 1)]


def explicit_mapping(pairs: Sequence[Sequence[int]], n_student: int, n_teacher: int) -> Pairs:
    """User-given pairs, checked against both models' depths."""
    out = []
    for pair in pairs:
        s, t = int(pair[0]), int(pair[1])
        if not (0 <= s <= n_student and 0 <= t <= n_teacher):
            raise UsageError(f"mapping pair ({s}, {t}) out of range: student hidden states are "
                             f"0..{n_student}, teacher hidden states 0..{n_teacher}")
        out.append((s, t))
    return out


def layer_pairs(kind: str, n_student: int, n_teacher: int,
                pairs: Optional[Sequence[Sequence[int]]] = None) -> Pairs:
    """The fixed pairs of a mapping kind; for "emd" all student x teacher layer pairs plus (0,0)."""
    if kind == "skip":
        return skip_mapping(n_student, n_teacher)
    if kind == "last":
        return last_mapping(n_student, n_teacher)
    if kind == "explicit":
        if not pairs:
            raise UsageError("mapping 'explicit' needs mapping_pairs")
        return explicit_mapping(pairs, n_student, n_teacher)
    if kind == "emd":
        return [(0, 0)] + [(i, j) for i in range(1, n_student + 1)
                           for j in range(1, n_teacher + 1)]
    raise UsageError(f"unknown mapping {kind!r}: expected skip, last, emd or explicit")


def emd_flow(cost: np.ndarray, student_weights: Optional[np.ndarray] = None,
             teacher_weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Earth mover's flow F [N, M] minimising sum F*cost with row sums = student weights and
    column sums = teacher weights (uniform 1/N, 1/M by default; each set sums to 1).

    Solved as a linear program (scipy HiGHS); `cost` must be detached (numpy) -- the flow is a
    constant weighting, gradients flow through the cost only (BERT-EMD).
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or not np.all(np.isfinite(cost)):
        raise UsageError(f"emd_flow needs a finite 2-D cost matrix, got shape {cost.shape}")
    n, m = cost.shape
    ws = np.full(n, 1.0 / n) if student_weights is None else np.asarray(student_weights, float)
    wt = np.full(m, 1.0 / m) if teacher_weights is None else np.asarray(teacher_weights, float)
    ws, wt = ws / ws.sum(), wt / wt.sum()
    from scipy.optimize import linprog

    a_eq = np.zeros((n + m, n * m))
    for i in range(n):
        a_eq[i, i * m:(i + 1) * m] = 1.0
    for j in range(m):
        a_eq[n + j, j::m] = 1.0
    b_eq = np.concatenate([ws, wt])
    # One equality is redundant (both sides sum to 1); HiGHS handles that.
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if not res.success:
        raise RuntimeError(f"EMD linear program failed: {res.message}")
    return np.clip(res.x.reshape(n, m), 0.0, None)
