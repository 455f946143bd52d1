"""Shared fixtures: real GLUE rows and tiny random models built locally (no downloads)."""
from __future__ import annotations

import pytest

from .augment_testlib import build_tiny_marian, build_tiny_mlm, sst2_sentences


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The test machine has 2 shared cores: one intra-op thread avoids oversubscription."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sentences():
    """200 real SST-2 dev sentences."""
    return sst2_sentences()


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory):
    return build_tiny_mlm(str(tmp_path_factory.mktemp("tiny-mlm")))


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory):
    """Forward and backward tiny translation models (different random weights)."""
    root = tmp_path_factory.mktemp("tiny-marian")
    return (build_tiny_marian(str(root / "fwd"), seed=1),
            build_tiny_marian(str(root / "bwd"), seed=2))
