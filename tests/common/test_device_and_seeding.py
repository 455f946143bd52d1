"""distiller.common.device and seeding: one clear error for an absent GPU; no environment
change at import."""
import os
import subprocess
import sys

import pytest
import torch

from distiller.common.device import resolve_device
from distiller.common.errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_auto_and_cpu_resolve():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


def test_a_gpu_asked_for_without_one_is_one_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError, match=r"--device 'cuda' asks for a GPU, but torch sees no "
                                         r"CUDA GPU on this machine .*use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(UsageError, match="config key device 'cuda:1'"):
        resolve_device("cuda:1", flag="config key device")
    assert resolve_device("auto") == torch.device("cpu")


def test_a_name_that_is_no_device_is_a_usage_error():
    with pytest.raises(UsageError, match="'gpu0' is not a device"):
        resolve_device("gpu0")


def test_importing_the_library_leaves_the_environment_alone():
    code = ("import os, distiller.common, distiller.builders, distiller.pipelines, "
            "distiller.distill_train\n"
            "before = os.environ.get('MKL_CBWR')\n"
            "from distiller.common.seeding import thread_independent_math\n"
            "thread_independent_math()\n"
            "print(before, os.environ.get('MKL_CBWR'))")
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**env, "PYTHONPATH": ROOT}).stdout
    assert out.split() == ["None", "AUTO,STRICT"]
