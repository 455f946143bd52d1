"""Issue 21: the faster backends (torch.compile, ONNX Runtime) stay within 1e-4 of eager, are
recorded in the cache spec, never share a cache with eager outputs, and refuse what they lack."""
from __future__ import annotations

import numpy as np
import pytest

from distiller.builders.cache.errors import CacheSpecMismatch


def _max_diff(a, b):
    hidden = max(float(np.abs(x["hidden"][l].astype(np.float64) - y["hidden"][l]).max())
                 for x, y in zip(a, b) for l in x["hidden"])
    logits = max(float(np.abs(x["logits"] - y["logits"]).max()) for x, y in zip(a, b))
    return max(hidden, logits)


def _check_backend(tmp_path, tiny_teacher, tiny_teacher_dir, records, backend):
    from distiller.builders import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    fast = Teacher(TeacherConfig(model=tiny_teacher_dir, max_length=64, device="cpu",
                                 num_threads=1, max_tokens_per_batch=512,
                                 backend=backend)).load()
    assert fast.fingerprint == tiny_teacher.fingerprint     # same weights: same keys
    assert _max_diff(tiny_teacher.score(records), fast.score(records)) < 1e-4
    spec = fast.spec("float16")
    assert spec.backend == backend and spec.to_dict()["backend"] == backend
    eager_cache = TeacherCache.create(str(tmp_path / "eager"), tiny_teacher.spec("float16"))
    with pytest.raises(CacheSpecMismatch, match="backend"):
        TeacherCache.open(eager_cache.path, spec)
    cache = TeacherCache.create(str(tmp_path / backend), spec)
    cache.add(fast.score(records, store_as="float16"))
    assert TeacherCache.open(cache.path).spec.backend == backend
    return fast


def test_onnx_backend(tmp_path, tiny_teacher, tiny_teacher_dir, rte_rows, sst2_rows):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is an extra: pip install .[onnx]")
    from distiller.builders.teacher.model import Teacher, TeacherConfig

    records = rte_rows[:8] + sst2_rows[:30]
    fast = _check_backend(tmp_path, tiny_teacher, tiny_teacher_dir, records, "onnx")
    assert fast.backend.warmup_s > 0
    with pytest.raises(ValueError, match="mixup"):
        fast.score_mixed([(records[0], records[1], 0.5)])
    for bad, match in (({"attentions": True}, "attention maps"), ({"amp": "bf16"}, "float32")):
        with pytest.raises(ValueError, match=match):
            Teacher(TeacherConfig(model=tiny_teacher_dir, device="cpu", backend="onnx",
                                  **bad)).load()


@pytest.mark.slow
def test_compile_backend(tmp_path, tiny_teacher, tiny_teacher_dir, rte_rows, sst2_rows):
    records = rte_rows[:8] + sst2_rows[:30]
    fast = _check_backend(tmp_path, tiny_teacher, tiny_teacher_dir, records, "compile")
    assert fast.backend.warmup_s > 0      # (mixup inputs compile a second graph: not run here)


def test_unknown_backend_is_refused(tiny_teacher_dir):
    from distiller.builders.teacher.model import TeacherConfig

    with pytest.raises(ValueError, match="backend"):
        TeacherConfig(model=tiny_teacher_dir, backend="tensorrt")
