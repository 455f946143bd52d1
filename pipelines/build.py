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
(builders.teacher.token_teacher): a row per text keeps its sparse distribution at each position.

A span task (extractive question answering, SQuAD) takes the same steps with one more: its
records (questions) are cut into context windows (distiller.pipelines.windows) before keying, and a
window is what is scored, cached and indexed; augmentation changes the question only (the task's
``augment_fields``) and happens before windowing.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import apache_beam as beam

from distiller.augment.policy import AugmentationPolicy
from distiller.builders.cache.corpusparts import staging_dir
from distiller.builders.cache.leftovers import remove_dead_temp_files, temp_files
from distiller.builders.cache.spec import BACKENDS, DTYPES, POOLINGS, TOKENS_ALLOWED
from distiller.builders.cache.store import TeacherCache
from distiller.builders.cache.vocab import record_vocabulary
from distiller.builders.teacher.config import TeacherConfig, head_for
from distiller.builders.teacher.devices import usable_cpus
from distiller.builders.teacher.factory import make_teacher
from distiller.builders.teacher.precision import COMPUTE_OF_AMP
from distiller.builders.teacher.taskfit import fit_teacher_to_task
from distiller.common.config import Allowed, Rule, Wording, setting, validate
from distiller.pipelines.augmentation import AugmentCorpus
from distiller.pipelines.buildcheck import check_outputs
from distiller.pipelines.buildlog import beam_counters
from distiller.pipelines.buildrun import BuildError, run_pipeline
from distiller.pipelines.dedupe import CachedKeys, MissingKeys
from distiller.pipelines.devices import DevicePlan, place_build
from distiller.pipelines.finalize import CommitAndIndex
from distiller.pipelines.keying import KeyRecords
from distiller.pipelines.mixup import MixupPairs
from distiller.pipelines.read import ReadCorpus
from distiller.pipelines.runners import is_local_runner
from distiller.pipelines.score import ScoreWithTeacher
from distiller.pipelines.windows import WindowRecords
from distiller.taskdata.reader import check_input
from distiller.taskdata.resolve import is_task_file, resolve_task
from distiller.taskdata.task import Task

__all__ = ["BuildOptions", "BuildDistillSet", "BuildError", "build_distill_set", "corpus_names"]

log = logging.getLogger(__name__)


def _task_of_build(value: Any) -> Task:
    """The build's task, resolved without reading a file: a Task, a built-in name (an unknown
    name says which are built in) or a mapping of task keys."""
    if value is None or is_task_file(value):
        raise TypeError(value)
    return resolve_task(value)


