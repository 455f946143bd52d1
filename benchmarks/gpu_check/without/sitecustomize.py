"""Rehearsal of a machine that lacks some packages: with this directory first on PYTHONPATH,
importing any top-level package named in DISTILLER_WITHOUT (comma-separated) raises
ModuleNotFoundError, as it would where the package is not installed (benchmarks/gpu_check.py
--as-gpu-machine)."""
import importlib.abc
import os
import sys

_BLOCKED = {n.strip() for n in os.environ.get("DISTILLER_WITHOUT", "").split(",") if n.strip()}


class _Without(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by DISTILLER_WITHOUT)",
                                      name=name)
        return None


if _BLOCKED:
    sys.meta_path.insert(0, _Without())
