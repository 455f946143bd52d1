"""A build's placement on a machine with fake GPUs: workers per GPU, the precision decided from
the GPUs' compute capability (or the cache), and --backend onnx refused on GPUs before any work."""
from __future__ import annotations

import dataclasses
from typing import Optional

import pytest


@dataclasses.dataclass(frozen=True)
class _Opts:
    """The fields of distiller.pipelines.build.BuildOptions that place_build reads."""

    cache: str
    devices: str = "auto"
    amp: str = "auto"
    backend: str = "eager"
    workers: Optional[int] = None
    runner: str = "direct"
    dask_address: Optional[str] = None


@pytest.fixture
def fake_gpus(monkeypatch):
    """Two visible GPUs: cuda:0 and cuda:1 of the given compute capabilities (major, minor)."""
    import torch

    import distiller.builders.teacher.devices

    def install(first, second=None):
        capabilities = {"cuda:0": first, "cuda:1": second or first}
        monkeypatch.setattr(distiller.builders.teacher.devices, "visible_gpu_count", lambda: 2)
        monkeypatch.setattr(torch.cuda, "get_device_capability",
                            lambda device: capabilities[str(device)])

    return install


# bfloat16 only when every GPU runs it natively (8.0+); a 7.5 GPU among them means float16
@pytest.mark.parametrize("capabilities,amp", [([(8, 0)], "bf16"), ([(7, 5)], "fp16"),
                                              ([(8, 0), (7, 5)], "fp16")])
def test_a_new_cache_on_gpus_gets_a_worker_each_and_their_precision(tmp_path, fake_gpus,
                                                                    capabilities, amp):
    from distiller.pipelines.devices import place_build

    fake_gpus(*capabilities)
    opts, plan = place_build(_Opts(cache=str(tmp_path / "cache")))
    assert plan.slots == ("cuda:0", "cuda:1") and opts.workers == 2 and opts.amp == amp
    opts, plan = place_build(_Opts(cache=str(tmp_path / "cache"), devices="cuda:0"))
    assert plan.slots == ("cuda:0",) and opts.workers == 1
    assert opts.amp == ("bf16" if capabilities[0] >= (8, 0) else "fp16")   # cuda:0's alone
    # --devices cpu on the same machine: float32, two CPU workers at most
    opts, plan = place_build(_Opts(cache=str(tmp_path / "cache"), devices="cpu"))
    assert plan.slots == ("cpu",) and opts.amp == "off"


def test_a_float32_cache_stays_float32_on_gpus_and_another_precision_is_an_error(
        tmp_path, fake_gpus, tiny_teacher):
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.teacher.model import Teacher, TeacherConfig
    from distiller.pipelines.devices import place_build

    fake_gpus((9, 0))
    cache = str(tmp_path / "cache")
    teacher = Teacher(TeacherConfig(model=tiny_teacher, device="cpu", amp="off")).load()
    TeacherCache.open_or_create(cache, teacher.spec("float16"))   # made on a CPU: float32
    opts, _ = place_build(_Opts(cache=cache))
    assert opts.amp == "off"
    with pytest.raises(ValueError, match="--amp bf16 asks for bfloat16 but cache .* float32"):
        place_build(_Opts(cache=cache, amp="bf16"))


def test_onnx_on_gpus_is_refused_before_any_work(tmp_path, fake_gpus):
    from distiller.pipelines.devices import place_build

    fake_gpus((8, 0))
    with pytest.raises(ValueError, match="--backend onnx runs on a CPU.*--devices cpu"):
        place_build(_Opts(cache=str(tmp_path / "cache"), backend="onnx"))
    opts, plan = place_build(_Opts(cache=str(tmp_path / "cache"), backend="onnx", devices="cpu"))
    assert plan.slots == ("cpu",) and opts.amp == "off"
