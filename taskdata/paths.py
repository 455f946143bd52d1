"""Where the project's shared real data lives: ``../shared/data`` beside the repository root
(the environment variable DISTILLER_DATA overrides it). Used by the demo, benchmarks and tests."""
from __future__ import annotations

import os

__all__ = ["shared_data", "REPO_ROOT"]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data(*parts: str) -> str:
    """A path under the shared data directory, e.g. shared_data("glue", "SST-2", "dev.tsv")."""
    root = os.environ.get("DISTILLER_DATA") or os.path.join(os.path.dirname(REPO_ROOT), "shared",
                                                            "data")
    return os.path.join(root, *parts)
