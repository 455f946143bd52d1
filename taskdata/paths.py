"""Where the project's shared real data lives: the environment variable DISTILLER_DATA, else
``../shared/data`` from the working directory (the repository root, where `make demo`, the tests
and the benchmarks run). Used by the demo, benchmarks and tests; never derived from where the
package is installed."""
from __future__ import annotations

import os

__all__ = ["shared_data"]


def shared_data(*parts: str) -> str:
    """A path under the shared data directory, e.g. shared_data("glue", "SST-2", "dev.tsv")."""
    root = os.environ.get("DISTILLER_DATA") or os.path.join(os.pardir, "shared", "data")
    return os.path.join(os.path.abspath(root), *parts)
