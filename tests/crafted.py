"""Files crafted to run code when a pickle-based loader opens them (a shared model, a received
run directory's checkpoint): opening one creates MARKER in the working directory. Tests open
them through Distiller's loaders and check that MARKER stays absent; `assert_live` first proves
that the file does run its payload when unpickled, so such a test can fail."""
from __future__ import annotations

import os
from typing import Any, Callable

MARKER = "created-by-a-crafted-file"


class Payload:
    """Unpickled, this is `open(MARKER, "w")`: a file created where the loader runs."""

    def __reduce__(self):
        return (open, (MARKER, "w"))


def assert_live(load: Callable[[str], Any], path: str, probe_dir: str) -> None:
    """`load(path)` (an unsafe loader: pickle.load, torch.load(weights_only=False)) run in
    `probe_dir` creates MARKER there."""
    os.makedirs(probe_dir, exist_ok=True)
    here = os.getcwd()
    os.chdir(probe_dir)
    try:
        load(os.path.abspath(os.path.join(here, path)))
    finally:
        os.chdir(here)
    marker = os.path.join(probe_dir, MARKER)
    assert os.path.exists(marker), "the crafted file did not run its payload"
    os.remove(marker)
