"""Data-parallel training with torch.distributed: what `train` needs to run as N processes.

Launch with PyTorch's own launcher: ``torchrun --nproc-per-node N -m distiller train ...``,
or ``distiller train --nproc N ...`` (launcher.py, which starts the ranks with the same
elastic launcher through `run_ranks`). Each process (a *rank*) then:

- takes its device: ``cuda:LOCAL_RANK`` when the config's device is auto or cuda and GPUs exist
  (process group backend nccl), else the CPU (gloo);
- reads its own part of the cache: every epoch's order is the same on all ranks (seeded by
  (seed, epoch)), cut into *global* batches of ``batch_size × world size`` rows, and rank r takes
  the r-th slice of each (`RankBatches`); the last, short global batch is split as evenly as it
  goes and each rank's loss is weighted by its share, so the averaged gradient is the global
  batch's mean gradient for per-example losses; on a GPU a DataLoader with worker processes and
  pinned memory fetches the rank's batches, on a CPU the trainer's prefetch thread does;
- trains the student and the objective's own parameters (MI critics, projections) wrapped
  together in one DistributedDataParallel module (`StudentStep`), which averages gradients;
- draws dropout from a generator seeded by (seed, epoch, rank).

Rank 0 alone evaluates (the result is broadcast, so every rank keeps the same best epoch and
early stopping), writes metrics.jsonl, checkpoints (holding every rank's RNG state), the best
model and result.json. A resumed run needs the world size it was started with.

With one process (no torchrun environment) nothing here changes the trainer: no process group,
the same batches, weights of 1.0 and the single-process seeds.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch

from distiller.common.device import cuda_rng_states, gpu_count
from distiller.common.errors import UsageError
from distiller.common.seeding import derive_seed

from .forward import logits_of, scored_logits, student_forward

__all__ = ["DistContext", "setup", "teardown", "StudentStep", "wrap", "RankBatches",
           "global_parts", "on_main", "gather_rng", "barrier", "epoch_seed", "NullLog",
           "run_ranks", "rank_from_env", "RankFailed"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistContext:
    """rank, world_size, local_rank of this process; `owns_group`: setup created the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_from_env() -> int:
    """This process's rank as torchrun sets it (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def _rank_device(name: str, local_rank: int) -> torch.device:
    if name == "cpu" or (name == "auto" and gpu_count() == 0):
        return torch.device("cpu")
    if name in ("auto", "cuda"):
        if local_rank >= gpu_count():
            raise UsageError(f"rank with LOCAL_RANK {local_rank} has no GPU: this machine sees "
                             f"{gpu_count()}; start at most that many processes")
        return torch.device(f"cuda:{local_rank}")
    raise UsageError(f"device {name!r} with several processes: use auto or cuda (each rank takes "
                     "cuda:LOCAL_RANK) or cpu")


def setup(device_name: str) -> Tuple[DistContext, Optional[torch.device]]:
    """(context, device) of this process. Under torchrun (WORLD_SIZE > 1) the process group is
    initialised (gloo on CPUs, nccl on GPUs) and the device is the rank's; with one process the
    device is None (the trainer picks it as before)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = _rank_device(device_name, local)
    owns = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        owns = True
    ctx = DistContext(rank=rank, world_size=world, local_rank=local, owns_group=owns)
    log.info("rank %d of %d on %s", rank, world, device)
    return ctx, device


def teardown(ctx: DistContext) -> None:
    import torch.distributed as dist

    if ctx.owns_group and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


class StudentStep(torch.nn.Module):
    """The student and the objective as one module: forward(batch) → (loss, loss parts), so that
    one DistributedDataParallel wrapper averages the gradients of both."""

    def __init__(self, model, objective, *, hidden: bool, attentions: bool):
        super().__init__()
        self.model, self.objective = model, objective
        self.hidden, self.attentions = hidden, attentions

    def forward(self, batch: Mapping[str, Any]):
        if "positions" in batch:  # a token-level batch: the LM head at the scored positions only
            return self.objective(student_logits=scored_logits(self.model, batch), batch=batch)
        out = student_forward(self.model, batch, hidden=self.hidden, attentions=self.attentions)
        return self.objective(student_logits=logits_of(out), student_hidden=out.hidden_states,
                              student_attn=out.attentions, batch=batch)


