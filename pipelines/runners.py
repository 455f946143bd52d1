"""Runner options: DirectRunner multi-process by default, Dask, or any Beam runner by name.

- ``direct`` (default): Beam's DirectRunner (the portable FnApiRunner underneath) with
  ``--direct_running_mode=multi_processing --direct_num_workers=N``: N worker processes on this
  machine, each loading the teacher and the augmentation policy once (in ``setup``).
- ``dask``: Beam's DaskRunner on a ``dask.distributed`` cluster. With ``dask_address`` (e.g.
  ``tcp://10.0.0.5:8786``) the build is submitted to that scheduler; without it a local cluster of
  N single-threaded worker processes is started on loopback (127.0.0.1, no dashboard) for the
  duration of the build and closed afterwards. Worker processes import this project, so it must be
  installed where the workers run. The Dask runner reports no Beam metrics: the summary is
  computed by the pipeline's last step instead (distiller.pipelines.finalize).
- anything else (``FlinkRunner``, ``SparkRunner``, ``DataflowRunner``, ``PortableRunner`` ...):
  passed to Beam as ``--runner=<name>`` together with the extra pipeline arguments, untouched.
  These cannot be tested on this machine; the usual options apply, for example:

  * Flink: ``--runner FlinkRunner -- --flink_master=host:8081 --environment_type=LOOPBACK``
    (or ``--environment_type=DOCKER``/``PROCESS`` with a worker image that has this project);
  * Spark: ``--runner SparkRunner -- --spark_master_url=spark://host:7077
    --environment_type=PROCESS --environment_config='{"command": "/opt/beam/boot"}'``;
  * Dataflow: ``--runner DataflowRunner -- --project=P --region=R --temp_location=gs://B/tmp
    --sdk_container_image=IMAGE`` (or ``--setup_file=./setup.py``).

  On a remote runner every path (input, cache, dead-letter file, teacher) must be reachable from
  the workers (a shared filesystem or object store that the readers and the cache support).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
from typing import Iterator, List, Optional, Sequence

from distiller.common.errors import UsageError

__all__ = ["pipeline_args", "runner_context", "is_local_runner"]

log = logging.getLogger(__name__)

_ALIASES = {"direct": "DirectRunner", "directrunner": "DirectRunner", "dask": "DaskRunner",
            "daskrunner": "DaskRunner"}


def _canonical(runner: str) -> str:
    return _ALIASES.get(runner.lower(), runner)


def _root_level() -> int:
    return max(logging.getLogger().getEffectiveLevel(), logging.DEBUG)


def is_local_runner(runner: str) -> bool:
    """Whether workers run on this machine (direct, or dask with a local cluster)."""
    return _canonical(runner) in ("DirectRunner", "DaskRunner")


def pipeline_args(runner: str, *, workers: int, dask_address: Optional[str] = None,
                  extra: Sequence[str] = ()) -> List[str]:
    """Beam command-line pipeline arguments for a runner name."""
    if workers < 1:
        raise UsageError(f"workers must be >= 1, got {workers}")
    name = _canonical(runner)
    if name == "DirectRunner":
        args = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                f"--direct_num_workers={workers}",
                # worker processes log at the level of this process (INFO floods otherwise)
                f"--default_sdk_harness_log_level={logging.getLevelName(_root_level())}"]
    elif name == "DaskRunner":
        _require_dask()
        if not dask_address:
            raise UsageError("the Dask runner needs a scheduler address: use runner_context(), "
                             "which starts a local cluster, or pass --dask-address")
        args = ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
                f"--dask_client_address={dask_address}"]
    else:
        args = [f"--runner={name}"]
    return args + list(extra)


def _require_dask() -> None:
    """Dask comes with the optional extra: say how to get it instead of failing on an import."""
    if importlib.util.find_spec("dask") is None or importlib.util.find_spec("distributed") is None:
        raise UsageError("the Dask runner needs Dask, which is not installed: "
                         "pip install 'distiller-nlp[dask]'")


@contextlib.contextmanager
def runner_context(runner: str, *, workers: int, dask_address: Optional[str] = None,
                   extra: Sequence[str] = ()) -> Iterator[List[str]]:
    """Yield the pipeline arguments; for ``dask`` without an address, run a local cluster
    (loopback only) for the duration of the block and close it afterwards."""
    if _canonical(runner) != "DaskRunner" or dask_address:
        yield pipeline_args(runner, workers=workers, dask_address=dask_address, extra=extra)
        return
    _require_dask()
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    log.info("started a local dask cluster at %s with %d worker(s)", cluster.scheduler_address,
             workers)
    try:
        yield pipeline_args(runner, workers=workers, dask_address=cluster.scheduler_address,
                            extra=extra)
    finally:
        cluster.close()
