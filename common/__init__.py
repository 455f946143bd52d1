"""common: the floor every other part stands on (standard library at import time).

    atomic_write, temp_path   one way to write a file: a temp name saying who writes it, fsync
                              where durability is promised, then a rename (files, tempnames)
    resolve_device            "auto" -> a GPU if present, else the CPU; one error for an absent GPU
    save_checkpoint_file, load_checkpoint_file, RunLog, check_resumable
                              a run's files: checkpoint (data only), metrics log, resume check
    stable_hash, derive_seed  hashing and seeds; thread_independent_math, called by entry points
    setting, Rule, validate   declared config fields and cross-field rules, one validator and
                              one-line messages (config)
    UsageError                the error type of bad input (one line on the command line)

Every layer may import it; it imports no other part of the project.
"""
from .errors import UsageError
from .files import atomic_open, atomic_write, replace_durably
from .seeding import derive_seed, stable_hash, thread_independent_math
from .tempnames import temp_path

__all__ = ["UsageError", "atomic_write", "atomic_open", "replace_durably", "temp_path",
           "derive_seed", "stable_hash", "thread_independent_math"]
