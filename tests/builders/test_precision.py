"""The teacher's precision follows the cache: `--amp auto` extends a cache at the precision it
records; an explicit one that disagrees is one clear error, before any scoring."""
from __future__ import annotations

import json

import pytest

from distiller.builders.teacher import precision
from distiller.builders.teacher.precision import resolve_amp, teacher_compute
from distiller.cli import main

from .test_cli import sst2_file  # noqa: F401  (fixture)


def test_resolve_amp_rules():
    # a new cache: the devices decide
    assert resolve_amp("auto", recorded=None, kinds=["cpu"]) == "off"
    assert resolve_amp("auto", recorded=None, kinds=["cuda"]) == "bf16"
    assert resolve_amp("auto", recorded=None, kinds=["cuda"], bf16_supported=False) == "fp16"
    assert resolve_amp("auto", recorded=None, kinds=[]) == "off"  # remote: unknown devices
    assert resolve_amp("bf16", recorded=None, kinds=["cpu"]) == "bf16"
    with pytest.raises(ValueError, match="mixes cpu and cuda"):
        resolve_amp("auto", recorded=None, kinds=["cuda", "cpu"])
    with pytest.raises(ValueError, match="float16 runs on GPUs only"):
        resolve_amp("fp16", recorded=None, kinds=["cpu"])
    # an existing cache: auto follows it on any device; a disagreeing request is refused
    assert resolve_amp("auto", recorded="float32", kinds=["cuda"]) == "off"
    assert resolve_amp("auto", recorded="bfloat16", kinds=["cpu"]) == "bf16"
    assert resolve_amp("off", recorded="float32", kinds=["cuda"]) == "off"
    with pytest.raises(ValueError, match=r"--amp bf16 asks for bfloat16 but cache 'c' holds "
                                         r"outputs computed in float32 .*leave --amp out"):
        resolve_amp("bf16", recorded="float32", kinds=["cuda"], cache="cache 'c'")
    with pytest.raises(ValueError, match="the cache records float16"):
        resolve_amp("auto", recorded="float16", kinds=["cpu"])
    assert resolve_amp("auto", recorded="float16", kinds=["cuda"]) == "fp16"


def test_teacher_compute_rules(monkeypatch):
    """What a loaded teacher's forwards run at, from its (concrete or auto) amp and device."""
    import torch

    assert teacher_compute("off", "cpu") == "float32"
    assert teacher_compute("auto", "cpu") == "float32"       # never CPU-dependent by default
    assert teacher_compute("bf16", "cpu") == "bfloat16"
    assert teacher_compute("off", "cuda") == "float32"
    assert teacher_compute("fp16", "cuda") == "float16"
    with pytest.raises(ValueError, match="fp16' is for GPUs"):
        teacher_compute("fp16", "cpu")
    for supported, want in ((True, "bfloat16"), (False, "float16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: supported)
        assert teacher_compute("auto", "cuda") == want


def test_bf16_on_a_cpu_without_it_is_said_once(monkeypatch, caplog):
    """An explicit bf16 on a CPU that only emulates it (AVX2) logs one warning per process, for
    the teacher and for training alike; a CPU with AVX512-BF16 or AMX says nothing."""
    import torch

    from distiller.distill_train.optim import autocast_for

    monkeypatch.setattr(precision, "_warned_emulated", False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level("WARNING", logger=precision.__name__):
        assert teacher_compute("bf16", "cpu") == "bfloat16"
        teacher_compute("bf16", "cpu")
        autocast, _ = autocast_for("bf16", torch.device("cpu"))
        teacher_compute("off", "cpu")
    said = [r.getMessage() for r in caplog.records if "without native bfloat16" in r.getMessage()]
    assert len(said) == 1 and "the teacher" in said[0] and "--amp off" in said[0], said
    assert autocast is not None        # still runs, as asked
    monkeypatch.setattr(precision, "_warned_emulated", False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    caplog.clear()
    with caplog.at_level("WARNING", logger=precision.__name__):
        teacher_compute("bf16", "cpu")
        autocast_for("bf16", torch.device("cpu"))
    assert not [r for r in caplog.records if "without native bfloat16" in r.getMessage()]


def test_score_follows_the_cache_precision_and_refuses_another(tmp_path, tiny_teacher_dir,
                                                              sst2_file, capsys):  # noqa: F811
    cache = str(tmp_path / "cache")
    base = ["score", "--input", sst2_file, "--task", "sst2", "--teacher", tiny_teacher_dir,
            "--cache", cache, "--max-length", "64", "--devices", "cpu", "--limit", "6"]
    assert main(base + ["--amp", "bf16"]) == 0          # made in bfloat16
    capsys.readouterr()
    assert main(base + ["--limit", "12"]) == 0          # auto: extended in bfloat16, no error
    out = json.loads(capsys.readouterr().out)
    assert out["scored"] == 6 and out["reused"] == 6
    with open(f"{cache}/manifest.json") as fh:
        assert json.load(fh)["spec"]["compute"] == "bfloat16"
    assert main(base + ["--amp", "off"]) == 2           # asked for float32: one clear line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--amp off asks for float32" in err[0] and "bfloat16" in err[0]