def wrap(model, objective, ctx: DistContext, device, *, hidden: bool, attentions: bool):
    """The training step module: `StudentStep`, inside DistributedDataParallel with several
    processes (parameters broadcast from rank 0; unused ones tolerated: an objective may not use
    every projection on every batch)."""
    step = StudentStep(model, objective, hidden=hidden, attentions=attentions)
    if not ctx.enabled:
        return step
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    with warnings.catch_warnings():  # its replacement still syncs buffers at init (torch 2.13)
        warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated",
                                category=FutureWarning)
        return DistributedDataParallel(step, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=True)


def sync_gradients(step, at_step_end: bool):
    """A context in which backward averages gradients across ranks only at the end of an
    accumulation group (DDP's no_sync for the micro-batches before)."""
    if at_step_end or not hasattr(step, "no_sync"):
        return contextlib.nullcontext()
    return step.no_sync()


def rank_slice(chunk: Sequence[Any], ctx: DistContext) -> Tuple[List[Any], float]:
    """(this rank's rows of a global batch, its loss weight). Slices differ by at most one row;
    weight = rows × world / global rows (1.0 for a full batch). A rank left without a row (a
    last batch shorter than the world) takes the first row with weight 0: it still joins the
    gradient average, adding nothing."""
    n = len(chunk)
    lo, hi = n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size
    mine = list(chunk[lo:hi])
    if not mine:
        return [chunk[0]], 0.0
    return mine, len(mine) * ctx.world_size / n


class RankBatches:
    """This rank's batches of a `distiller.distill_train.data.Batches`: epoch(e, skip) yields (rows,
    batch, weight) for each global batch from `skip` on; len() counts global batches."""

    def __init__(self, batches, ctx: DistContext, device: torch.device, *,
                 workers: Optional[int] = None):
        self.batches, self.ctx, self.device = batches, ctx, device
        # on a GPU: a DataLoader with worker processes and pinned memory; else the trainer's
        # own prefetch thread (pinning needs a GPU)
        cuda = device.type == "cuda"
        self.workers = (2 if cuda else 0) if workers is None else workers
        self.use_loader = cuda or self.workers > 0

    def __len__(self) -> int:
        rows, size = len(self.batches.rows), self.batches.batch_size * self.ctx.world_size
        return (rows + size - 1) // size

    def _chunks(self, epoch: int, skip: int) -> List[Tuple[List[Mapping], float]]:
        b = self.batches
        order, size = b.order(epoch), b.batch_size * self.ctx.world_size
        out = []
        for start in range(skip * size, len(order), size):
            rows = [b.rows[i] for i in order[start:start + size]]
            out.append(rank_slice(rows, self.ctx))
        return out

    def epoch(self, epoch: int, skip: int = 0) -> Iterator[Tuple[List[Mapping], Dict, float]]:
        if not self.ctx.enabled and not self.use_loader:  # one process: exactly as before
            for rows, batch in self.batches.epoch(epoch, skip):
                yield rows, batch, 1.0
            return
        chunks = self._chunks(epoch, skip)
        if not self.use_loader:
            yield from self._threaded(chunks)
            return
        # its own generator: a DataLoader draws its workers' base seed from the global RNG
        # otherwise, which would shift dropout and break an exact resume (the iterator is
        # made at a different step after one)
        loader = torch.utils.data.DataLoader(
            _Fetched(chunks, self.batches.fetch), batch_size=None, shuffle=False,
            num_workers=self.workers, pin_memory=self.device.type == "cuda",
            multiprocessing_context=_fork_context() if self.workers else None,
            generator=torch.Generator().manual_seed(derive_seed(self.batches.seed, "loader",
                                                                epoch)))
        for (rows, weight), batch in zip(chunks, loader):
            yield rows, batch, weight

    def _threaded(self, chunks):
        from concurrent.futures import ThreadPoolExecutor

        if not self.batches.prefetch:
            for rows, weight in chunks:
                yield rows, self.batches.fetch(rows), weight
            return
        with ThreadPoolExecutor(1, thread_name_prefix="distiller-prefetch") as pool:
            pending = None
            for rows, weight in chunks:
                future = pool.submit(self.batches.fetch, rows)
                if pending is not None:
                    yield pending[0], pending[2].result(), pending[1]
                pending = (rows, weight, future)
            if pending is not None:
                yield pending[0], pending[2].result(), pending[1]


