"""Per-process singletons for Beam workers: one teacher, one policy, one open cache per process.

Beam may create several DoFn instances per worker process (one per step and per thread, and the
Dask runner even runs ``setup`` once per partition). Heavy objects are therefore held here, keyed
by their frozen configuration, so each worker process loads a model once however many steps use
it. The first call loads, later calls return the same object; a lock makes threads wait for it.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Dict, Hashable

from distiller.augment.policy import AugmentationPolicy
from distiller.builders.cache.store import TeacherCache
from distiller.builders.teacher.factory import make_teacher

__all__ = ["process_singleton", "get_teacher", "get_policy", "get_cache", "loads_in_process"]

_LOCK = threading.Lock()
_OBJECTS: Dict[Hashable, Any] = {}
_LOADS: Dict[str, int] = {}


def process_singleton(kind: str, key: Hashable, factory: Callable[[], Any]) -> Any:
    """The object `factory()` made for (kind, key) in this process, made on first use."""
    with _LOCK:
        if (kind, key) not in _OBJECTS:
            _OBJECTS[(kind, key)] = factory()
            _LOADS[kind] = _LOADS.get(kind, 0) + 1
        return _OBJECTS[(kind, key)]


def loads_in_process(kind: str) -> int:
    """How many distinct objects of `kind` this process has loaded (tests check 'once')."""
    return _LOADS.get(kind, 0)


def get_teacher(config, devices=None) -> Any:
    """The loaded `distiller.builders.teacher.model.Teacher` for a `TeacherConfig` (frozen,
    hashable);
    with a
    `distiller.pipelines.devices.DevicePlan`, on the device this process claims (one per
    process)."""
    def load():
        placed = config if devices is None else dataclasses.replace(config,
                                                                    device=devices.device())
        return make_teacher(placed).load()

    return process_singleton("teacher", (config, devices), load)


def get_policy(spec: Any) -> Any:
    """The loaded `distiller.augment.policy.AugmentationPolicy` for a spec string, YAML path or
    dict."""
    def load():
        policy = AugmentationPolicy.from_spec(spec)
        policy.load()  # WordNet / MLM / translation models, once per process
        return policy

    key = spec if isinstance(spec, Hashable) else repr(sorted(spec.items()))
    return process_singleton("policy", key, load)


def get_cache(path: str) -> Any:
    """`distiller.builders.cache.store.TeacherCache.open(path)`, once per process."""
    def load():
        return TeacherCache.open(path)

    return process_singleton("cache", path, load)