_COUNT = Allowed(kind="int", low=1)
_WORDING = Wording(field="build option {key!r}", whole="build")


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Everything one build needs; parsed once at the entry point and passed down. Each field
    declares what it may hold (distiller.common.config), `BUILD_RULES` the rules between fields;
    validation reads no file."""

    # files, a glob, a saved dataset or hf:NAME (distiller.taskdata.sources)
    input: str = setting(kind="path")
    # a taskdata.Task, a built-in task name or a mapping of task keys: columns, labels
    task: Any = setting(convert=_task_of_build, what="a Task, a built-in task name or a mapping "
                        "of task keys (a task file is read by the command: --task-file)")
    teacher: str = setting(kind="path")    # HF model name or save_pretrained directory
    cache: str = setting(kind="path")      # teacher-cache directory (created if absent)
    augment: Optional[Any] = None   # policy spec string, YAML path or dict; None = originals only
    # split name used in corpus names
    split: str = setting("train", kind="str", check=lambda v: None if v else "expected a "
                         "non-empty name: it names the corpora written")
    runner: str = setting("direct", kind="str")  # direct | dask | any Beam runner name
    # worker processes (direct, local dask); None = one per GPU the devices give, else 2 (at
    # most the CPUs)
    workers: Optional[int] = setting(None, _COUNT, optional=True)
    # auto | cpu | cuda | cuda:0,cuda:1,... (distiller.pipelines.devices)
    devices: str = setting("auto", kind="str")
    # torch threads per local worker; None = CPUs//workers
    threads_per_worker: Optional[int] = setting(None, _COUNT, optional=True)
    # existing dask scheduler; None starts a local cluster
    dask_address: Optional[str] = setting(None, kind="str", optional=True)
    # JSONL of rejected rows; default next to the cache
    dead_letters: Optional[str] = setting(None, kind="path", optional=True)
    seed: int = setting(0, kind="int")  # base seed of every augmentation choice
    # teacher tokens per input (special tokens included)
    max_length: int = setting(128, kind="int", low=2)
    doc_stride: int = setting(128, _COUNT)  # span tasks: context tokens between window starts
    max_query_length: int = setting(64, _COUNT)  # span tasks: question tokens kept
    # over-long texts: dead letters (True) or truncated (False)
    reject_long: bool = setting(False, kind="bool")
    # False: an unlabelled corpus (texts only, label None)
    labelled: bool = setting(True, kind="bool")
    limit: Optional[int] = setting(None, kind="int", low=0, optional=True)  # the first N rows
    layers: Union[str, Tuple[int, ...]] = "all"  # hidden states kept (0 = embeddings)
    pooling: str = setting("none", kind="str", choices=POOLINGS)  # none | cls | mean
    attentions: bool = setting(False, kind="bool")  # keep attention maps
    # stored tensor dtype (float16 | float32 | int8)
    dtype: str = setting("float16", kind="str", choices=DTYPES)
    # teacher precision: auto | bf16 | fp16 | off (TeacherConfig)
    amp: str = setting("auto", kind="str", choices=("auto", *COMPUTE_OF_AMP))
    # what runs the teacher: eager | compile | onnx (TeacherConfig)
    backend: str = setting("eager", kind="str", choices=BACKENDS)
    unit_size: int = setting(1024, _COUNT)  # records per scoring work unit = per shard
    # False: pass tensors on and write later (for measuring)
    write_shards_in_scoring: bool = setting(True, kind="bool")
    # one teacher per machine across processes (large teachers)
    share_model: bool = setting(False, kind="bool")
    # extra pipeline options, passed to Beam untouched
    beam_args: Sequence[str] = setting((), kind="list")
    progress: bool = setting(True, kind="bool")  # progress bar on stderr
    # mixup pairs per corpus record (0 = no mixup)
    mixup: int = setting(0, kind="int", low=0)
    mixup_alpha: float = setting(0.4, kind="number", low=0, low_open=True)  # λ ~ Beta(a, a)
    tokens: str = setting("", TOKENS_ALLOWED)  # language models: topk:K | sample:N per position
    # masked_lm: share of each text's tokens masked; seed mixed into every record's masking
    mask_prob: float = setting(0.15, kind="number", low=0, high=1, low_open=True, high_open=True)
    mask_seed: int = setting(0, kind="int", low=0)

    def __post_init__(self) -> None:
        validate(self, BUILD_RULES, _WORDING)   # each field as declared, then the rules


# The cross-field rules of a build, checked in this order after every field's own declaration.
BUILD_RULES = (
    Rule("mixup needs embeddings", key="mixup", holds=lambda o: not (o.mixup and
                                                                     o.backend == "onnx"),
         says="mixup scores interpolated embeddings, which the onnx backend does not take: use "
              "--backend eager or compile with --mixup"),
    Rule("mixup of whole inputs", key="mixup",
         holds=lambda o: not (o.mixup and (o.task.is_span or o.task.is_lm)),
         says=lambda o: "mixup interpolates whole inputs of classification and regression tasks; "
                        f"task {o.task.name} is "
                        f"{'question answering' if o.task.is_span else 'a language model'}: "
                        "drop --mixup"),
    Rule("a language model's task keeps a token form", key="tokens", shows_value=False,
         holds=lambda o: o.tokens or not o.task.is_lm,
         says="task {self.task.name} is a {self.task.kind} task: give --tokens topk:K or "
              "--tokens sample:N (what is kept per predicted token)"),
    Rule("a token form is a language model's", key="tokens",
         holds=lambda o: not o.tokens or o.task.is_lm,
         says="--tokens is for language-model tasks (--kind masked_lm or causal_lm); task "
              "{self.task.name} is {self.task.kind}"),
)


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


def _teacher_config(opts: BuildOptions, num_labels: Optional[int] = None) -> TeacherConfig:
    """The workers' teacher for a build."""
    # Each local worker process gets its share of this machine's CPUs (no oversubscription);
    # on a remote runner (or a remote dask scheduler) workers use the CPUs they have.
    threads = opts.threads_per_worker
    if threads is None and is_local_runner(opts.runner) and not opts.dask_address:
        threads = max(1, usable_cpus() // opts.workers)
    return TeacherConfig(model=opts.teacher, max_length=opts.max_length, layers=opts.layers,
                         pooling=opts.pooling, attentions=opts.attentions, num_threads=threads,
                         amp=opts.amp, num_labels=num_labels, backend=opts.backend,
                         head=head_for(opts.task), doc_stride=opts.doc_stride,
                         max_query_length=opts.max_query_length, tokens=opts.tokens,
                         mask_prob=opts.mask_prob, mask_seed=opts.mask_seed)


class BuildDistillSet(beam.PTransform):
    """PBegin → the build summary (one dict), with the cache committed and indexed."""

    def __init__(self, opts: BuildOptions, *, teacher_config, names, dead_letter_path: str,
                 summary_path: str, progress_dir: Optional[str] = None,
                 batch_by_shuffle: bool = False, devices=None, staging_dir: str = "",
                 known_shards: Sequence[str] = ()):
        super().__init__()
        # where the workers write the corpus parts; the shards committed at the start
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
    newly_scored, dead_letters (+ reasons), bytes_written, seconds, beam_counters, ...

    Everything that can be refused (the input, the teacher's head, the devices, the names and
    paths written, the cache's spec) is checked before the pipeline starts."""
    start = time.monotonic()
    opts, num_labels, devices = _checked_options(opts)
    out = _outputs(opts)
    teacher_config = _teacher_config(opts, num_labels)
    cache = _open_cache(opts, teacher_config)
    adopted = _recover_leftovers(cache)
    known_shards = [info.name for info in cache.shards()]  # the keys the build will exclude
    staging = staging_dir(cache.path)  # the workers' corpus and dead-letter parts
    if os.path.exists(out.summary_path):
        os.unlink(out.summary_path)

    def transform(progress_dir: Optional[str], batch_by_shuffle: bool) -> BuildDistillSet:
        return BuildDistillSet(
            opts, teacher_config=teacher_config, names=out.names,
            dead_letter_path=out.dead_letter_path, summary_path=out.summary_path,
            progress_dir=progress_dir, batch_by_shuffle=batch_by_shuffle, devices=devices,
            staging_dir=staging, known_shards=known_shards)

    try:
        result = run_pipeline(transform, runner=opts.runner, workers=opts.workers,
                              dask_address=opts.dask_address, beam_args=opts.beam_args,
                              progress=opts.progress, cache=opts.cache)
    finally:
        devices.release()
        shutil.rmtree(staging, ignore_errors=True)
    summary = _read_summary(out.summary_path)
    summary.update({"seconds": round(time.monotonic() - start, 3), "cache": opts.cache,
                    "runner": opts.runner, "workers": opts.workers,
                    "devices": ",".join(devices.slots) or opts.devices, "amp": opts.amp,
                    "adopted_rows": sum(i.rows for i in adopted),
                    "task": opts.task.describe(), "labelled": opts.labelled,
                    "beam_counters": beam_counters(result)})
    return summary


def _checked_options(opts: BuildOptions) -> Tuple[BuildOptions, Optional[int], DevicePlan]:
    """(options with the task fitted to the teacher, the workers and a concrete amp; the
    teacher's label count; the devices' plan). The input's columns and the teacher's head are
    checked before any work; one worker per device; the precision the cache records, or a clear
    error (distiller.pipelines.devices.place_build)."""
    check_input(opts.input, opts.task, labelled=opts.labelled)
    task, num_labels = fit_teacher_to_task(opts.teacher, opts.task)
    opts, devices = place_build(dataclasses.replace(opts, task=task))
    return opts, num_labels, devices


@dataclasses.dataclass(frozen=True)
class _Outputs:
    """What a build writes besides shards: its corpora, its dead letters and its summary."""

    names: List[str]
    dead_letter_path: str
    summary_path: str


def _outputs(opts: BuildOptions) -> _Outputs:
    """The corpus names (the policy's name in them: its models checked now) and the dead-letter
    and summary paths, each checked before the teacher loads (distiller.pipelines.buildcheck)."""
    policy_name = None
    if opts.augment is not None:
        policy_name = AugmentationPolicy.from_spec(opts.augment).check_models().name
    names = corpus_names(opts.task.name, opts.split, policy_name, mixup=opts.mixup,
                         mixup_alpha=opts.mixup_alpha)
    dead_path = opts.dead_letters or os.path.join(
        os.path.abspath(opts.cache).rstrip("/") + ".dead_letters",
        f"{names[1 if len(names) > 1 and policy_name else 0]}.jsonl")
    check_outputs(cache=opts.cache, corpus_names=names, dead_letter_path=dead_path)
    return _Outputs(names, dead_path, dead_path + ".summary.json")


def _open_cache(opts: BuildOptions, teacher_config: TeacherConfig) -> TeacherCache:
    """The build's cache for the teacher's spec, created if absent (a spec mismatch is an error
    here, before any work), with the teacher's vocabulary recorded. The driver's teacher only
    fingerprints: on the CPU, at the precision the workers will use."""
    teacher = make_teacher(dataclasses.replace(teacher_config, device="cpu", amp="off")).load()
    spec = teacher.spec(opts.dtype).with_(compute=COMPUTE_OF_AMP[opts.amp])
    cache = TeacherCache.open_or_create(opts.cache, spec)
    record_vocabulary(cache, teacher.tokenizer)
    return cache


def _recover_leftovers(cache: TeacherCache) -> list:
    """Under the lock: temp files of writers that are gone (a killed build) are removed, and
    what an interrupted build scored but did not commit is committed now, not scored again;
    returns those shards. While another writer is at work on the cache (a staging directory or
    temp file whose process runs), uncommitted shards may be its own, still to be committed by
    it: they are left to it, so that each build commits what it scored and says who committed
    what."""
    remove_dead_temp_files(cache.path)
    at_work = [t for t in temp_files(cache.path) if t.alive]
    if at_work:
        log.info("%s: left uncommitted shards to the writer at work there (%s)", cache.path,
                 at_work[0].describe())
        return []
    return cache.adopt_uncommitted()


def _read_summary(summary_path: str) -> Dict[str, Any]:
    """The summary the build's last step wrote (distiller.pipelines.finalize)."""
    if not os.path.exists(summary_path):
        raise RuntimeError(f"the build finished without writing its summary {summary_path!r}: "
                           "check the runner's logs")
    with open(summary_path, encoding="utf-8") as fh:
        return json.loads(fh.readline())
