"""Running the teacher: loading, precision, batching, forward passes and scoring into a cache
(built on distiller.builders.cache.store)."""
