"""One way to pick the torch device: "auto" is a GPU when one is usable, else the CPU.

An explicit GPU ("cuda", "cuda:1") on a machine without one is one clear error, not torch's
"Torch not compiled with CUDA enabled" raised deep inside the first tensor move.
"""
from __future__ import annotations

from .errors import UsageError

__all__ = ["resolve_device", "gpu_count", "cuda_rng_states"]


def gpu_count() -> int:
    """Usable GPUs (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_device(name: str = "auto", *, flag: str = "--device"):
    """The torch.device for `name` ("auto", "cpu", "cuda", "cuda:N", ...). UsageError naming
    `flag` when a GPU is asked for and none is usable, or the name is not a device."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"{flag} {name!r} is not a device ({exc}); use auto, cpu, cuda or "
                         "cuda:N") from None
    if device.type == "cuda":
        count = gpu_count()
        if count == 0:
            raise UsageError(f"{flag} {name!r} asks for a GPU, but torch sees no CUDA GPU on "
                             f"this machine (torch {torch.__version__}); use {flag} cpu or auto")
        if device.index is not None and device.index >= count:
            raise UsageError(f"{flag} {name!r}: this machine has {count} GPU(s) "
                             f"(cuda:0..cuda:{count - 1})")
    return device


def cuda_rng_states():
    """Every GPU's RNG state (for a checkpoint), or None without CUDA."""
    import torch

    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
