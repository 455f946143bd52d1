"""The teacher-output cache: spec, keys, shards, manifest, reader and maintenance
(no teacher code: this subpackage never imports distiller.builders.teacher.model)."""
