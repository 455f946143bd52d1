"""The augmenters by name: the built-in ones (EDA, contextual, back-translation), whose modules
name theirs in ``AUGMENTERS``, and any registered later with `register`.

The built-in modules are imported here, at the top: they load their models (torch,
transformers, WordNet) only in ``load()``, so naming them costs no heavy import.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Dict, List, Tuple, Type

from distiller.common.errors import UsageError

from . import backtranslate, eda, mlm

__all__ = ["register", "create", "create_from_config", "available", "config_class"]

_REGISTRY: Dict[str, Tuple[type, Callable[[Any], Any]]] = {
    **eda.AUGMENTERS, **mlm.AUGMENTERS, **backtranslate.AUGMENTERS}


def register(name: str, config_cls: type, factory: Callable[[Any], Any]) -> None:
    """Register an augmenter: `factory(config)` builds it from an instance of `config_cls`."""
    if name in _REGISTRY:
        raise UsageError(f"augmenter name {name!r} is already registered")
    _REGISTRY[name] = (config_cls, factory)


def available() -> List[str]:
    """Sorted names of all registered augmenters."""
    return sorted(_REGISTRY)


def config_class(name: str) -> Type:
    """The config dataclass of augmenter `name`; ValueError naming close matches if unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"unknown augmenter {name!r}{hint}; known augmenters: "
                         f"{', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name][0]


def create(name: str, **params: Any):
    """Build augmenter `name` from keyword parameters; clear errors for unknown names/params."""
    cls = config_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise UsageError(f"augmenter {name!r} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(fields)}")
    try:
        config = cls(**params)
    except TypeError as exc:  # a required parameter is missing
        raise UsageError(f"augmenter {name!r}: {exc}") from None
    return _REGISTRY[name][1](config)


def create_from_config(name: str, config: Any):
    """Build augmenter `name` from an already validated config instance."""
    cls = config_class(name)
    if not isinstance(config, cls):
        raise UsageError(f"augmenter {name!r} needs a {cls.__name__}, got {type(config).__name__}")
    return _REGISTRY[name][1](config)
