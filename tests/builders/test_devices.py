"""Devices of a machine and which one a worker process takes (no GPU needed: the device lists are
fake, the claims are real file locks taken by real processes)."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from distiller.builders.teacher.devices import (claim_slot, parse_devices, resolve_devices,
                                                usable_cpus)


def test_cpu_count_without_affinity_or_process_count(monkeypatch):
    """macOS has neither os.sched_getaffinity nor (before 3.13) os.process_cpu_count."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert usable_cpus() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert usable_cpus() == 1


def test_cpu_count_follows_the_affinity_mask(monkeypatch):
    monkeypatch.delattr(os, "process_cpu_count", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert usable_cpus() == 3


def test_device_specs_resolve_against_a_fake_gpu_count():
    assert resolve_devices("auto", gpu_count=0) == ("cpu",)
    assert resolve_devices("auto", gpu_count=3) == ("cuda:0", "cuda:1", "cuda:2")
    assert resolve_devices("cuda", gpu_count=2) == ("cuda:0", "cuda:1")
    assert resolve_devices("cpu", gpu_count=4) == ("cpu",)
    assert resolve_devices("cuda:1, cuda:3", gpu_count=4) == ("cuda:1", "cuda:3")
    assert resolve_devices("cpu,cpu", gpu_count=0) == ("cpu", "cpu")
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        resolve_devices("cuda", gpu_count=0)
    with pytest.raises(ValueError, match=r"cuda:2 not found: this machine sees 2 CUDA GPU\(s\) "
                                         r"\(cuda:0..cuda:1\)"):
        resolve_devices("cuda:0,cuda:2", gpu_count=2)
    with pytest.raises(ValueError, match="unknown: gpu0"):
        parse_devices("cuda:0,gpu0")
    with pytest.raises(ValueError, match="unknown: empty"):
        parse_devices(" ")


def _claimer(directory, slots, results):
    import time

    results.put((os.getpid(), claim_slot(directory, slots)))
    time.sleep(120)  # hold the lock like a live worker, until the test ends this process


def _start(ctx, directory, slots, results):
    proc = ctx.Process(target=_claimer, args=(directory, slots, results), daemon=True)
    proc.start()
    return proc, results.get(timeout=60)[1]


def test_each_worker_process_claims_its_own_slot_and_a_restart_takes_the_freed_one(tmp_path):
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    directory = str(tmp_path / "claims")
    procs = []
    try:
        first = [_start(ctx, directory, 3, results) for _ in range(3)]
        procs += [p for p, _ in first]
        assert sorted(slot for _, slot in first) == [0, 1, 2]
        # a fourth process (more workers than devices) doubles up on slot 0, a fifth on slot 1
        extra = [_start(ctx, directory, 3, results) for _ in range(2)]
        procs += [p for p, _ in extra]
        assert [slot for _, slot in extra] == [0, 1]
        # the worker on slot 2 dies (the OS drops its lock): its replacement takes slot 2
        dead = next(p for p, slot in first if slot == 2)
        dead.kill()
        dead.join()
        again, slot = _start(ctx, directory, 3, results)
        procs.append(again)
        assert slot == 2
    finally:
        for p in procs:
            p.kill()
            p.join(10)


def test_device_plan_gives_distinct_devices_to_worker_processes():
    from distiller.pipelines.devices import DevicePlan, plan_devices

    plan, workers = plan_devices("auto", local=True, workers=None, gpu_count=2)
    assert workers == 2 and plan.slots == ("cuda:0", "cuda:1") and plan.kinds() == ("cuda",)
    ctx = multiprocessing.get_context("fork")
    try:
        with ctx.Pool(2) as pool:
            # each pool process claims once and holds it; two tasks land on two processes
            devices = pool.map(_plan_device, [plan, plan], chunksize=1)
        assert sorted(devices) == ["cuda:0", "cuda:1"]
    finally:
        plan.release()
    cpu_plan, cpu_workers = plan_devices("auto", local=True, workers=None, gpu_count=0)
    assert cpu_plan.slots == ("cpu",) and cpu_workers == min(2, usable_cpus())
    assert cpu_plan.device() == "cpu"
    remote, n = plan_devices("cuda:0,cuda:1", local=False, workers=4)
    assert remote.slots == () and n == 4 and remote.kinds() == ()
    assert isinstance(remote, DevicePlan)
    with pytest.raises(ValueError, match="--devices 'tpu'"):
        plan_devices("tpu", local=False, workers=None)


def _plan_device(plan):
    import time

    device = plan.device()
    time.sleep(0.5)  # keep this process busy so the other task runs on the other process
    return device
