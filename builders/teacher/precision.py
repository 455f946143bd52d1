"""The precision a build's teacher runs at, decided once, before any work.

A cache records the precision its outputs were computed at (`CacheSpec.compute`): outputs of
another precision differ in their low bits, so one cache holds one. Rules:

- on an existing cache, ``--amp auto`` follows what the cache records (a cache made on a GPU in
  bfloat16 is extended in bfloat16 on a CPU too, a float32 cache stays float32 on a GPU); an
  explicit ``--amp`` that disagrees with it is an error naming both, never a silent change;
- on a new cache, ``auto`` is float32 on CPUs, bfloat16 on GPUs that support it (else float16),
  float32 when the workers' devices are unknown here (a remote runner: pass ``--amp bf16`` to
  ask for it) and an error when the devices mix CPUs and GPUs;
- ``fp16`` needs GPUs (CPU float16 autocast is slow and inaccurate): refused here for CPU
  workers, and by the teacher itself on a remote worker without a GPU.

`resolve_amp` returns a concrete amp (``off``, ``bf16``, ``fp16``) that every worker then uses as
given, so the driver and the workers agree on the spec whatever devices the workers have; each
loaded teacher turns its amp into the dtype its forwards run at with `teacher_compute`.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence

from distiller.common.errors import UsageError

from ..cache.manifest import MANIFEST, read_manifest

__all__ = ["AMP_OF_COMPUTE", "COMPUTE_OF_AMP", "resolve_amp", "cache_compute", "teacher_compute",
           "cpu_has_native_bf16", "warn_if_bf16_emulated"]

log = logging.getLogger(__name__)

COMPUTE_OF_AMP = {"off": "float32", "bf16": "bfloat16", "fp16": "float16"}
AMP_OF_COMPUTE = {v: k for k, v in COMPUTE_OF_AMP.items()}


def cache_compute(cache_path: str) -> Optional[str]:
    """The precision an existing cache records (None when there is no cache there yet)."""
    if not os.path.exists(os.path.join(cache_path, MANIFEST)):
        return None
    return read_manifest(cache_path)["spec"].get("compute", "float32")


def resolve_amp(amp: str, *, recorded: Optional[str], kinds: Sequence[str],
                bf16_supported: bool = True, cache: str = "the cache") -> str:
    """A concrete amp for `amp` (auto | off | bf16 | fp16).

    recorded: the cache's `compute` (None for a new cache); kinds: device kinds of the workers
    ('cpu', 'cuda'; empty when unknown here); bf16_supported: whether those GPUs run bfloat16."""
    if amp not in ("auto", *COMPUTE_OF_AMP):
        raise UsageError(f"--amp {amp!r}: expected auto, off, bf16 or fp16")
    kinds = tuple(sorted(set(kinds)))
    if recorded is not None:
        if recorded not in AMP_OF_COMPUTE:
            raise UsageError(f"{cache} records an unknown precision {recorded!r}")
        if amp != "auto" and COMPUTE_OF_AMP[amp] != recorded:
            raise UsageError(
                f"--amp {amp} asks for {COMPUTE_OF_AMP[amp]} but {cache} holds outputs computed "
                f"in {recorded} (one precision per cache): leave --amp out (or pass --amp "
                f"{AMP_OF_COMPUTE[recorded]}) to extend it, or build into a new cache directory")
        amp = AMP_OF_COMPUTE[recorded]
    elif amp == "auto":
        if len(kinds) > 1:
            raise UsageError(f"--devices mixes {' and '.join(kinds)}, which run --amp auto at "
                             "different precisions: pass --amp off (float32) or --amp bf16")
        amp = ("bf16" if bf16_supported else "fp16") if kinds == ("cuda",) else "off"
    if amp == "fp16" and "cpu" in kinds:  # unknown kinds: a remote worker checks its own
        where = "the cache records float16 (made on a GPU)" if recorded else "--amp fp16"
        raise UsageError(f"{where}: float16 runs on GPUs only, and these workers include a "
                         "CPU: build on GPUs (--devices cuda) or into a new cache directory")
    return amp


def teacher_compute(amp: str, device_type: str) -> str:
    """The dtype a teacher on `device_type` ('cpu', 'cuda', ...) runs its forwards at for `amp`:
    "float32", or "bfloat16" / "float16" under autocast. ``auto`` is float32 off a GPU, bfloat16
    on a GPU that supports it, else float16; ``fp16`` off a GPU is refused (ValueError)."""
    import torch

    if device_type != "cuda" and amp == "fp16":
        raise UsageError("amp 'fp16' is for GPUs; on a CPU use amp 'bf16' (or 'off')")
    if device_type == "cpu" and amp == "bf16":
        warn_if_bf16_emulated("the teacher")
    if amp == "auto" and device_type == "cpu" and cpu_has_native_bf16():
        # Not the default (README, "Precision policy"): a new cache would then depend on
        # the CPU it was started on. Said once per load, for whoever wants the speed.
        log.info("this CPU computes bfloat16 natively (AVX512-BF16/AMX): a new cache can be "
                 "scored faster with --amp bf16 (README: Scoring speed)")
    if amp == "off" or (device_type != "cuda" and amp == "auto"):
        return "float32"
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bfloat16" if amp == "bf16" else "float16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):   # private helpers: absent in another torch
        return False


_warned_emulated = False


def warn_if_bf16_emulated(what: str) -> bool:
    """Log one warning per process when bfloat16 was asked for on a CPU without native bfloat16
    (an AVX2-only CPU emulates it: about 8x slower than float32 on the AMD EPYC measured in
    benchmarks/README.md); True when this CPU lacks it."""
    global _warned_emulated
    if cpu_has_native_bf16():
        return False
    if not _warned_emulated:
        import torch

        _warned_emulated = True
        log.warning("--amp bf16 runs %s in bfloat16 on a CPU without native bfloat16 "
                    "(capability %s, no AVX512-BF16 or AMX): emulated, several times slower than "
                    "float32; use --amp off here", what, torch.backends.cpu.get_cpu_capability())
    return True
