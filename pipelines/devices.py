"""Which device each scoring worker of a build uses: one worker per device.

The driver turns ``--devices`` into a `DevicePlan`: on a local runner (DirectRunner, a local Dask
cluster) the device slots of this machine, resolved once (``auto`` = every GPU it sees, else the
CPU), and the number of workers follows them unless ``--workers`` says otherwise; on a remote
runner the spec itself travels and each worker resolves it on its own machine (``auto``: its
GPUs, else its CPU). A worker process takes its slot by a file-lock claim in a directory named
after the build (`distiller.builders.teacher.devices.claim_slot`: no environment variable per
worker exists
on Beam's runners, and a restarted worker takes over its predecessor's slot), once per process:
the teacher is a per-process singleton (distiller.pipelines.workers).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import uuid
from typing import Any, Optional, Tuple

from distiller.builders.teacher.devices import (claim_device, device_kind, gpus_run_bf16,
                                                parse_devices, resolve_devices, usable_cpus)
from distiller.builders.teacher.precision import cache_compute, resolve_amp
from distiller.common.errors import UsageError
from distiller.pipelines.runners import is_local_runner

__all__ = ["DevicePlan", "plan_devices", "place_build"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DevicePlan:
    """spec: a --devices value; slots: the resolved devices (local runners) or () to resolve
    the spec on each worker (remote runners); job: names the claim directory of this build."""

    spec: str = "auto"
    slots: Tuple[str, ...] = ()
    job: str = ""

    @property
    def claim_dir(self) -> str:
        """Machine-local directory of this build's slot locks."""
        return os.path.join(tempfile.gettempdir(), f"distiller-devices-{self.job or 'default'}")

    def device(self) -> str:
        """The device of the calling worker process (claims a slot when there are several)."""
        slots = self.slots or resolve_devices(self.spec)
        device = claim_device(slots, self.claim_dir)
        log.info("worker pid %d scores on %s (slots %s)", os.getpid(), device, ",".join(slots))
        return device

    def kinds(self) -> Tuple[str, ...]:
        """Device kinds ('cpu', 'cuda') of the resolved slots; () when resolved on workers."""
        return tuple(sorted({device_kind(d) for d in self.slots}))

    def release(self) -> None:
        """Remove this machine's claim directory (the driver, after the build)."""
        shutil.rmtree(self.claim_dir, ignore_errors=True)


def plan_devices(spec: str, *, local: bool, workers: Optional[int],
                 gpu_count: Optional[int] = None) -> Tuple[DevicePlan, int]:
    """(plan, worker count). Local: slots resolved here; workers default to one per GPU slot
    (or `default_cpu_workers` for the CPU, given as `workers`=None → 2 capped by the CPUs).
    Remote: the spec is checked and resolved on each worker; workers as given."""
    parse_devices(spec)  # a bad value is an error here, before any work
    job = uuid.uuid4().hex[:12]
    if not local:
        return DevicePlan(spec=spec, job=job), workers or min(2, usable_cpus())
    slots = resolve_devices(spec, gpu_count=gpu_count)
    if workers is None:
        workers = len(slots) if slots != ("cpu",) else min(2, usable_cpus())
    if any(device_kind(d) == "cuda" for d in slots) and workers < len(slots):
        log.warning("%d worker(s) for %d device slots: slots %s stay idle", workers, len(slots),
                    ", ".join(slots[workers:]))
    return DevicePlan(spec=spec, slots=slots, job=job), workers


def place_build(opts) -> Tuple[Any, DevicePlan]:
    """(opts with `workers` and a concrete `amp`, plan) for a
    `distiller.pipelines.build.BuildOptions`: devices resolved on a local runner, the precision
    following the cache (distiller.builders.teacher.precision)."""
    local = is_local_runner(opts.runner) and not opts.dask_address
    plan, workers = plan_devices(opts.devices, local=local, workers=opts.workers)
    kinds = plan.kinds()
    if getattr(opts, "backend", "eager") == "onnx" and "cuda" in kinds:
        raise UsageError(f"--backend onnx runs on a CPU, but --devices {opts.devices!r} gives the "
                         "workers GPUs: pass --devices cpu, or use --backend eager or compile")
    bf16 = gpus_run_bf16(plan.slots) if kinds == ("cuda",) else True
    amp = resolve_amp(opts.amp, recorded=cache_compute(opts.cache), kinds=kinds,
                      bf16_supported=bf16, cache=f"cache {opts.cache!r}")
    if amp != opts.amp:
        log.info("teacher precision: --amp %s runs as %s", opts.amp, amp)
    return dataclasses.replace(opts, workers=workers, amp=amp), plan
