"""Build a distillation set: a raw corpus → augmented, deduplicated, teacher-scored cache.

    read → key → augment → key copies → dedupe by key → drop cached keys → score → commit → index

`BuildDistillSet` is the Beam composite; `build_distill_set(BuildOptions(...))` is the Python entry
point (what `distiller build` and the demo call): it creates or opens the cache for the teacher's
spec, runs the pipeline on the chosen runner and returns the summary.

Corpus names written to the cache: ``f"{task}-{split}"`` for the originals and, with a policy,
``f"{task}-{split}+{policy.name}"`` for originals plus augmented copies (the task's own name: a
built-in one or the user's). Each corpus records its task (labels, kind, metrics) in the cache, so
training and evaluation read it from there.

A language-model task (kind masked_lm / causal_lm) takes the same steps with a token-level teacher
(distiller.builders.teacher.token_teacher): a row per text holding the sparse form `tokens` of
the teacher's distribution at each predicted position (a masked LM's input masked from the
record's key, which holds the masking settings).

A span task (extractive question answering, SQuAD) takes the same steps with one more: its
records (questions) are cut into context windows (distiller.pipelines.windows) before keying, and a
window is what is scored, cached and indexed; augmentation changes the question only (the task's
``augment_fields``) and happens before windowing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import apache_beam as beam

from distiller.common.errors import UsageError
from distiller.pipelines.augmentation import AugmentCorpus
from distiller.pipelines.buildcheck import check_outputs, failure_message
from distiller.pipelines.buildlog import Progress, beam_counters, stderr_of_workers, worker_log_path
from distiller.pipelines.dedupe import CachedKeys, MissingKeys
from distiller.pipelines.finalize import CommitAndIndex
from distiller.pipelines.keying import KeyRecords
from distiller.pipelines.mixup import MixupPairs
from distiller.pipelines.read import ReadCorpus
from distiller.pipelines.score import ScoreWithTeacher
from distiller.pipelines.windows import WindowRecords
from distiller.taskdata.console import is_quiet

__all__ = ["BuildOptions", "BuildDistillSet", "BuildError", "build_distill_set", "corpus_names"]

log = logging.getLogger(__name__)


class BuildError(RuntimeError):
    """The pipeline failed on a worker; the message is one line: the worker's last error line,
    what to do, and where the workers' log is (distiller.pipelines.buildcheck.failure_message)."""


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Everything one build needs; parsed once at the entry point and passed down."""

    # files, a glob, a saved dataset or hf:NAME (distiller.taskdata.sources)
    input: str
    task: Any                       # a taskdata.Task or a built-in task name: columns, labels
    teacher: str                    # HF model name or save_pretrained directory
    cache: str                      # teacher-cache directory (created if absent)
    augment: Optional[Any] = None   # policy spec string, YAML path or dict; None = originals only
    split: str = "train"            # split name used in corpus names
    runner: str = "direct"          # direct | dask | any Beam runner name
    workers: Optional[int] = None   # worker processes (direct, local dask); None = one per GPU
    #                                 the devices give, else 2 (at most the CPUs)
    # auto | cpu | cuda | cuda:0,cuda:1,... (distiller.pipelines.devices)
    devices: str = "auto"
    threads_per_worker: Optional[int] = None  # torch threads per local worker; None = CPUs//workers
    dask_address: Optional[str] = None  # existing dask scheduler; None starts a local cluster
    dead_letters: Optional[str] = None  # JSONL of rejected rows; default next to the cache
    seed: int = 0                   # base seed of every augmentation choice
    max_length: int = 128           # teacher tokens per input (special tokens included)
    doc_stride: int = 128           # span tasks: context tokens between window starts
    max_query_length: int = 64      # span tasks: question tokens kept
    reject_long: bool = False       # over-long texts: dead letters (True) or truncated (False)
    labelled: bool = True           # False: an unlabelled corpus (texts only, label None)
    limit: Optional[int] = None     # read only the first N rows
    layers: Union[str, Tuple[int, ...]] = "all"  # hidden states kept (0 = embeddings)
    pooling: str = "none"           # none | cls | mean
    attentions: bool = False        # keep attention maps
    dtype: str = "float16"          # stored tensor dtype (float16 | float32 | int8)
    amp: str = "auto"               # teacher precision: auto | bf16 | fp16 | off (TeacherConfig)
    backend: str = "eager"          # what runs the teacher: eager | compile | onnx (TeacherConfig)
    unit_size: int = 1024           # records per scoring work unit = per shard
    write_shards_in_scoring: bool = True  # False: pass tensors on and write later (for measuring)
    share_model: bool = False       # one teacher per machine across processes (large teachers)
    beam_args: Sequence[str] = ()   # extra pipeline options, passed to Beam untouched
    progress: bool = True           # progress bar on stderr
    mixup: int = 0                  # mixup pairs per corpus record (0 = no mixup)
    mixup_alpha: float = 0.4        # λ ~ Beta(alpha, alpha)
    tokens: str = ""                # language-model tasks: topk:K | sample:N per predicted token
    mask_prob: float = 0.15         # masked_lm: share of each text's tokens masked
    mask_seed: int = 0              # masked_lm: seed mixed into every record's masking

    def __post_init__(self) -> None:
        from distiller.taskdata.resolve import resolve_task

        object.__setattr__(self, "task", resolve_task(self.task))
        if self.task is None:
            raise UsageError("a build needs a task (a built-in name or a taskdata.Task)")
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"workers must be >= 1, got {self.workers}")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise UsageError(f"threads_per_worker must be >= 1, got {self.threads_per_worker}")
        if self.max_length < 2:
            raise UsageError(f"max_length must be >= 2, got {self.max_length}")
        if self.limit is not None and self.limit < 0:
            raise UsageError(f"limit must be >= 0, got {self.limit}")
        if self.mixup < 0 or self.mixup_alpha <= 0:
            raise UsageError(f"mixup must be >= 0 and mixup_alpha > 0, got {self.mixup} and "
                             f"{self.mixup_alpha}")
        if self.mixup and self.backend == "onnx":
            raise UsageError("mixup scores interpolated embeddings, which the onnx backend does "
                             "not take: use --backend eager or compile with --mixup")
        if not self.split:
            raise UsageError("split must be non-empty: it names the corpora written")
        if self.task.is_lm and not self.tokens:
            raise UsageError(f"task {self.task.name} is a {self.task.kind} task: give --tokens "
                             "topk:K or --tokens sample:N (what is kept per predicted token)")
        if self.tokens and not self.task.is_lm:
            raise UsageError(f"--tokens is for language-model tasks (--kind masked_lm or "
                             f"causal_lm); task {self.task.name} is {self.task.kind}")
        if self.task.is_lm and self.mixup:
            raise UsageError("mixup interpolates whole inputs of classification and regression "
                             f"tasks; task {self.task.name} is a language model's: drop --mixup")
        if self.task.is_span and self.mixup:
            raise UsageError("mixup interpolates whole inputs of classification and regression "
                             f"tasks; task {self.task.name} is question answering: drop --mixup")
        object.__setattr__(self, "beam_args", tuple(self.beam_args))


def corpus_names(task: str, split: str, policy_name: Optional[str], *, mixup: int = 0,
                 mixup_alpha: float = 0.4) -> list:
    """[originals corpus] or [originals corpus, originals + copies corpus] (docs/cache.md,
    "Corpora"), then, with mixup, the last of those plus mixup pairs:
    ``<last>+mixup-n<N>-a<alpha>``."""
    base = f"{task}-{split}"
    names = [base] if policy_name is None else [base, f"{base}+{policy_name}"]
    if mixup:
        names.append(f"{names[-1]}+mixup-n{mixup}-a{mixup_alpha:g}")
    return names


def _teacher_config(opts: BuildOptions, num_labels: Optional[int] = None):
    from distiller.builders.teacher.model import TeacherConfig
    from distiller.pipelines.runners import is_local_runner

    # Each local worker process gets its share of this machine's CPUs (no oversubscription);
    # on a remote runner (or a remote dask scheduler) workers use the CPUs they have.
    threads = opts.threads_per_worker
    if threads is None and is_local_runner(opts.runner) and not opts.dask_address:
        from distiller.builders.teacher.devices import usable_cpus

        threads = max(1, usable_cpus() // opts.workers)
    return TeacherConfig(model=opts.teacher, max_length=opts.max_length, layers=opts.layers,
                         pooling=opts.pooling, attentions=opts.attentions, num_threads=threads,
                         amp=opts.amp, num_labels=num_labels, backend=opts.backend,
                         head=opts.task.kind if opts.task.is_lm else "span" if opts.task.is_span
                         else "sequence", doc_stride=opts.doc_stride,
                         max_query_length=opts.max_query_length, tokens=opts.tokens,
                         mask_prob=opts.mask_prob, mask_seed=opts.mask_seed)


class BuildDistillSet(beam.PTransform):
    """PBegin → the build summary (one dict), with the cache committed and indexed."""

    def __init__(self, opts: BuildOptions, *, teacher_config, names, dead_letter_path: str,
                 summary_path: str, progress_dir: Optional[str] = None,
                 batch_by_shuffle: bool = False, devices=None, staging_dir: str = "",
                 known_shards: Sequence[str] = ()):
        super().__init__()
        # issue 19: where the workers write the corpus parts; the shards committed at the start
        self.staging_dir, self.known_shards = staging_dir, tuple(known_shards)
        self.batch_by_shuffle = batch_by_shuffle
        self.devices = devices  # distiller.pipelines.devices.DevicePlan (None: the config's device)
        self.opts, self.teacher_config, self.names = opts, teacher_config, names
        self.dead_letter_path, self.summary_path = dead_letter_path, summary_path
        self.progress_dir = progress_dir

    def expand(self, pbegin):
        o = self.opts
        originals, bad_rows = pbegin | "read" >> ReadCorpus(
            o.input, task=o.task, labelled=o.labelled, limit=o.limit)
        if o.task.is_span:
            everything, dead, questions = self._windows(originals, bad_rows)
        else:
            keyed, too_long = originals | "key_originals" >> KeyRecords(
                self.teacher_config, reject_long=o.reject_long, source=o.input,
                batch_by_shuffle=self.batch_by_shuffle, devices=self.devices)
            everything, dead = [keyed], [bad_rows, too_long]
            questions = pbegin | "no_questions" >> beam.Create([])
            if o.augment is not None:
                copies = keyed | "augment" >> AugmentCorpus(
                    o.augment, base_seed=o.seed, fields=o.task.augment_fields,
                    batch_by_shuffle=self.batch_by_shuffle)
                keyed_copies, long_copies = copies | "key_copies" >> KeyRecords(
                    self.teacher_config, reject_long=o.reject_long, source=o.input,
                    batch_by_shuffle=self.batch_by_shuffle, devices=self.devices)
                everything.append(keyed_copies)
                dead.append(long_copies)
        records = everything | "originals_and_copies" >> beam.Flatten()
        cached = pbegin | "cached_keys" >> CachedKeys(o.cache)
        missing, key_counts = records | "missing_keys" >> MissingKeys(cached, count="rows")
        shards = (missing
                  | "score" >> ScoreWithTeacher(
                      self.teacher_config, cache_path=o.cache, unit_size=o.unit_size,
                      write_shards=o.write_shards_in_scoring, share_model=o.share_model,
                      progress_dir=self.progress_dir, devices=self.devices))
        pairs, shards, key_counts = self._mixup(records, cached, shards, key_counts)
        dead_letters = dead | "all_dead_letters" >> beam.Flatten()
        return ((shards, records, dead_letters, pairs, key_counts, questions)
                | "commit" >> CommitAndIndex(
                    cache_path=o.cache, corpus_names=self.names,
                    dead_letter_path=self.dead_letter_path, summary_path=self.summary_path,
                    mixup=bool(o.mixup), task=o.task.to_dict(), labelled=o.labelled,
                    staging_dir=self.staging_dir, known_shards=self.known_shards,
                    by_shuffle=self.batch_by_shuffle))

    def _windows(self, originals, bad_rows):
        """Span tasks: ([window records], [dead letters], question rows); copies (the question
        augmented) are made from the question records, then windowed like the originals."""
        o = self.opts
        windows, questions, too_long = originals | "window_originals" >> WindowRecords(
            self.teacher_config, reject_long=o.reject_long, source=o.input,
            batch_by_shuffle=self.batch_by_shuffle)
        everything, dead = [windows], [bad_rows, too_long]
        if o.augment is not None:
            copies = originals | "augment" >> AugmentCorpus(
                o.augment, base_seed=o.seed, fields=o.task.augment_fields,
                batch_by_shuffle=self.batch_by_shuffle)
            copy_windows, _, long_copies = copies | "window_copies" >> WindowRecords(
                self.teacher_config, reject_long=o.reject_long, source=o.input,
                question_rows=False, batch_by_shuffle=self.batch_by_shuffle)
            everything.append(copy_windows)
            dead.append(long_copies)
        return everything, dead, questions

    def _mixup(self, records, cached, shards, key_counts):
        """(mixup pair rows, all shards, all key counts): pairs drawn and scored when mixup is
        on."""
        o = self.opts
        if not o.mixup:
            return records.pipeline | "no_mixup" >> beam.Create([]), shards, key_counts
        pairs = records | "mixup_pairs" >> MixupPairs(
            pairs_per_example=o.mixup, alpha=o.mixup_alpha, seed=o.seed)
        missing, mix_counts = pairs | "missing_mixup_keys" >> MissingKeys(cached, count="mix")
        mixed_shards = (missing
                        | "score_mixup" >> ScoreWithTeacher(
                            self.teacher_config, cache_path=o.cache, unit_size=o.unit_size,
                            share_model=o.share_model, progress_dir=self.progress_dir,
                            mixup=True, devices=self.devices))
        return (pairs, (shards, mixed_shards) | "all_shards" >> beam.Flatten(),
                (key_counts, mix_counts) | "all_key_counts" >> beam.Flatten())


def build_distill_set(opts: BuildOptions) -> Dict[str, Any]:
    """Run one build; returns the summary: records_read, augmented_copies, cache_hits,
    newly_scored, dead_letters (+ reasons), bytes_written, seconds, beam_counters, ..."""
    from distiller.builders.cache.store import TeacherCache
    from distiller.builders.cache.corpusparts import staging_dir
    from distiller.builders.cache.leftovers import remove_dead_temp_files, temp_files
    from distiller.builders.teacher.precision import COMPUTE_OF_AMP
    from distiller.builders.teacher.model import make_teacher
    from distiller.builders.cache.vocab import record_vocabulary
    from distiller.pipelines.batching import uses_shuffle_batching
    from distiller.pipelines.devices import place_build
    from distiller.pipelines.runners import is_local_runner, runner_context

    from distiller.builders.teacher.taskfit import fit_teacher_to_task
    from distiller.taskdata.reader import check_input

    start = time.monotonic()
    # the input's columns and the teacher's head are checked before any work
    check_input(opts.input, opts.task, labelled=opts.labelled)
    task, num_labels = fit_teacher_to_task(opts.teacher, opts.task)
    opts = dataclasses.replace(opts, task=task)
    # issue 19: one worker per device; the precision the cache records, or a clear error
    opts, devices = place_build(opts)
    policy_name = None
    if opts.augment is not None:
        from distiller.augment.policy import AugmentationPolicy

        policy = AugmentationPolicy.from_spec(opts.augment).check_models()
        policy_name = policy.name
    names = corpus_names(task.name, opts.split, policy_name, mixup=opts.mixup,
                         mixup_alpha=opts.mixup_alpha)
    dead_path = opts.dead_letters or os.path.join(
        os.path.abspath(opts.cache).rstrip("/") + ".dead_letters",
        f"{names[1 if len(names) > 1 and policy_name else 0]}.jsonl")
    # every name and path the build writes, checked before the teacher loads
    # (distiller.pipelines.buildcheck)
    check_outputs(cache=opts.cache, corpus_names=names, dead_letter_path=dead_path)
    summary_path = dead_path + ".summary.json"
    teacher_config = _teacher_config(opts, num_labels)
    # the driver's teacher only fingerprints: on the CPU, at the precision the workers will use
    teacher = make_teacher(dataclasses.replace(teacher_config, device="cpu", amp="off")).load()
    spec = teacher.spec(opts.dtype).with_(compute=COMPUTE_OF_AMP[opts.amp])
    # a spec mismatch is an error here, before any work
    cache = TeacherCache.open_or_create(opts.cache, spec)
    record_vocabulary(cache, teacher.tokenizer)
    del teacher
    # under the lock: temp files of writers that are gone (a killed build) are removed, and
    # what an interrupted build scored but did not commit is committed now, not scored again.
    # While another writer is at work on the cache (a staging directory or temp file whose
    # process runs), uncommitted shards may be its own, still to be committed by it: they are
    # left to it, so that each build commits what it scored and says who committed what.
    remove_dead_temp_files(cache.path)
    at_work = [t for t in temp_files(cache.path) if t.alive]
    if at_work:
        log.info("%s: left uncommitted shards to the writer at work there (%s)", cache.path,
                 at_work[0].describe())
    adopted = [] if at_work else cache.adopt_uncommitted()
    known_shards = [info.name for info in cache.shards()]  # the keys the build will exclude
    staging = staging_dir(cache.path)  # the workers' corpus and dead-letter parts
    if os.path.exists(summary_path):
        os.unlink(summary_path)
    local = is_local_runner(opts.runner)
    progress_dir = tempfile.mkdtemp(prefix="distiller-progress-") if local else None
    # quiet (no -v): local worker processes write their stderr to a log, kept if the build fails
    worker_log = worker_log_path() if local and is_quiet() else None
    failed = False
    try:
        with stderr_of_workers(worker_log) as stderr_fd, \
                runner_context(opts.runner, workers=opts.workers, dask_address=opts.dask_address,
                               extra=opts.beam_args) as args:
            pipeline = beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(args))
            _ = pipeline | "build_distill_set" >> BuildDistillSet(
                opts, teacher_config=teacher_config, names=names, dead_letter_path=dead_path,
                summary_path=summary_path, progress_dir=progress_dir,
                batch_by_shuffle=uses_shuffle_batching(args), devices=devices,
                staging_dir=staging, known_shards=known_shards)
            with Progress(progress_dir, opts.progress, stderr_fd):
                try:
                    result = pipeline.run()
                    try:
                        result.wait_until_finish()
                    finally:
                        client = getattr(result, "client", None)  # the Dask runner's client
                        if client is not None:
                            client.close()
                except Exception as exc:  # a worker's error arrives wrapped by the runner
                    failed = True
                    raise BuildError(failure_message(exc, cache=opts.cache,
                                                     log_path=worker_log)) from exc
    finally:
        devices.release()
        shutil.rmtree(staging, ignore_errors=True)
        if progress_dir:
            shutil.rmtree(progress_dir, ignore_errors=True)
        if worker_log and not failed:
            with contextlib.suppress(OSError):
                os.unlink(worker_log)
    if not os.path.exists(summary_path):
        raise RuntimeError(f"the build finished without writing its summary {summary_path!r}: "
                           "check the runner's logs")
    with open(summary_path, encoding="utf-8") as fh:
        summary = json.loads(fh.readline())
    summary.update({"seconds": round(time.monotonic() - start, 3), "cache": opts.cache,
                    "runner": opts.runner, "workers": opts.workers,
                    "devices": ",".join(devices.slots) or opts.devices, "amp": opts.amp,
                    "adopted_rows": sum(i.rows for i in adopted),
                    "task": task.describe(), "labelled": opts.labelled,
                    "beam_counters": beam_counters(result)})
    return summary
