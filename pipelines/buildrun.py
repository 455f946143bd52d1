"""Running a build's pipeline on its runner: the runner's options, the progress bar, the workers'
stderr (a log file in quiet mode, kept only if the build fails) and a failure as one line.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Callable, Optional, Sequence

import apache_beam as beam

from distiller.pipelines.batching import uses_shuffle_batching
from distiller.pipelines.buildcheck import failure_message
from distiller.pipelines.buildlog import Progress, stderr_of_workers, worker_log_path
from distiller.pipelines.runners import is_local_runner, runner_context
from distiller.taskdata.console import is_quiet

__all__ = ["BuildError", "run_pipeline"]


class BuildError(RuntimeError):
    """The pipeline failed on a worker; the message is one line: the worker's last error line,
    what to do, and where the workers' log is (distiller.pipelines.buildcheck.failure_message)."""


def run_pipeline(make_transform: Callable[[Optional[str], bool], beam.PTransform], *,
                 runner: str, workers: Optional[int], dask_address: Optional[str],
                 beam_args: Sequence[str], progress: bool, cache: str) -> Any:
    """Run `make_transform(progress_dir, batch_by_shuffle)` applied to a new pipeline on
    `runner` to its end; returns Beam's result. BuildError (one line, naming the workers' log)
    if a worker fails. progress_dir: where the scoring step reports (local runners only);
    batch_by_shuffle: whether the runner's options ask for shuffle batching."""
    local = is_local_runner(runner)
    progress_dir = tempfile.mkdtemp(prefix="distiller-progress-") if local else None
    # quiet (no -v): local worker processes write their stderr to a log, kept if the build fails
    worker_log = worker_log_path() if local and is_quiet() else None
    failed = False
    try:
        with stderr_of_workers(worker_log) as stderr_fd, \
                runner_context(runner, workers=workers, dask_address=dask_address,
                               extra=beam_args) as args:
            pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(args))
            _ = pipeline | "build_distill_set" >> make_transform(progress_dir,
                                                                 uses_shuffle_batching(args))
            with Progress(progress_dir, progress, stderr_fd):
                try:
                    return _run_to_end(pipeline)
                except Exception as exc:  # a worker's error arrives wrapped by the runner
                    failed = True
                    raise BuildError(failure_message(exc, cache=cache,
                                                     log_path=worker_log)) from exc
    finally:
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
        if worker_log and not failed:
            with contextlib.suppress(OSError):
                os.unlink(worker_log)


def _run_to_end(pipeline: beam.Pipeline) -> Any:
    """Run `pipeline` and wait for its end; the Dask runner's client is closed either way."""
    result = pipeline.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # the Dask runner's client
        if client is not None:
            client.close()
    return result
