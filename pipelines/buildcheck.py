"""Before a build does any work: every name and path it will write, checked; after it failed:
the one line that says why.

`check_outputs` runs before the teacher loads: the corpus names (from --task, --split, the
policy, mixup) must be valid file names, the cache and the dead-letter file must be file
paths (not URLs: inputs are read through fsspec, outputs are written with plain file
operations), the cache directory and the dead-letter file's directory must be writable (a
probe file is created and removed), the dead-letter path must not be a directory, and the
input must be something the reader can read (a file of a known format, or a `datasets`
directory). Each failure is a `ValueError` naming the value, the path and the
fix, so the command prints one line and nothing has been scored.

`failure_message` turns a runner's exception (a worker's traceback, wrapped once or twice) into
that one line: the worker's last error line without Beam's "[while running ...]" suffix, plus
what to do for the common causes (a full disk, a damaged cache).
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Optional, Sequence

from distiller.builders.cache.corpus_rows import check_corpus_name
from distiller.common.errors import UsageError

__all__ = ["check_outputs", "check_writable_dir", "failure_message"]


def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_writable_dir(path: str, what: str) -> None:
    """ValueError unless `path` is (or can be created as) a directory this process can write."""
    existing = _nearest_existing(path)
    if not os.path.isdir(existing):
        raise UsageError(f"{what} {path!r} cannot be created: {existing!r} is a file, not a "
                         "directory; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".distiller-write-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {path!r} is not writable ({exc.strerror or exc} in "
                         f"{existing!r}): check its permissions, free disk space or choose "
                         "another path") from None


def check_outputs(*, cache: str, corpus_names: Sequence[str], dead_letter_path: str) -> None:
    """Every name and path a build will write, checked before any work (its input is checked
    by distiller.taskdata.reader.check_input)."""
    # inputs are read through fsspec; what a build writes goes through plain file operations
    for flag, path in (("--cache", cache), ("--dead-letters", dead_letter_path)):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path or ""):
            raise UsageError(f"{flag} {path!r} is a URL: the cache and the dead-letter file are "
                             "written with plain file operations, so give a local path or one "
                             "on a shared filesystem mounted where every worker runs")
    for name in corpus_names:
        try:
            check_corpus_name(name)
        except ValueError as exc:
            raise UsageError(f"{exc}: it is made from --task, --split and the policy name; "
                             "choose another --split or --task") from None
    if os.path.exists(cache) and not os.path.isdir(cache):
        raise UsageError(f"--cache {cache!r} is a file, not a cache directory: choose another "
                         "path")
    check_writable_dir(cache, "--cache")
    for sub in ("shards", "corpora"):
        if os.path.isdir(os.path.join(cache, sub)):
            check_writable_dir(os.path.join(cache, sub), "--cache")
    if os.path.isdir(dead_letter_path):
        raise UsageError(f"the dead-letter file {dead_letter_path!r} is a directory: pass "
                         "--dead-letters FILE.jsonl")
    check_writable_dir(os.path.dirname(os.path.abspath(dead_letter_path)),
                       "the dead-letter directory")


_WHILE_RUNNING = re.compile(r"\s*\[while running '[^']*'\]\s*$")
_HINTS = (
    (re.compile(r"No space left on device|Disk quota exceeded"),
     "free disk space where {cache} is and run the same command again: shards already written "
     "are committed by the next build, not scored again"),
    (re.compile(r"CorruptShardError|MissingShardError|cannot be read|truncated or altered"),
     "`distiller cache verify {cache}` names every damaged shard"),
)


def _last_error_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (errors or lines or [repr(exc)])[-1]


def failure_message(exc: BaseException, *, cache: str = "CACHE",
                    log_path: Optional[str] = None) -> str:
    """One line: the cause (the worker's last error line), what to do, where the workers' log
    is (only when it was kept)."""
    line = _WHILE_RUNNING.sub("", _last_error_line(exc))
    # "pkg.mod.SomeError: " -> "SomeError: "; a wrapper's name before the real one is dropped
    line = re.sub(r"^(?:(?:[A-Za-z_][\w.]*\.)?\w+(?:Error|Exception): )*"
                  r"(?:[A-Za-z_][\w.]*\.)?(\w+(?:Error|Exception)): ", r"\1: ", line)
    hints = [hint.format(cache=cache) for pattern, hint in _HINTS if pattern.search(line)]
    out = f"the build failed: {line}"
    if hints and "cache verify" not in line:
        out += f" ({hints[0]})"
    elif "cache verify`" in line:  # the cause already says what to run: name the cache
        out = out.replace("`distiller cache verify`", f"`distiller cache verify {cache}`")
    if log_path:
        out += f"; the workers' log is {log_path} (-v prints it as the build runs)"
    return out