class _Fetched(torch.utils.data.Dataset):
    """The padded batch of each chunk of rows (DataLoader workers call `fetch`)."""

    def __init__(self, chunks, fetch: Callable):
        self.chunks, self.fetch = chunks, fetch

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int):
        return self.fetch(self.chunks[index][0])


def _fork_context():
    """Workers are forked (the cache reader and the fetch closure are inherited, not pickled);
    where fork does not exist (Windows) the loader runs in this process."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        raise UsageError("loader_workers > 0 needs the fork start method (Linux, macOS): set "
                         "loader_workers 0")
    return multiprocessing.get_context("fork")


def global_parts(parts: Dict[str, float], ctx: DistContext) -> Dict[str, float]:
    """Loss parts of the global batch: each rank passes its parts already multiplied by its
    weight; their mean over ranks is the global batch's value. Unchanged with one process."""
    if not ctx.enabled or not parts:
        return parts
    import torch.distributed as dist

    names = sorted(parts)
    values = torch.tensor([float(parts[k]) for k in names], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        values = values.cuda()
    dist.all_reduce(values)
    return {k: float(v) / ctx.world_size for k, v in zip(names, values.cpu().tolist())}


def on_main(ctx: DistContext, fn: Callable[[], Any]) -> Any:
    """fn() run on rank 0, its result given to every rank (the others wait)."""
    if not ctx.enabled:
        return fn()
    import torch.distributed as dist

    box = [fn() if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rng(ctx: DistContext) -> Optional[List[Dict[str, Any]]]:
    """Every rank's RNG state (on every rank), for a mid-epoch checkpoint; None with one process
    (the checkpoint's own RNG state is then the only one)."""
    if not ctx.enabled:
        return None
    import torch.distributed as dist

    mine = {"cpu": torch.get_rng_state(),
            "cuda": cuda_rng_states()}
    out: List[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, mine)
    return out


def epoch_seed(seed: int, epoch: int, ctx: DistContext) -> int:
    """The seed of an epoch's dropout draws: (seed, epoch) alone with one process, as before;
    with several, each rank its own (seed, epoch, rank)."""
    if not ctx.enabled:
        return derive_seed(seed, "epoch", epoch)
    return derive_seed(seed, "epoch", epoch, "rank", ctx.rank)


class NullLog:
    """What ranks other than 0 log to: nothing."""

    def event(self, record: Dict[str, Any]) -> None:
        pass

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class RankFailed(UsageError):
    """A rank of a `launch`ed run failed: the message names the rank and its error (a
    UsageError so that the command prints it as its one error line; -v adds the traceback)."""


def _recorded(fn: Callable, *args: Any) -> Any:
    """fn(*args) with its error recorded for the launcher (which reports the first failure)."""
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(fn)(*args)


def run_ranks(fn: Callable, args: Sequence[Any], nproc: int) -> Dict[int, Any]:
    """fn(*args) in `nproc` processes on this machine, started by PyTorch's elastic launcher as
    `torchrun --standalone` starts them (a c10d rendezvous on a free local port, RANK,
    WORLD_SIZE, LOCAL_RANK set); fn must be importable (spawned processes import it). Returns
    {rank: result}; a failing rank stops the others and raises `RankFailed` naming it."""
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    spec = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                        monitor_interval=0.2, start_method="spawn")
    try:
        return elastic_launch(spec, _recorded)(fn, *args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        message = failure.message
        if isinstance(message, dict):
            message = message.get("message", "")
        detail = message or f"exit code {failure.exitcode}"
        raise RankFailed(f"rank {rank} of {nproc} failed: {detail}") from exc
