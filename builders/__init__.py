"""builders: the teacher wrapper, the content-addressed teacher-output cache and its reader.

Heavy libraries (torch, transformers, pyarrow) are imported by the submodules on use.
"""
from .cache import CORPUS_FIELDS, TeacherCache
from .errors import (CacheError, CacheSpecMismatch, CorruptShardError, FingerprintError,
                     ForeignDirectoryError, MissingShardError, UnsafeEntryError,
                     UnsatisfiableRequest)
from .keys import cache_key, mixup_key
from .planning import Satisfiability, estimate, plan, satisfiable
from .reader import CacheReader
from .scoring import score_into_cache
from .shards import ShardInfo
from .spec import CacheSpec
from .teacher import Teacher, TeacherConfig, make_teacher

__all__ = [
    "CacheError", "CacheReader", "CacheSpec", "CacheSpecMismatch", "CORPUS_FIELDS",
    "CorruptShardError", "FingerprintError", "ForeignDirectoryError", "MissingShardError",
    "Satisfiability", "ShardInfo", "Teacher", "TeacherCache", "TeacherConfig",
    "UnsafeEntryError", "UnsatisfiableRequest", "cache_key", "estimate", "mixup_key", "plan",
    "satisfiable", "score_into_cache", "make_teacher",
]
