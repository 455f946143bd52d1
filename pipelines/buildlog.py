"""What a build shows on the console: the scoring progress bar, the workers' stderr sent to a
log file in quiet mode, and the Beam counters of the finished pipeline."""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Dict, Optional

from distiller.taskdata.console import child_stderr_to

__all__ = ["Progress", "beam_counters", "stderr_of_workers", "worker_log_path"]


def worker_log_path() -> str:
    """A new temp file for the workers' stderr."""
    fd, path = tempfile.mkstemp(prefix="distiller-build-", suffix=".log")
    os.close(fd)
    return path


@contextlib.contextmanager
def stderr_of_workers(log_path: Optional[str]):
    """Yields a descriptor of the real stderr; with `log_path`, processes started in the block
    write their stderr to that file (distiller.taskdata.console.child_stderr_to)."""
    if log_path is None:
        yield None
        return
    with child_stderr_to(log_path) as fd:
        yield fd


class Progress:
    """A tqdm bar fed from files the scoring step writes (local runners only), drawn on
    `stderr_fd` when the workers' stderr is sent elsewhere."""

    def __init__(self, directory: Optional[str], enabled: bool, stderr_fd: Optional[int] = None):
        self.directory, self.enabled = directory, enabled and directory is not None
        self.stderr_fd = stderr_fd
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _count(self) -> int:
        total = 0
        for name in os.listdir(self.directory):
            try:
                with open(os.path.join(self.directory, name)) as fh:
                    total += int(fh.read() or 0)
            except (OSError, ValueError):
                pass
        return total

    def _run(self) -> None:
        from tqdm import tqdm

        stream = None if self.stderr_fd is None else os.fdopen(os.dup(self.stderr_fd), "w")
        try:
            with tqdm(desc="distiller build: teacher scored", unit=" seq", leave=True,
                      file=stream) as bar:
                while not self._stop.wait(0.5):
                    bar.n = self._count()
                    bar.refresh()
                bar.n = self._count()
                bar.refresh()
        finally:
            if stream is not None:
                stream.close()

    def __enter__(self):
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


def beam_counters(result) -> Dict[str, int]:
    """The pipeline's Beam counters, where the runner reports metrics (not Dask)."""
    try:
        metrics = result.metrics().query()
    except (NotImplementedError, AttributeError):
        return {}
    out: Dict[str, int] = {}
    for counter in metrics.get("counters", []):
        name = counter.key.metric.name
        value = counter.committed if counter.committed is not None else counter.attempted
        out[name] = out.get(name, 0) + int(value or 0)
    return dict(sorted(out.items()))
