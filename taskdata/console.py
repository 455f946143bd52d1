"""What a command prints on stderr: quiet by default, more with -v, one line per error.

Quiet (no -v) means: our own warnings and errors, nothing from the libraries underneath. Beam's
loggers (its worker-status chatter, the "apitools not found" import warning, the WARN lines its
worker processes forward) are raised to CRITICAL; transformers logs errors only and draws no
"Loading weights" bars (its LOAD REPORT tables are warnings); gRPC logs errors only. The
environment variables are set (unless the user set them) so that worker processes, which
import those libraries afresh, are quiet too. Beam's local worker processes also write to the
stderr they inherit; `child_stderr_to` sends that to a log file for the length of a pipeline
run (distiller.pipelines.build keeps the file when the build fails and names it in its one-line
error).

`-v` shows INFO and every library's own output; `-vv` DEBUG. `error_message` turns an exception
into the one line a command prints (the traceback only with -v).

It lives in the bottom layer (standard library only) because every layer sets its console up:
the `distiller` command, the demo, and the trainer's spawned ranks
(`distiller.distill_train.distributed`), which sit below the command layer and configure themselves
as their command did.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Iterator

__all__ = ["configure", "quiet_libraries", "is_quiet", "child_stderr_to", "error_message"]

_QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
              "GRPC_VERBOSITY": "ERROR"}


def _beam_root_record(record: logging.LogRecord) -> bool:
    """False for records that Beam's modules log on the root logger (kept otherwise)."""
    return f"{os.sep}apache_beam{os.sep}" not in (record.pathname or "")


def configure(verbosity: int, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s"
              ) -> None:
    """Logging for a command: WARNING (quiet libraries), INFO with -v, DEBUG with -vv."""
    level = logging.WARNING - 10 * min(max(verbosity, 0), 2)
    logging.basicConfig(level=level, format=fmt)
    if verbosity <= 0:
        quiet_libraries()


def quiet_libraries() -> None:
    """Silence Beam, transformers and gRPC below their errors, here and in child processes."""
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    logging.getLogger("apache_beam").setLevel(logging.CRITICAL)
    # torch's launcher logs a failing rank's traceback; `train --nproc` reports it in one line
    for name in ("torch.distributed.elastic", "torch.multiprocessing"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    root = logging.getLogger()
    if _beam_root_record not in root.filters:
        root.addFilter(_beam_root_record)
    if "transformers" in sys.modules:  # already imported: the variables were read at import
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()


def is_quiet() -> bool:
    """Whether this process runs quiet (no -v): the root logger is at WARNING or above."""
    return logging.getLogger().getEffectiveLevel() >= logging.WARNING


@contextlib.contextmanager
def child_stderr_to(path: str) -> Iterator[int]:
    """Point file descriptor 2 at `path` for the block, so that processes started inside it
    (Beam's worker processes inherit it) write their stderr there; yields a descriptor of the
    real stderr for what this process must still show (a progress bar). Python-level writes of
    this process to sys.stderr also land in `path` while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    try:
        yield saved
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


_ERRNO_HINTS = {
    errno.ENOSPC: "free disk space there and run the same command again",
    errno.EDQUOT: "free disk space (quota) there and run the same command again",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the filesystem is read-only: choose another path",
    errno.EISDIR: "it is a directory: give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
}


def error_message(exc: BaseException) -> str:
    """One line for an error: a KeyError's message without its quotes; an OSError's cause,
    path and what to do."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        hint = _ERRNO_HINTS.get(exc.errno or 0)
        return f"{exc.strerror}{where}" + (f" ({hint})" if hint else "")
    return str(exc)
