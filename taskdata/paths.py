"""Where the project's shared real data lives: the environment variable DISTILLER_DATA, else
``../shared/data`` from the directory the process started in (the repository root, where
`make demo`, the tests and the benchmarks run; taken at import, so a later chdir does not move
it). Used by the demo, benchmarks and tests; never derived from where the package is
installed."""
from __future__ import annotations

import os

__all__ = ["shared_data"]

_DEFAULT_ROOT = os.path.abspath(os.path.join(os.pardir, "shared", "data"))


def shared_data(*parts: str) -> str:
    """A path under the shared data directory, e.g. shared_data("glue", "SST-2", "dev.tsv")."""
    root = os.environ.get("DISTILLER_DATA")
    return os.path.join(os.path.abspath(root) if root else _DEFAULT_ROOT, *parts)
