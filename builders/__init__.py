"""builders: the teacher wrapper, the content-addressed teacher-output cache and its reader.

Heavy libraries (torch, transformers, pyarrow) are imported by the submodules on use.
"""
from .cache.store import CORPUS_FIELDS, TeacherCache
from .cache.errors import (CacheError, CacheSpecMismatch, CorruptShardError, FingerprintError,
                     ForeignDirectoryError, MissingShardError, UnsafeEntryError,
                     UnsatisfiableRequest)
from .cache.keys import cache_key, mixup_key
from .cache.planning import Satisfiability, estimate, plan, satisfiable
from .cache.reader import CacheReader
from .teacher.scoring import score_into_cache
from .cache.shards import ShardInfo
from .cache.spec import CacheSpec
from .teacher.factory import make_teacher
from .teacher.model import Teacher, TeacherConfig

__all__ = [
    "CacheError", "CacheReader", "CacheSpec", "CacheSpecMismatch", "CORPUS_FIELDS",
    "CorruptShardError", "FingerprintError", "ForeignDirectoryError", "MissingShardError",
    "Satisfiability", "ShardInfo", "Teacher", "TeacherCache", "TeacherConfig",
    "UnsafeEntryError", "UnsatisfiableRequest", "cache_key", "estimate", "mixup_key", "plan",
    "satisfiable", "score_into_cache", "make_teacher",
]
