"""CPUs and accelerators of this machine, and which one a worker process takes.

`usable_cpus()` is the one CPU count every module uses: the CPUs this process may run on (its
affinity mask where the platform has one), else the machine's count (macOS and Windows have no
``os.sched_getaffinity``).

Devices are named as torch names them (``cpu``, ``cuda:0``, ``mps``, ...). A device *spec* is
what ``--devices`` takes: ``auto`` (every GPU this machine sees, else the CPU), ``cpu``, ``cuda``
(every GPU, an error without one) or a comma-separated list (``cuda:0,cuda:1``; a name may repeat,
``cpu,cpu`` gives two CPU slots). `resolve_devices` turns a spec into the list of slots of one
machine, given how many GPUs it sees (tests pass a fake count).

`claim_slot` is how a worker process learns which slot is its own. Beam's DirectRunner starts its
worker processes itself (no per-worker environment variable, and pids say nothing about order),
a Dask or Flink cluster restarts a worker that died, and a worker may load its model late. So
each process claims a slot by locking a file (``fcntl.flock``, exclusive, non-blocking) in a
directory that all workers of one job on one machine share: the first free slot is its own, the
lock is held for the life of the process and the operating system releases it when the process
ends, so a restarted worker takes over the slot its predecessor had. When every slot is held
(more workers than devices) the process claims in a second round, so N processes spread over k
slots as evenly as possible (slot i gets processes i, i + k, ...).
"""
from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Tuple

from distiller.common.errors import UsageError
from distiller.common.device import gpu_count

__all__ = ["usable_cpus", "parse_devices", "resolve_devices", "visible_gpu_count",
           "gpus_run_bf16", "claim_slot", "claim_device", "device_kind"]

_NAME = re.compile(r"^(cpu|mps|cuda(:\d+)?|xpu(:\d+)?)$")
_MAX_ROUNDS = 64  # processes per slot before claiming gives up (far above any real setup)


def usable_cpus() -> int:
    """CPUs this process may run on: Python 3.13's process_cpu_count (affinity and the
    PYTHON_CPU_COUNT override), else the affinity mask, else the machine's count; at least 1."""
    counter: Optional[Callable[[], Optional[int]]] = getattr(os, "process_cpu_count", None)
    if counter is not None:
        return max(1, counter() or 1)
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return max(1, len(affinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def parse_devices(spec: str) -> Tuple[str, ...]:
    """The names of a --devices value, checked: ('auto',), ('cpu',), ('cuda',) or a list of
    device names. ValueError with the accepted forms otherwise."""
    text = (spec or "").strip().lower()
    names = tuple(part.strip() for part in text.split(",")) if text else ()
    if names in (("auto",), ("cuda",)):
        return names
    bad = [n for n in names if not _NAME.match(n)]
    if not names or bad:
        raise UsageError(f"--devices {spec!r}: expected auto, cpu, cuda or a comma-separated list "
                         f"of devices like cuda:0,cuda:1 (unknown: {', '.join(bad) or 'empty'})")
    return tuple("cuda:0" if n == "cuda" else n for n in names)


def visible_gpu_count() -> int:
    """CUDA devices this process sees (0 without torch's CUDA support)."""
    return gpu_count()


def resolve_devices(spec: str, *, gpu_count: Optional[int] = None) -> Tuple[str, ...]:
    """The device slots of this machine for a spec: auto → cuda:0..k-1 (k GPUs seen) or cpu;
    cuda → cuda:0..k-1 (ValueError without a GPU); a list → itself, each cuda:N checked against
    the GPUs seen. `gpu_count` replaces the count torch reports (tests)."""
    names = parse_devices(spec)
    count = visible_gpu_count() if gpu_count is None else gpu_count
    if names == ("auto",):
        return tuple(f"cuda:{i}" for i in range(count)) or ("cpu",)
    if names == ("cuda",):
        if not count:
            raise UsageError("--devices cuda: this machine sees no CUDA GPU (use auto or cpu)")
        return tuple(f"cuda:{i}" for i in range(count))
    missing = [n for n in names if n.startswith("cuda") and int(n.split(":")[1]) >= count]
    if missing:
        raise UsageError(f"--devices {spec!r}: {', '.join(missing)} not found: this machine sees "
                         f"{count} CUDA GPU(s)" + (f" (cuda:0..cuda:{count - 1})" if count else ""))
    return names


def gpus_run_bf16(devices: Tuple[str, ...]) -> bool:
    """Whether every CUDA device of `devices` runs bfloat16 natively (compute capability 8.0 or
    later: A100, H100, ...; torch.cuda.is_bf16_supported also counts slow emulation). Read from
    the device properties: no tensor is made on a GPU."""
    import torch

    return all(torch.cuda.get_device_capability(d)[0] >= 8
               for d in devices if device_kind(d) == "cuda")


def device_kind(device: str) -> str:
    """'cuda:1' -> 'cuda', 'cpu' -> 'cpu'."""
    return device.split(":", 1)[0]


# Held for the life of the process: closing a descriptor would release its lock.
_HELD: List[int] = []


def claim_slot(directory: str, slots: int) -> int:
    """Claim one of `slots` slots for this process (see the module docstring); returns its index.

    Idempotent per (directory, process) only through the caller (pipelines keep one teacher per
    process); each call takes a new lock."""
    import fcntl

    if slots < 1:
        raise UsageError(f"slots must be >= 1, got {slots}")
    os.makedirs(directory, exist_ok=True)
    for round_ in range(_MAX_ROUNDS):
        for index in range(slots):
            path = os.path.join(directory, f"slot-{index}.{round_}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by a live process
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD.append(fd)
            return index
    raise RuntimeError(f"more than {_MAX_ROUNDS * slots} processes claimed a device slot in "
                       f"{directory}")


def claim_device(devices: Tuple[str, ...], directory: str) -> str:
    """This process's device among `devices` (resolved slots): the only one, or a claimed one."""
    if len(devices) == 1:
        return devices[0]
    return devices[claim_slot(directory, len(devices))]
