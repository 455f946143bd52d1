"""augment: text augmentation for distillation (EDA over WordNet, masked-LM substitution,
back-translation) composed into seeded, reproducible policies.

Heavy libraries (torch, transformers, nltk's WordNet) are imported only when an augmenter loads.
"""
from distiller.common.seeding import derive_seed, make_rng, make_torch_generator, stable_hash

from .base import Job
from .policy import AugmentationPolicy, parse_step
from .registry import available, config_class, create

__all__ = [
    "AugmentationPolicy", "parse_step", "Job", "available", "config_class", "create",
    "derive_seed", "make_rng", "make_torch_generator", "stable_hash",
]
